-- pgTAP: the SQL side of the database-role policy, on a cluster that does not
-- preload the library (the hooks, the shared state and the worker are proven
-- by test/scenarios/database_roles.sh with real password authentication).
--   Without preloading: the role functions raise 55000 after their argument
--   checks (NULL 22004, unknown role or account 42704, missing privilege
--   42501), open_database_access answers unavailable and pgbouncer_auth
--   serves nothing (fail closed).
--   Privileges: set_role_password for secpolicy_login and secpolicy_admin,
--   the admin functions for secpolicy_admin, the windows for secpolicy_app,
--   pgbouncer_auth for secpolicy_pgbouncer, role_status for the analyst too,
--   nothing internal for anyone.
--   role_status: expiry and its warning window (timestamps moved), lock and
--   failures, last logins, link and MFA, open window, dormant roles.
--   What the worker and the hooks call: record_database_attempts (stage
--   database, linked account, database and method), sync_role_state (a new
--   lock audited once, announced and closing the role's windows; a row older
--   than the table's last unlock skipped), role_password_changed (VALID UNTIL
--   from max_password_age or an earlier explicit one, history of
--   history_depth, failures and lock cleared, audited), reconcile_roles
--   (renamed roles followed, dropped ones forgotten, login roles tracked).
--   Offboarding: disable_user takes LOGIN from the linked roles and closes
--   the account's windows, audited; enable_user gives back only the LOGIN it
--   took; a lockout of the account and a logout close windows, going idle
--   does not.
BEGIN;
\ir lib/helpers.psql
SELECT plan(63);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false, history_depth = 3;

CREATE ROLE regress_rp_admin IN ROLE secpolicy_admin;
CREATE ROLE regress_rp_app IN ROLE secpolicy_app;
CREATE ROLE regress_rp_analyst IN ROLE secpolicy_analyst;
CREATE ROLE regress_rp_self LOGIN IN ROLE secpolicy_login;
CREATE ROLE regress_rp_other LOGIN;
CREATE ROLE regress_rp_db LOGIN;
CREATE ROLE regress_rp_nologin NOLOGIN;

SELECT secpolicy.create_user('rp.owner', 'Kestrel-Pass-01x') AS owner \gset
SELECT session_token AS tok FROM secpolicy.login('rp.owner', 'Kestrel-Pass-01x') \gset
SELECT s.id AS sid FROM secpolicy.sessions s WHERE s.user_id = :owner \gset

-- the newest audit row of an action: username, reason, details
CREATE FUNCTION pg_temp.audit_of(act text) RETURNS text LANGUAGE sql AS $$
    SELECT ROW(a.username, a.reason, a.details)::text FROM secpolicy.audit_log a WHERE a.action = act ORDER BY a.id DESC LIMIT 1;
$$;
CREATE FUNCTION pg_temp.audits(act text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM secpolicy.audit_log a WHERE a.action = act;
$$;
CREATE FUNCTION pg_temp.can_login(r text) RETURNS boolean LANGUAGE sql AS $$
    SELECT rolcanlogin FROM pg_roles WHERE rolname = r;
$$;

-- ------------------------------------------------ without preloading ---
SELECT is((SELECT preloaded::text || '/' || active::text FROM secpolicy.role_policy_status()), 'false/false',
          'role_policy_status: not preloaded, not active');
SELECT is(pg_temp.sqlstate_as('regress_rp_self', $$SELECT secpolicy.set_role_password('regress_rp_self', 'Heron-Pass-01x!')$$),
          '55000', 'set_role_password for oneself: 55000 without shared_preload_libraries');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.unlock_role('regress_rp_db', 'support ticket 1')$$), '55000',
          'unlock_role: 55000 without shared_preload_libraries');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.link_role('regress_rp_db', 'rp.owner')$$), '55000',
          'link_role: 55000 without shared_preload_libraries');
SELECT is((SELECT status FROM secpolicy.open_database_access(:'tok', 'regress_rp_db')), 'unavailable',
          'open_database_access answers unavailable, it does not raise');
SELECT is((SELECT count(*) FROM secpolicy.pgbouncer_auth('regress_rp_self')), 0::bigint,
          'pgbouncer_auth serves no verifier without an active role policy (fail closed)');

-- ------------------------------------------------------- bad input ---
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.set_role_password(NULL, 'Heron-Pass-01x!')$$), '22004', 'set_role_password: NULL role 22004');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.set_role_password('regress_rp_self', NULL)$$), '22004', 'set_role_password: NULL password 22004');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.set_role_password('regress_rp_nobody', 'Heron-Pass-01x!')$$), '42704',
          'set_role_password: unknown role 42704');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.unlock_role('regress_rp_nobody', 'ticket')$$), '42704', 'unlock_role: unknown role 42704');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.unlock_role('regress_rp_db', NULL)$$), '22004', 'unlock_role: a reason is required (22004)');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.link_role('regress_rp_nobody', 'rp.owner')$$), '42704', 'link_role: unknown role 42704');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.link_role('regress_rp_db', 'no.such.account')$$), '42704', 'link_role: unknown account 42704');
SELECT is(pg_temp.sqlstate_of($$SELECT secpolicy.unlink_role('regress_rp_db', 'ticket')$$), '42704', 'unlink_role: a role not linked 42704');
SELECT is((SELECT status FROM secpolicy.open_database_access(NULL, NULL, NULL, NULL)), 'unavailable',
          'open_database_access with NULLs answers a status');

-- ------------------------------------------------------ privileges ---
SELECT is(pg_temp.sqlstate_as('regress_rp_self', $$SELECT secpolicy.set_role_password('regress_rp_other', 'Heron-Pass-01x!')$$),
          '42501', 'set_role_password: a role cannot set another role''s password');
SELECT is(pg_temp.sqlstate_as('regress_rp_other', $$SELECT secpolicy.set_role_password('regress_rp_other', 'Heron-Pass-01x!')$$),
          '42501', 'set_role_password: a role outside secpolicy_login cannot call it');
SELECT is(pg_temp.sqlstate_as('regress_rp_admin', $$SELECT secpolicy.set_role_password('postgres', 'Heron-Pass-01x!')$$),
          '42501', 'set_role_password: secpolicy_admin cannot set a superuser''s password');
SELECT is(pg_temp.sqlstate_as('regress_rp_app', $$SELECT secpolicy.unlock_role('regress_rp_db', 'ticket')$$), '42501', 'app: cannot unlock_role');
SELECT is(pg_temp.sqlstate_as('regress_rp_analyst', $$SELECT secpolicy.link_role('regress_rp_db', 'rp.owner')$$), '42501', 'analyst: cannot link_role');
SELECT is(pg_temp.sqlstate_as('regress_rp_analyst', 'SELECT count(*) FROM secpolicy.role_status'), '00000', 'analyst: reads role_status');
SELECT is(pg_temp.sqlstate_as('regress_rp_app', 'SELECT count(*) FROM secpolicy.role_status'), '42501', 'app: cannot read role_status');
SELECT is(pg_temp.sqlstate_as('regress_rp_admin', 'SELECT password_hash FROM secpolicy.role_password_history'), '42501',
          'admin: the role password history''s hashes are unreadable');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p
            WHERE p.pronamespace = 'secpolicy'::regnamespace AND has_function_privilege('secpolicy_login', p.oid, 'EXECUTE')),
          ARRAY['secpolicy.set_role_password(text,text)'], 'secpolicy_login: EXECUTE on set_role_password only');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p
            WHERE p.pronamespace = 'secpolicy'::regnamespace AND has_function_privilege('secpolicy_pgbouncer', p.oid, 'EXECUTE')),
          ARRAY['secpolicy.pgbouncer_auth(text)'], 'secpolicy_pgbouncer: EXECUTE on pgbouncer_auth only');
SELECT is((SELECT string_agg(f, ',') FROM unnest(ARRAY[
              'secpolicy.role_state_live()', 'secpolicy.role_hold(oid)', 'secpolicy.role_may_connect(oid,inet,text)',
              'secpolicy.role_unlock_at_commit(oid)', 'secpolicy.role_link_at_commit(oid,bigint,boolean)',
              'secpolicy.role_window_at_commit(oid,bigint,bigint,timestamp with time zone,inet)',
              'secpolicy.role_password_changed(text,oid,text,timestamp with time zone,text)',
              'secpolicy.record_database_attempts(timestamp with time zone[],text[],text[],text[],text[],boolean[],boolean[],text[],text[])',
              'secpolicy.sync_role_state(oid[],integer[],timestamp with time zone[],timestamp with time zone[],timestamp with time zone[],timestamp with time zone[])',
              'secpolicy.reconcile_roles()', 'secpolicy.close_access_windows(bigint,bigint,text,text)',
              'secpolicy.revoke_role_logins(bigint,text)', 'secpolicy.restore_role_logins(bigint,text)']) f
             CROSS JOIN unnest(ARRAY['secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst', 'secpolicy_login', 'secpolicy_pgbouncer']) g
            WHERE has_function_privilege(g, f::regprocedure, 'EXECUTE')),
          NULL, 'no group role may call the internal functions of the role policy');

-- ----------------------------------------------------- role_status ---
ALTER ROLE regress_rp_db VALID UNTIL 'infinity';
SELECT is((SELECT ROW(password_expires_at, password_expired, password_expiring, locked, failed_attempts, linked_username, mfa_required)::text
             FROM secpolicy.role_status WHERE role = 'regress_rp_db'),
          '(,f,f,f,0,,f)', 'role_status: a login role without state, expiry or link');
SELECT is((SELECT count(*) FROM secpolicy.role_status WHERE role = 'regress_rp_nologin'), 0::bigint,
          'role_status: a role that cannot log in and is linked to nothing is not listed');
ALTER ROLE regress_rp_db VALID UNTIL '2000-01-01';
SELECT is((SELECT password_expired::text || '/' || password_expiring::text FROM secpolicy.role_status WHERE role = 'regress_rp_db'),
          'true/false', 'role_status: a past VALID UNTIL is an expired password');
DO $$ BEGIN EXECUTE format('ALTER ROLE regress_rp_db VALID UNTIL %L', now() + interval '10 days'); END $$;
SELECT is((SELECT password_expired::text || '/' || password_expiring::text FROM secpolicy.role_status WHERE role = 'regress_rp_db'),
          'false/true', 'role_status: within password_expiry_warning (14 days) the expiry is announced');
INSERT INTO secpolicy.role_state (role_name, failed_attempts, locked_at, last_login_at, last_failed_at, first_seen_at)
VALUES ('regress_rp_db', 6, now() - interval '1 minute', now() - interval '100 days', now() - interval '1 minute', now() - interval '1 year');
SELECT is((SELECT ROW(locked, failed_attempts, dormant)::text FROM secpolicy.role_status WHERE role = 'regress_rp_db'),
          '(t,6,t)', 'role_status: lock, failures, and dormant after 100 days without a login (dormant_role_after 90 days)');
UPDATE secpolicy.policy SET dormant_role_after = NULL;
SELECT is((SELECT dormant FROM secpolicy.role_status WHERE role = 'regress_rp_db'), false, 'role_status: dormant_role_after NULL flags no role');
UPDATE secpolicy.policy SET dormant_role_after = '90 days';
INSERT INTO secpolicy.role_links (user_id, role_name) VALUES (:owner, 'regress_rp_db');
INSERT INTO secpolicy.database_access (user_id, session_id, role_name, expires_at)
VALUES (:owner, :sid, 'regress_rp_db', now() + interval '2 hours');
SELECT is((SELECT ROW(linked_username, mfa_required, access_open_until = now() + interval '2 hours')::text
             FROM secpolicy.role_status WHERE role = 'regress_rp_db'),
          '(rp.owner,t,t)', 'role_status: the linked account, MFA and the open window');

-- ----------------------------------------------- what the worker calls ---
SELECT is(secpolicy.record_database_attempts(ARRAY[now() - interval '2 seconds', now() - interval '1 second', now()],
                                             ARRAY['regress_rp_db', 'regress_rp_db', 'regress_rp_ghost'], ARRAY['appdb', 'appdb', 'postgres'],
                                             ARRAY['10.9.8.7', '10.9.8.6', ''], ARRAY['scram-sha-256', 'scram-sha-256', 'md5'],
                                             ARRAY[true, false, false], ARRAY[false, true, false],
                                             ARRAY['invalid_password', 'ok', 'unknown_role'], ARRAY['psql', 'app', '']),
          3, 'record_database_attempts writes every attempt');
SELECT is((SELECT string_agg(ROW(user_id = :owner, client_addr, success, outcome, user_agent)::text, ';' ORDER BY id)
             FROM secpolicy.login_attempts WHERE stage = 'database' AND username = 'regress_rp_db'),
          '(t,10.9.8.7,f,invalid_password,"postgresql database=appdb method=scram-sha-256 ssl=on application=psql");'
          '(t,10.9.8.6,t,ok,"postgresql database=appdb method=scram-sha-256 ssl=off application=app")',
          'database attempts: stage database, the linked account''s id, address, outcome, database, method and SSL');
SELECT is(secpolicy.record_database_attempts(ARRAY[now()], ARRAY['regress_rp_other'], ARRAY['appdb'], ARRAY['10.9.8.5'],
                                             ARRAY['md5'], ARRAY[false], ARRAY[false], ARRAY['invalid_password'], ARRAY['psql']),
          1, 'a second call in the same transaction writes its own attempts only');
SELECT is((SELECT count(*) FROM secpolicy.login_attempts WHERE stage = 'database'), 4::bigint,
          'no attempt of the first call is written twice');
SELECT is((SELECT ROW(user_id, client_addr, outcome)::text FROM secpolicy.login_attempts WHERE stage = 'database' AND username = 'regress_rp_ghost'),
          '(,,unknown_role)', 'an unknown role over a socket: no account, no address');
SELECT is((SELECT host(last_login_addr) || '/' || (last_login_at > now() - interval '2 seconds')::text
             FROM secpolicy.role_state WHERE role_name = 'regress_rp_db'),
          '10.9.8.6/true', 'the last successful login of the role is kept (not the failure)');
SELECT is((SELECT count(*) FROM secpolicy.failed_logins_by_user WHERE username = 'rp.owner' OR username = 'regress_rp_db'), 1::bigint,
          'the reports count database failures (here under the linked account)');

DELETE FROM secpolicy.role_state WHERE role_name = 'regress_rp_db';
-- a time as jsonb writes it in UTC (no trailing zeros in the fraction)
CREATE FUNCTION pg_temp.json_time(t timestamptz) RETURNS text LANGUAGE sql
    AS $$ SELECT regexp_replace(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') $$;
SELECT pg_temp.audits('role_locked') AS locks_before \gset
SELECT secpolicy.sync_role_state(ARRAY['regress_rp_db'::regrole::oid], ARRAY[5], ARRAY[now()], ARRAY[NULL::timestamptz],
                                 ARRAY[now()], ARRAY[NULL::timestamptz]);
SELECT is((SELECT ROW(failed_attempts, locked_at = now())::text FROM secpolicy.role_state WHERE role_name = 'regress_rp_db'), '(5,t)',
          'sync_role_state mirrors the failures and the lock');
SELECT is(pg_temp.audits('role_locked') - :locks_before || ' ' || pg_temp.audit_of('role_locked'),
          '1 (regress_rp_db,"failure limit reached","{""locked_at"": ""' || pg_temp.json_time(now()) || '+00:00"", ""failed_attempts"": 5}")',
          'a new lock is audited as role_locked');
SELECT is((SELECT closed_at IS NOT NULL AND close_reason = 'role_lockout' FROM secpolicy.database_access WHERE role_name = 'regress_rp_db'), true,
          'a new lock closes the role''s access windows');
SELECT secpolicy.sync_role_state(ARRAY['regress_rp_db'::regrole::oid], ARRAY[6], ARRAY[now()], ARRAY[NULL::timestamptz],
                                 ARRAY[now()], ARRAY[NULL::timestamptz]);
SELECT is(pg_temp.audits('role_locked') - :locks_before, 1::bigint, 'the same lock mirrored again is not audited again');
UPDATE secpolicy.role_state SET failed_attempts = 0, locked_at = NULL, cleared_at = now() WHERE role_name = 'regress_rp_db';
SELECT secpolicy.sync_role_state(ARRAY['regress_rp_db'::regrole::oid], ARRAY[7], ARRAY[now() - interval '1 second'],
                                 ARRAY[now() - interval '1 minute'], ARRAY[now()], ARRAY[NULL::timestamptz]);
SELECT is((SELECT ROW(failed_attempts, locked_at)::text FROM secpolicy.role_state WHERE role_name = 'regress_rp_db'), '(0,)',
          'a state copied before the last unlock committed does not bring the lock back');

-- ------------------------------------------------ password follow-up ---
SELECT secpolicy.role_password_changed('regress_rp_other', 'regress_rp_other'::regrole::oid, 'h' || g, NULL, 'test')
  FROM generate_series(1, 5) g;
SELECT is((SELECT rolvaliduntil = now() + interval '6 months' FROM pg_roles WHERE rolname = 'regress_rp_other'), true,
          'a password change sets VALID UNTIL to now + max_password_age');
SELECT is((SELECT array_agg(password_hash ORDER BY id) FROM secpolicy.role_password_history WHERE role_name = 'regress_rp_other'),
          ARRAY['h3', 'h4', 'h5'], 'the role history keeps history_depth hashes, the newest');
SELECT secpolicy.role_password_changed('regress_rp_other', 'regress_rp_other'::regrole::oid, NULL, now() + interval '3 days', 'ALTER ROLE');
SELECT is((SELECT rolvaliduntil = now() + interval '3 days' FROM pg_roles WHERE rolname = 'regress_rp_other'), true,
          'an explicit earlier VALID UNTIL of the statement wins');
SELECT is((SELECT count(*) FROM secpolicy.role_password_history WHERE role_name = 'regress_rp_other'), 3::bigint,
          'a pre-hashed password adds nothing to the history');
UPDATE secpolicy.role_state SET failed_attempts = 4, locked_at = now() WHERE role_name = 'regress_rp_db';
SELECT secpolicy.role_password_changed('regress_rp_db', 'regress_rp_db'::regrole::oid, 'h9', NULL, 'set_role_password');
SELECT is((SELECT ROW(failed_attempts, locked_at, password_changed_at = now())::text FROM secpolicy.role_state WHERE role_name = 'regress_rp_db'),
          '(0,,t)', 'a password change ends the failures and the lock');
SELECT is(pg_temp.audit_of('role_password_changed'),
          '(regress_rp_db,,"{""via"": ""set_role_password"", ""history"": true, ""unlocked"": true, ""valid_until"": ""'
          || pg_temp.json_time(now() + interval '6 months') || '+00:00""}")',
          'the change is audited: how, until when, and that it unlocked the role');
UPDATE secpolicy.policy SET max_password_age = NULL;
ALTER ROLE regress_rp_other VALID UNTIL 'infinity';
SELECT secpolicy.role_password_changed('regress_rp_other', 'regress_rp_other'::regrole::oid, 'h6', NULL, 'test');
SELECT is((SELECT rolvaliduntil FROM pg_roles WHERE rolname = 'regress_rp_other'), 'infinity'::timestamptz,
          'without max_password_age VALID UNTIL is left alone');
UPDATE secpolicy.policy SET max_password_age = '6 months';

-- ---------------------------------------------------- reconcile ---
ALTER ROLE regress_rp_other RENAME TO regress_rp_renamed;
INSERT INTO secpolicy.role_state (role_name, role_oid) VALUES ('regress_rp_gone', 4000000000);
SELECT secpolicy.reconcile_roles();
SELECT is((SELECT count(*) FROM secpolicy.role_password_history WHERE role_name = 'regress_rp_renamed'), 3::bigint,
          'reconcile_roles: the history follows a renamed role');
SELECT is((SELECT count(*) FROM secpolicy.role_state WHERE role_name IN ('regress_rp_gone', 'regress_rp_other')), 0::bigint,
          'reconcile_roles: a dropped role is forgotten, the old name is gone');
SELECT is((SELECT count(*) FROM secpolicy.role_state WHERE role_name = 'regress_rp_self'), 1::bigint,
          'reconcile_roles: login roles are tracked (dormant counts from then)');

-- ---------------------------------------------------- offboarding ---
INSERT INTO secpolicy.role_links (user_id, role_name) VALUES (:owner, 'regress_rp_nologin'), (:owner, 'regress_rp_self');
UPDATE secpolicy.database_access SET closed_at = NULL, close_reason = NULL;
SELECT secpolicy.disable_user('rp.owner', 'left the company');
SELECT is(pg_temp.can_login('regress_rp_db')::text || pg_temp.can_login('regress_rp_self')::text || pg_temp.can_login('regress_rp_nologin')::text,
          'falsefalsefalse', 'disable_user: the linked roles lose LOGIN');
SELECT is((SELECT string_agg(role_name || '=' || (login_revoked_at IS NOT NULL), ',' ORDER BY role_name) FROM secpolicy.role_links),
          'regress_rp_db=true,regress_rp_nologin=false,regress_rp_self=true', 'only the LOGIN it took is remembered');
SELECT is((SELECT string_agg(close_reason, ',') FROM secpolicy.database_access), 'disabled', 'disable_user: the access windows close');
SELECT is(pg_temp.audit_of('role_login_revoked'),
          '(rp.owner,"left the company","{""role"": ""regress_rp_self"", ""had_login"": true, ""connections_terminated"": 0}")',
          'disable_user: each role''s revocation is audited with the reason');
SELECT secpolicy.enable_user('rp.owner', 'back');
SELECT is(pg_temp.can_login('regress_rp_db')::text || pg_temp.can_login('regress_rp_self')::text || pg_temp.can_login('regress_rp_nologin')::text,
          'truetruefalse', 'enable_user gives back only the LOGIN that disabling took');
SELECT is(pg_temp.audits('role_login_restored'), 2::bigint, 'enable_user: each restored LOGIN is audited');

-- windows of three sessions: one goes idle, one logs out, then the account locks out
CREATE FUNCTION pg_temp.window_of_new_session(r text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t text := (secpolicy.login('rp.owner', 'Kestrel-Pass-01x')).session_token;
BEGIN
    INSERT INTO secpolicy.database_access (user_id, session_id, role_name, expires_at)
    SELECT s.user_id, s.id, r, now() + interval '1 hour' FROM secpolicy.sessions s WHERE s.token_digest = secpolicy.token_digest(t);
    RETURN t;
END $$;
DELETE FROM secpolicy.database_access;
SELECT pg_temp.window_of_new_session('regress_rp_db') AS tok_idle \gset
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 hour' WHERE token_digest = secpolicy.token_digest(:'tok_idle');
SELECT (secpolicy.expire_sessions()).expired AS idle_ended \gset
SELECT pg_temp.window_of_new_session('regress_rp_self') AS tok_out \gset
SELECT pg_temp.window_of_new_session('regress_rp_self') AS tok_live \gset
SELECT secpolicy.logout(:'tok_out') AS logged_out \gset
SELECT is((SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY id) FROM secpolicy.database_access), 'open,logout,open',
          'a logout closes the windows of its session; a session that goes idle leaves its window open');
SELECT count(secpolicy.login('rp.owner', 'Wrong-Kestrel-' || g)) AS failures FROM generate_series(1, 5) g \gset
SELECT is((SELECT string_agg(coalesce(close_reason, 'open'), ',' ORDER BY id) FROM secpolicy.database_access), 'lockout,logout,lockout',
          'a lockout of the account closes all its windows, also the idle session''s');

SELECT * FROM finish();
ROLLBACK;
