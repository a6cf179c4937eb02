-- Migration from 1.0 to 1.1: what replaying the 1.1 install parts cannot do
-- (scripts/upgrade-script appends the replay).  Each step says why.

-- Incidents are announced and audited by the functions that open them, no
-- longer by a trigger: pg_restore loading the incidents fired it, appending
-- audit rows that collided with the restored audit log.
DROP TRIGGER incident_notify ON secpolicy.incidents;
DROP FUNCTION secpolicy.incident_notify();

-- Protected columns (issue 11): the retention of the disclosure log is a new
-- setting of the policy row, which 1.0 has (replay cannot add a column).
ALTER TABLE secpolicy.policy ADD COLUMN disclosure_retention interval DEFAULT '400 days'
    CHECK (disclosure_retention >= interval '1 day' AND disclosure_retention <= interval '100 years');
