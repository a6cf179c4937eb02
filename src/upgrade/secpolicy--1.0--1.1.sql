-- Migration from 1.0 to 1.1: what replaying the 1.1 install parts cannot do
-- (scripts/upgrade-script appends the replay).  Each step says why.

-- Incidents are announced and audited by the functions that open them, no
-- longer by a trigger: pg_restore loading the incidents fired it, appending
-- audit rows that collided with the restored audit log.
DROP TRIGGER incident_notify ON secpolicy.incidents;
DROP FUNCTION secpolicy.incident_notify();

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
