-- pgTAP: the administration functions and the audit chain.
--   create_user (duplicates in another case 23505, NULL 22004, bad usernames
--   22023, weak or NULL passwords, must_change), disable_user, enable_user,
--   unlock_user, admin_set_password, expire_password, force_password_reset,
--   revoke_sessions, grant_access, revoke_access, import_password_hash:
--   effects, SQLSTATEs (unknown user 42704, missing reason 22004), and an
--   audit row for each with actor, role, user and reason;
--   verify_audit_chain() intact; the log is append-only (42501); tampering
--   with a row (append-only trigger disabled as superuser inside this
--   transaction) or deleting one is reported at the right row.
BEGIN;
\ir lib/helpers.psql
SELECT plan(94);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false;

\set ref '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc'
\set ref_argon2i '$argon2i$v=19$m=64,t=2,p=1$c29tZXNhbHQ$mJ2mVFjovhRArlVdCzyKw6ZYTg0ikLncyRWminHkHB4'

-- the newest audit row: action, user id, username, reason, details
CREATE FUNCTION pg_temp.last_audit() RETURNS text LANGUAGE sql AS $$
    SELECT ROW(a.action, a.user_id, a.username, a.reason, a.details)::text FROM secpolicy.audit_log a ORDER BY a.id DESC LIMIT 1;
$$;
CREATE FUNCTION pg_temp.live_sessions(u text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM secpolicy.sessions s JOIN secpolicy.users x ON x.id = s.user_id WHERE x.username = u AND s.ended_at IS NULL;
$$;

-- create_user
SELECT secpolicy.create_user('Lara', 'Avocet-Pass-01x') AS lara \gset
SELECT is((SELECT username FROM secpolicy.users WHERE id = :lara), 'Lara', 'create_user keeps the username as given');
SELECT is(pg_temp.last_audit(), format('(user_created,%s,Lara,,"{""must_change_password"": false}")', :lara), 'user_created is audited');
SELECT is((SELECT actor || '/' || coalesce(actor_role, '-') FROM secpolicy.audit_log ORDER BY id DESC LIMIT 1), session_user || '/-',
          'the actor is the session user, no role switched');
SELECT throws_ok($$SELECT secpolicy.create_user('LARA', 'Avocet-Pass-02x')$$, '23505', NULL, 'a duplicate in another case raises 23505');
SELECT throws_ok($$SELECT secpolicy.create_user(NULL, 'Avocet-Pass-02x')$$, '22004', NULL, 'a NULL username raises 22004');
SELECT throws_ok($$SELECT secpolicy.create_user('', 'Avocet-Pass-02x')$$, '22023', NULL, 'an empty username raises 22023');
SELECT throws_ok($$SELECT secpolicy.create_user(E'bad\nname', 'Avocet-Pass-02x')$$, '22023', NULL, 'a control character raises 22023');
SELECT throws_ok($$SELECT secpolicy.create_user(repeat('u', 257), 'Avocet-Pass-02x')$$, '22023', NULL, '257 characters raise 22023');
SELECT lives_ok($$SELECT secpolicy.create_user(repeat('ü', 256), 'Avocet-Pass-02x')$$, '256 characters are accepted');
SELECT throws_ok($$SELECT secpolicy.create_user('mara', NULL)$$, '22004', NULL, 'a NULL password raises 22004');
SELECT is(pg_temp.error_of($$SELECT secpolicy.create_user('mara', 'zqxvw')$$),
          '22023: rule codes: too_short, missing_upper, missing_digit, missing_symbol', 'a weak password raises 22023 with the rule codes');
SELECT is((SELECT count(*) FROM secpolicy.users WHERE username = 'mara'), 0::bigint, 'no account is left behind by a failed create_user');
SELECT ok(secpolicy.create_user('mara', 'Avocet-Pass-03x', true) > 0, 'create_user with must_change');
SELECT is(pg_temp.status('mara', 'Avocet-Pass-03x'), 'password_change_required', 'must change at the first login');

-- disable_user / enable_user
SELECT session_token AS lara_s FROM secpolicy.login('lara', 'Avocet-Pass-01x') \gset
SELECT secpolicy.request_password_reset('lara') AS lara_r \gset
SELECT throws_ok($$SELECT secpolicy.disable_user('lara', NULL)$$, '22004', NULL, 'disable_user without a reason raises 22004');
SELECT throws_ok($$SELECT secpolicy.disable_user('lara', '   ')$$, '22004', NULL, 'a blank reason raises 22004');
SELECT throws_ok($$SELECT secpolicy.disable_user('nobody-here', 'regress')$$, '42704', NULL, 'an unknown user raises 42704');
SELECT throws_ok($$SELECT secpolicy.disable_user(NULL, 'regress')$$, '22004', NULL, 'a NULL username raises 22004');
SELECT lives_ok($$SELECT secpolicy.disable_user('LARA', 'regress: left the company')$$, 'disable_user (another case)');
SELECT is((SELECT ROW(disabled_at, disabled_reason)::text FROM secpolicy.users WHERE id = :lara),
          ROW(now(), 'regress: left the company')::text, 'disabled_at and the reason are set');
SELECT is((SELECT end_reason FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest(:'lara_s')), 'disabled',
          'the sessions end with end_reason disabled');
SELECT isnt((SELECT revoked_at FROM secpolicy.password_resets WHERE token_digest = secpolicy.token_digest(:'lara_r')), NULL,
            'live reset tokens are revoked');
SELECT is((SELECT ROW(a.action, a.user_id, a.username, a.reason, a.details->'sessions_ended')::text
             FROM secpolicy.audit_log a ORDER BY a.id DESC LIMIT 1),
          format('(user_disabled,%s,LARA,"regress: left the company",1)', :lara),
          'user_disabled is audited with the reason and the number of sessions ended');
SELECT max(id) AS disabled_audit_id FROM secpolicy.audit_log \gset
SELECT is(pg_temp.status('lara', 'Avocet-Pass-01x'), 'disabled', 'login answers disabled');
SELECT throws_ok($$SELECT secpolicy.enable_user('nobody-here')$$, '42704', NULL, 'enable_user of an unknown user raises 42704');
SELECT lives_ok($$SELECT secpolicy.enable_user('lara', 'regress: came back')$$, 'enable_user');
SELECT is((SELECT ROW(disabled_at, disabled_reason)::text FROM secpolicy.users WHERE id = :lara), '(,)', 'disabled_at and reason are cleared');
SELECT is(pg_temp.last_audit(), format('(user_enabled,%s,lara,"regress: came back",)', :lara), 'user_enabled is audited');
SELECT is(pg_temp.status('lara', 'Avocet-Pass-01x'), 'ok', 'login is ok again');

-- unlock_user
SELECT is(pg_temp.status('lara', 'Wrong-1x') || pg_temp.status('lara', 'Wrong-2x') || pg_temp.status('lara', 'Wrong-3x')
          || pg_temp.status('lara', 'Wrong-4x') || pg_temp.status('lara', 'Wrong-5x'),
          'invalid_credentialsinvalid_credentialsinvalid_credentialsinvalid_credentialsreset_required', 'lara is locked');
SELECT throws_ok($$SELECT secpolicy.unlock_user('nobody-here')$$, '42704', NULL, 'unlock_user of an unknown user raises 42704');
SELECT lives_ok($$SELECT secpolicy.unlock_user('lara', 'regress: verified by phone')$$, 'unlock_user');
SELECT is((SELECT ROW(failed_attempts, reset_required, locked_at)::text FROM secpolicy.users WHERE id = :lara), '(0,f,)',
          'counter, reset_required and locked_at are cleared');
SELECT is(pg_temp.last_audit(), format('(user_unlocked,%s,lara,"regress: verified by phone",)', :lara), 'user_unlocked is audited');

-- admin_set_password
SELECT session_token AS lara_s2 FROM secpolicy.login('lara', 'Avocet-Pass-01x') \gset
SELECT is(pg_temp.status('lara', 'Wrong-6x'), 'invalid_credentials', 'one failure before the admin steps in');
SELECT is(pg_temp.error_of($$SELECT secpolicy.admin_set_password('lara', 'zqxvw')$$),
          '22023: rule codes: too_short, missing_upper, missing_digit, missing_symbol', 'a weak temporary password raises 22023');
SELECT throws_ok($$SELECT secpolicy.admin_set_password('lara', NULL)$$, '22004', NULL, 'a NULL temporary password raises 22004');
SELECT throws_ok($$SELECT secpolicy.admin_set_password('nobody-here', 'Temp-Admin-Pass-1x')$$, '42704', NULL, 'an unknown user raises 42704');
SELECT lives_ok($$SELECT secpolicy.admin_set_password('lara', 'Temp-Admin-Pass-1x', 'regress: forgot it')$$, 'admin_set_password');
SELECT is((SELECT ROW(must_change_password, failed_attempts, reset_required)::text FROM secpolicy.users WHERE id = :lara), '(t,0,f)',
          'must_change_password set, counter cleared');
SELECT ok(secpolicy.verify_password('Temp-Admin-Pass-1x', (SELECT password_hash FROM secpolicy.users WHERE id = :lara)),
          'the temporary password is stored hashed');
SELECT is((SELECT end_reason FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest(:'lara_s2')), 'admin', 'sessions end with end_reason admin');
SELECT is(pg_temp.last_audit(), format('(password_set_by_admin,%s,lara,"regress: forgot it",)', :lara), 'password_set_by_admin is audited');
SELECT is(pg_temp.status('lara', 'Temp-Admin-Pass-1x'), 'password_change_required', 'login asks for a change');
SELECT is((SELECT status FROM secpolicy.change_password('lara', 'Temp-Admin-Pass-1x', 'Avocet-Pass-04x')), 'ok', 'lara sets her own password');

-- expire_password
SELECT throws_ok($$SELECT secpolicy.expire_password('nobody-here')$$, '42704', NULL, 'expire_password of an unknown user raises 42704');
SELECT lives_ok($$SELECT secpolicy.expire_password('lara', 'regress: audit finding')$$, 'expire_password');
SELECT is((SELECT password_expired FROM secpolicy.users WHERE id = :lara), true, 'password_expired is set');
SELECT is(pg_temp.last_audit(), format('(password_expired_by_admin,%s,lara,"regress: audit finding",)', :lara), 'password_expired_by_admin is audited');
SELECT is(pg_temp.status('lara', 'Avocet-Pass-04x'), 'password_expired', 'login answers password_expired');
SELECT is((SELECT status FROM secpolicy.change_password('lara', 'Avocet-Pass-04x', 'Avocet-Pass-05x')), 'ok', 'lara changes it');

-- force_password_reset
SELECT session_token AS lara_s3 FROM secpolicy.login('lara', 'Avocet-Pass-05x') \gset
SELECT throws_ok($$SELECT secpolicy.force_password_reset('lara', NULL)$$, '22004', NULL, 'force_password_reset without a reason raises 22004');
SELECT throws_ok($$SELECT secpolicy.force_password_reset('nobody-here', 'regress')$$, '42704', NULL, 'an unknown user raises 42704');
SELECT lives_ok($$SELECT secpolicy.force_password_reset('lara', 'regress: phished')$$, 'force_password_reset');
SELECT is((SELECT reset_required FROM secpolicy.users WHERE id = :lara), true, 'reset_required is set');
SELECT is((SELECT end_reason FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest(:'lara_s3')), 'admin', 'sessions end with end_reason admin');
SELECT is(pg_temp.last_audit(), format('(password_reset_forced,%s,lara,"regress: phished",)', :lara), 'password_reset_forced is audited');
DO $$ BEGIN PERFORM secpolicy.unlock_user('lara'); END $$;

-- revoke_sessions
SELECT ok((SELECT count(*) FROM (SELECT secpolicy.login('lara', 'Avocet-Pass-05x') UNION ALL SELECT secpolicy.login('lara', 'Avocet-Pass-05x')) s) = 2,
          'two new sessions');
SELECT throws_ok($$SELECT secpolicy.revoke_sessions('lara', '')$$, '22004', NULL, 'revoke_sessions without a reason raises 22004');
SELECT throws_ok($$SELECT secpolicy.revoke_sessions('nobody-here', 'regress')$$, '42704', NULL, 'an unknown user raises 42704');
SELECT is(secpolicy.revoke_sessions('lara', 'regress: lost laptop'), 2, 'revoke_sessions ends both and says so');
SELECT is(pg_temp.live_sessions('lara'), 0::bigint, 'no live session is left');
SELECT is(pg_temp.last_audit(), format('(sessions_revoked,%s,lara,"regress: lost laptop","{""sessions_ended"": 2}")', :lara), 'sessions_revoked is audited');

-- grant_access / revoke_access
SELECT is(secpolicy.grant_access('lara', 'billing.read', 'regress: new role'), true, 'grant_access: true');
SELECT is(pg_temp.last_audit(), format('(access_granted,%s,lara,"regress: new role","{""access"": ""billing.read""}")', :lara), 'access_granted is audited');
SELECT is(secpolicy.grant_access('LARA', 'billing.read'), false, 'granting it again: false');
SELECT is((SELECT count(*) FROM secpolicy.user_access WHERE user_id = :lara AND access = 'billing.read'), 1::bigint, 'one grant row');
SELECT throws_ok($$SELECT secpolicy.grant_access('lara', 'Billing Read')$$, '22023', NULL, 'an invalid access name raises 22023');
SELECT throws_ok($$SELECT secpolicy.grant_access('lara', NULL)$$, '22023', NULL, 'a NULL access name raises 22023');
SELECT throws_ok($$SELECT secpolicy.grant_access('nobody-here', 'billing.read')$$, '42704', NULL, 'grant_access to an unknown user raises 42704');
SELECT is(secpolicy.revoke_access('lara', 'billing.read', 'regress: moved team'), true, 'revoke_access: true');
SELECT is(pg_temp.last_audit(), format('(access_revoked,%s,lara,"regress: moved team","{""access"": ""billing.read""}")', :lara), 'access_revoked is audited');
SELECT is(secpolicy.revoke_access('lara', 'billing.read'), false, 'revoking it again: false');
SELECT throws_ok($$SELECT secpolicy.revoke_access('nobody-here', 'billing.read')$$, '42704', NULL, 'revoke_access of an unknown user raises 42704');

-- import_password_hash
SELECT lives_ok(format('SELECT secpolicy.import_password_hash(%L, %L, %L)', 'mara', :'ref', 'regress: migration'), 'import_password_hash');
SELECT is((SELECT password_hash FROM secpolicy.users WHERE username = 'mara'), :'ref', 'the imported hash is stored as it is');
SELECT is(pg_temp.last_audit(), format('(password_hash_imported,%s,mara,"regress: migration",)', (SELECT id FROM secpolicy.users WHERE username = 'mara')),
          'password_hash_imported is audited');
SELECT throws_ok($$SELECT secpolicy.import_password_hash('mara', 'Not-A-Hash-123x')$$, '22023', NULL, 'a plaintext raises 22023');
SELECT throws_ok($$SELECT secpolicy.import_password_hash('mara', NULL)$$, '22004', NULL, 'NULL raises 22004');
SELECT throws_ok(format('SELECT secpolicy.import_password_hash(%L, %L)', 'mara', :'ref_argon2i'), '22023', NULL, 'an argon2i hash raises 22023');
SELECT throws_ok(format('SELECT secpolicy.import_password_hash(%L, %L)', 'nobody-here', :'ref'), '42704', NULL, 'an unknown user raises 42704');

-- the actor's role
CREATE ROLE regress_pw_auditor_admin IN ROLE secpolicy_admin;
SET LOCAL ROLE regress_pw_auditor_admin;
SELECT secpolicy.disable_user('mara', 'regress: as an admin role') IS NULL AS done \gset
RESET ROLE;
SELECT is((SELECT actor || '/' || actor_role FROM secpolicy.audit_log ORDER BY id DESC LIMIT 1), session_user || '/regress_pw_auditor_admin',
          'an admin acting through SET ROLE is recorded with both names');

-- the chain: rows are chained when their transaction commits; audit_seal() does it now
SELECT is((SELECT ROW(intact, rows_checked)::text FROM secpolicy.verify_audit_chain()),
          ROW(true, (SELECT count(*) FROM secpolicy.audit_log WHERE row_hash IS NOT NULL))::text,
          'before the commit, the rows this transaction wrote are not chained yet');
SELECT ok(secpolicy.audit_seal() > 0, 'audit_seal() chains them, as the commit would');
SELECT is((SELECT ROW(intact, rows_checked, first_broken_id)::text FROM secpolicy.verify_audit_chain()),
          ROW(true, (SELECT count(*) FROM secpolicy.audit_log), NULL::bigint)::text, 'verify_audit_chain: intact over every row');
SELECT is((SELECT head_hash FROM secpolicy.verify_audit_chain()), (SELECT encode(row_hash, 'hex') FROM secpolicy.audit_log ORDER BY coalesce(chain_seq, id) DESC LIMIT 1),
          'head_hash is the newest row''s hash');
SELECT throws_ok(format('UPDATE secpolicy.audit_log SET reason = %L WHERE id = %s', 'edited', :disabled_audit_id), '42501', NULL, 'UPDATE is refused');
SELECT throws_ok(format('DELETE FROM secpolicy.audit_log WHERE id = %s', :disabled_audit_id), '42501', NULL, 'DELETE is refused');
SELECT throws_ok('TRUNCATE secpolicy.audit_log', '42501', NULL, 'TRUNCATE is refused');
ALTER TABLE secpolicy.audit_log DISABLE TRIGGER audit_append_only;
UPDATE secpolicy.audit_log SET reason = 'regress: nothing to see' WHERE id = :disabled_audit_id;
SELECT is((SELECT ROW(intact, first_broken_id, head_hash)::text FROM secpolicy.verify_audit_chain()), format('(f,%s,)', :disabled_audit_id),
          'an edited row breaks the chain at that row');
UPDATE secpolicy.audit_log SET reason = 'regress: left the company' WHERE id = :disabled_audit_id;
SELECT is((SELECT intact FROM secpolicy.verify_audit_chain()), true, 'restoring the original text restores the chain');
DELETE FROM secpolicy.audit_log WHERE id = :disabled_audit_id;
SELECT is((SELECT ROW(intact, first_broken_id)::text FROM secpolicy.verify_audit_chain()),
          format('(f,%s)', (SELECT min(id) FROM secpolicy.audit_log WHERE id > :disabled_audit_id)),
          'a deleted row breaks the chain at the next row');
ALTER TABLE secpolicy.audit_log ENABLE TRIGGER audit_append_only;

-- an argon2id string above the verification caps cannot be imported: it would never verify
SELECT throws_ok(format('SELECT secpolicy.import_password_hash(%L, %L)', 'lara',
                        replace(:'ref', 'm=65536,', 'm=2097152,')), '22023', NULL,
                 'a hash whose cost is above the caps raises 22023');
SELECT ok(secpolicy.verify_password('Avocet-Pass-05x', (SELECT password_hash FROM secpolicy.users WHERE id = :lara)),
          'and the account keeps its password (the string was not stored as a plaintext''s hash)');

SELECT * FROM finish();
ROLLBACK;
