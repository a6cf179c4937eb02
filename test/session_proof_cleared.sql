-- pgTAP: a session_touch that answers unknown ends what an earlier one proved
-- in the transaction.  After an active session_touch, session_touch(NULL) and
-- session_touch(repeat('x', 200)) answer unknown and clear
-- current_session_user(), current_session_id() and has_access(); touching the
-- session again proves it again.
BEGIN;
\ir lib/helpers.psql
SELECT plan(12);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;

-- (Statements ending in \gset quiet_ print nothing: the token stays out of the output.)

SELECT secpolicy.create_user('regress_proof_user', 'Heron-Marsh-83!') AS sess_uid \gset
SELECT secpolicy.grant_access('regress_proof_user', 'reports.read', 'regress: an access to check') \gset quiet_
SELECT pg_temp.put('s', session_token) FROM secpolicy.login('regress_proof_user', 'Heron-Marsh-83!') \gset quiet_

SELECT is(status, 'active', 'a fresh session is active') FROM secpolicy.session_touch(pg_temp.get('s'));
SELECT is(secpolicy.current_session_user(), :sess_uid::bigint, 'and proves its user for the transaction');
SELECT ok(secpolicy.has_access('reports.read'), 'has_access() answers for that user');
SELECT is(status, 'unknown', 'session_touch(NULL) answers unknown') FROM secpolicy.session_touch(NULL);
SELECT is(secpolicy.current_session_user(), NULL::bigint, 'after session_touch(NULL) current_session_user() is NULL');
SELECT is(secpolicy.current_session_id(), NULL::bigint, 'and current_session_id() is NULL');
SELECT ok(NOT secpolicy.has_access('reports.read'), 'and has_access() is false');
SELECT is(status, 'active', 'touched again, the session is active') FROM secpolicy.session_touch(pg_temp.get('s'));
SELECT is(secpolicy.current_session_user(), :sess_uid::bigint, 'and proven again');
SELECT is(status, 'unknown', 'session_touch of a 200-character token answers unknown')
  FROM secpolicy.session_touch(repeat('x', 200));
SELECT is(secpolicy.current_session_user(), NULL::bigint, 'after an oversized token current_session_user() is NULL');
SELECT is(secpolicy.current_session_id(), NULL::bigint, 'and current_session_id() is NULL');

SELECT * FROM finish();
ROLLBACK;
