-- Migration from 1.0 to 1.1: what replaying the 1.1 install parts cannot do
-- (scripts/upgrade-script appends the replay).  Each step says why.

-- Incidents are announced and audited by the functions that open them, no
-- longer by a trigger: pg_restore loading the incidents fired it, appending
-- audit rows that collided with the restored audit log.
DROP TRIGGER incident_notify ON secpolicy.incidents;
DROP FUNCTION secpolicy.incident_notify();

-- The attempt log records more stages (reset requests, database logins), and
-- its parent carries no CHECK constraint any more: each partition must hold
-- the parent's constraints, so a partition restored from an older dump could
-- not be attached.  The daily partitions made by 1.0 hold their own copy of
-- the constraint, which the repair drops once the parent's is gone.
ALTER TABLE secpolicy.login_attempts DROP CONSTRAINT login_attempts_stage_check;
-- @after-replay
SELECT secpolicy.repair_attempt_partitions();
-- @before-replay

-- The flows ask the guess ledger with guess_check(), which tells a key at the
-- limit from a ledger without room; guess_begin() stays in the library for
-- databases still at 1.0.
DROP FUNCTION secpolicy.guess_begin(text, integer, integer, text);

-- Database roles under the policy: two settings at the end of the policy row
-- (the longest access window, and when a login role counts as dormant).
ALTER TABLE secpolicy.policy
    ADD COLUMN max_database_access interval NOT NULL DEFAULT '12 hours'
        CHECK (max_database_access > interval '0' AND max_database_access <= interval '7 days'),
    ADD COLUMN dormant_role_after interval DEFAULT '90 days'
        CHECK (dormant_role_after >= interval '1 day');
