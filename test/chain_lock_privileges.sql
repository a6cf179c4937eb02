-- pgTAP: the rows that serialise the audit chain and detect_attacks() can be
-- locked only by the extension's owner, and audited actions wait on no lock
-- that another role could hold.  A role with no privilege, and a role in all
-- three groups (secpolicy_app, secpolicy_admin, secpolicy_analyst), get 42501
-- locking secpolicy.audit_head or secpolicy.maintenance_state (LOCK TABLE,
-- SELECT ... FOR SHARE/UPDATE); an audited action and detect_attacks() leave
-- no advisory lock of class 5457731 behind; writing audit rows takes no lock
-- of the chain, and chaining a transaction's rows (audit_seal(), as at
-- commit) takes one write of audit_head.  The same with several connections
-- (a role holding the advisory keys): test/scenarios/chain_lock_hostile_role.sh.
BEGIN;
\ir lib/helpers.psql
SELECT plan(13);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;

-- (Statements ending in \gset quiet_ print nothing.)

-- advisory locks of class 5457731 ('SEC') that this backend holds
CREATE FUNCTION pg_temp.sec_advisory_locks() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM pg_locks
     WHERE locktype = 'advisory' AND classid = 5457731 AND pid = pg_backend_pid() AND granted;
$$;

-- ----------------------------------------- who can lock the chain's rows -----
CREATE ROLE regress_chain_nobody;
CREATE ROLE regress_chain_groups IN ROLE secpolicy_app, secpolicy_admin, secpolicy_analyst;

SELECT is(pg_temp.sqlstate_as('regress_chain_nobody', 'LOCK TABLE secpolicy.audit_head IN SHARE MODE'), '42501',
          'a role with no privilege cannot LOCK secpolicy.audit_head');
SELECT is(pg_temp.sqlstate_as('regress_chain_nobody', 'SELECT 1 FROM secpolicy.audit_head FOR UPDATE'), '42501',
          'a role with no privilege cannot lock the audit_head row (FOR UPDATE)');
SELECT is(pg_temp.sqlstate_as('regress_chain_nobody', 'LOCK TABLE secpolicy.maintenance_state IN SHARE MODE'), '42501',
          'a role with no privilege cannot LOCK secpolicy.maintenance_state');
SELECT is(pg_temp.sqlstate_as('regress_chain_nobody', 'SELECT 1 FROM secpolicy.maintenance_state FOR UPDATE'), '42501',
          'a role with no privilege cannot lock the maintenance_state row (FOR UPDATE)');
SELECT is(pg_temp.sqlstate_as('regress_chain_groups', 'LOCK TABLE secpolicy.audit_head IN SHARE MODE'), '42501',
          'a member of app, admin and analyst cannot LOCK audit_head either');
SELECT is(pg_temp.sqlstate_as('regress_chain_groups', 'SELECT 1 FROM secpolicy.audit_head FOR SHARE'), '42501',
          'a member of app, admin and analyst cannot lock the audit_head row (FOR SHARE)');
SELECT is(pg_temp.sqlstate_as('regress_chain_groups', 'LOCK TABLE secpolicy.maintenance_state IN SHARE MODE'), '42501',
          'a member of app, admin and analyst cannot LOCK maintenance_state');
SELECT is(pg_temp.sqlstate_as('regress_chain_groups', 'SELECT 1 FROM secpolicy.maintenance_state FOR SHARE'), '42501',
          'a member of app, admin and analyst cannot lock the maintenance_state row (FOR SHARE)');

-- ------------------------------ what audited actions lock, and when --------
SELECT secpolicy.create_user('regress_chain_user', 'Heron-Marsh-83!') \gset quiet_
SELECT pg_temp.put('head0', (SELECT writes FROM secpolicy.audit_head)::text) \gset quiet_
SELECT secpolicy.unlock_user('regress_chain_user', 'regress: audited') \gset quiet_
SELECT secpolicy.grant_access('regress_chain_user', 'reports.read', 'regress: audited') \gset quiet_
SELECT is(pg_temp.sec_advisory_locks(), 0::bigint,
          'audited actions hold no advisory lock of class 5457731 until the end of the transaction');
SELECT is((SELECT writes FROM secpolicy.audit_head) - pg_temp.get('head0')::bigint, 0::bigint,
          'writing audit rows takes no lock of the chain (it is taken at commit)');
SELECT ok(secpolicy.audit_seal() >= 2, 'audit_seal() chains the rows of the transaction, as the commit does');
SELECT is((SELECT writes FROM secpolicy.audit_head) - pg_temp.get('head0')::bigint, 1::bigint,
          'chaining a transaction''s rows takes one write of the audit_head row');
SELECT ok((SELECT count(*) FROM secpolicy.detect_attacks()) >= 0 AND pg_temp.sec_advisory_locks() = 0,
          'detect_attacks() holds no advisory lock of class 5457731 either');

SELECT * FROM finish();
ROLLBACK;
