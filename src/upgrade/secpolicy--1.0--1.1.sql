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

-- change_password() takes the second factor (mfa_code) and code_failure()
-- the stage to record: new trailing parameters, so the old signatures go.
DROP FUNCTION secpolicy.change_password(text, text, text, inet, text);
DROP FUNCTION secpolicy.code_failure(bigint, text, text, inet, text);

-- The policy's intervals are bounded (session timeouts a year, password age,
-- warning and retention a hundred years), so that no date computed from them
-- overflows the timestamp range (session_touch raised 22008 for every session
-- once session_max_lifetime was huge; login, maintain() likewise with a huge
-- max_password_age).  Longer settings are cut to the bound first (an audited
-- policy change).
UPDATE secpolicy.policy
   SET session_idle_timeout = least(session_idle_timeout, interval '366 days'),
       session_max_lifetime = least(session_max_lifetime, interval '366 days'),
       max_password_age = least(max_password_age, interval '100 years'),
       password_expiry_warning = least(password_expiry_warning, interval '100 years'),
       attempt_retention = least(attempt_retention, interval '100 years'),
       pseudonymise_after = least(pseudonymise_after, interval '100 years')
 WHERE session_idle_timeout > interval '366 days' OR session_max_lifetime > interval '366 days'
    OR max_password_age > interval '100 years' OR password_expiry_warning > interval '100 years'
    OR attempt_retention > interval '100 years' OR pseudonymise_after > interval '100 years';
ALTER TABLE secpolicy.policy
    DROP CONSTRAINT policy_max_password_age_check,
    ADD CONSTRAINT policy_max_password_age_check
        CHECK (max_password_age > interval '0' AND max_password_age <= interval '100 years'),
    DROP CONSTRAINT policy_password_expiry_warning_check,
    ADD CONSTRAINT policy_password_expiry_warning_check
        CHECK (password_expiry_warning >= interval '0' AND password_expiry_warning <= interval '100 years'),
    DROP CONSTRAINT policy_attempt_retention_check,
    ADD CONSTRAINT policy_attempt_retention_check
        CHECK (attempt_retention >= interval '1 day' AND attempt_retention <= interval '100 years'),
    DROP CONSTRAINT policy_pseudonymise_after_check,
    ADD CONSTRAINT policy_pseudonymise_after_check
        CHECK (pseudonymise_after >= interval '1 day' AND pseudonymise_after <= interval '100 years');
ALTER TABLE secpolicy.policy
    DROP CONSTRAINT policy_session_idle_timeout_check,
    ADD CONSTRAINT policy_session_idle_timeout_check
        CHECK (session_idle_timeout > interval '0' AND session_idle_timeout <= interval '366 days'),
    DROP CONSTRAINT policy_session_max_lifetime_check,
    ADD CONSTRAINT policy_session_max_lifetime_check
        CHECK (session_max_lifetime > interval '0' AND session_max_lifetime <= interval '366 days');

-- The audit chain is sealed when the auditing transaction commits, not when
-- the row is written (an open transaction held the chain's lock and stalled
-- every audited action): the hashes are NULL until then, and chain_seq is a
-- row's place in the chain (commit order; NULL for the rows of 1.0, whose
-- place is their id).
ALTER TABLE secpolicy.audit_log
    ALTER COLUMN prev_hash DROP NOT NULL,
    ALTER COLUMN row_hash DROP NOT NULL,
    ADD COLUMN chain_seq bigint,
    ADD CONSTRAINT audit_log_check CHECK ((prev_hash IS NULL) = (row_hash IS NULL));

-- Scaling out on Citus (src/sql/97_citus.sql).  The failure counter of an
-- unknown name carries the name's account key: its distribution key on a
-- distributed installation (NULL on a single node); a new column of a 1.0
-- table.  record_attempt() takes the distribution key of a flow that knows
-- neither the account nor the name (a void token): a new trailing parameter,
-- so the old signature goes.  (challenge_account() and
-- mark_credentials_due() change language, which replay does.)
ALTER TABLE secpolicy.unknown_user_failures ADD COLUMN account_key bigint;
DROP FUNCTION secpolicy.record_attempt(bigint, text, inet, text, boolean, text, text);

-- Report rollups (src/sql/89_rollups.sql): every attempt row records the
-- transaction that logged it, which is how a refresh tells the rows it has
-- not counted yet.  Rows logged by 1.0 keep NULL: they are counted by the
-- first build, below.  (A new column of a 1.0 table: replay cannot add it.)
ALTER TABLE secpolicy.login_attempts ADD COLUMN logged_xid xid8;
ALTER TABLE secpolicy.login_attempts ALTER COLUMN logged_xid SET DEFAULT pg_catalog.pg_current_xact_id();

-- @after-replay
-- Report rollups: the daily partitions of 1.0 get the logged_xid index, and
-- the rollups are built from the existing log (a data migration).
SELECT secpolicy.index_attempt_partition(i.inhrelid::regclass)
  FROM pg_catalog.pg_inherits i WHERE i.inhparent = 'secpolicy.login_attempts'::regclass;
SELECT secpolicy.refresh_rollups();

-- @before-replay
-- Protected columns (issue 11): the retention of the disclosure log is a new
-- setting of the policy row, which 1.0 has (replay cannot add a column).
ALTER TABLE secpolicy.policy ADD COLUMN disclosure_retention interval DEFAULT '400 days'
    CHECK (disclosure_retention >= interval '1 day' AND disclosure_retention <= interval '100 years');

-- Database roles under the policy: two settings at the end of the policy row
-- (the longest access window, and when a login role counts as dormant).
ALTER TABLE secpolicy.policy
    ADD COLUMN max_database_access interval NOT NULL DEFAULT '12 hours'
        CHECK (max_database_access > interval '0' AND max_database_access <= interval '7 days'),
    ADD COLUMN dormant_role_after interval DEFAULT '90 days'
        CHECK (dormant_role_after >= interval '1 day' AND dormant_role_after <= interval '100 years');
