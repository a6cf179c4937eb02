-- pgTAP: application sessions (src/sql/60_sessions.sql, src/session.c).
-- Covers session_touch (active with the idle deadline capped by the absolute
-- lifetime; expired by idle timeout and by lifetime; revoked by logout,
-- disable_user, change_password (keeping the caller's session),
-- reset_password, lockout, revoke_sessions, admin_set_password,
-- force_password_reset and reset_mfa; unknown for garbage, NULL, '', 1 MB
-- and tokens of another kind; an ended session never comes back), write
-- coalescing of last_seen_at (session_touch_interval), max_sessions_per_user,
-- current_session_user()/current_session_id() with a row-level security
-- policy, has_access(), list_sessions, end_other_sessions, logout (true once),
-- expire_sessions(), and a raised idle timeout or lifetime that must not revive
-- sessions expired under the old one.  Time is moved by editing the sessions rows; with
-- require_mfa = false a correct login opens a session directly.
BEGIN;
\ir lib/helpers.psql
SELECT plan(146);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
UPDATE secpolicy.policy SET require_mfa = false;

-- Fixtures: tokens by label, and small helpers over them.
CREATE TEMP TABLE tok (label text PRIMARY KEY, token text, user_id bigint);

CREATE FUNCTION pg_temp.login(username text, password text, label text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    r secpolicy.login_result := secpolicy.login(username, password);
BEGIN
    INSERT INTO tok VALUES (label, r.session_token, r.user_id)
    ON CONFLICT ON CONSTRAINT tok_pkey DO UPDATE SET token = EXCLUDED.token, user_id = EXCLUDED.user_id;
    RETURN r.status;
END
$$;
CREATE FUNCTION pg_temp.t(label text) RETURNS text
    LANGUAGE sql AS $$ SELECT k.token FROM tok k WHERE k.label = $1 $$;
CREATE FUNCTION pg_temp.touch(label text) RETURNS text
    LANGUAGE sql AS $$ SELECT (secpolicy.session_touch(pg_temp.t($1))).status $$;
CREATE FUNCTION pg_temp.srow(label text) RETURNS secpolicy.sessions
    LANGUAGE sql AS $$
    SELECT s.* FROM secpolicy.sessions s WHERE s.token_digest = secpolicy.token_digest(pg_temp.t($1)) $$;
CREATE FUNCTION pg_temp.ctid(label text) RETURNS tid
    LANGUAGE sql AS $$
    SELECT s.ctid FROM secpolicy.sessions s WHERE s.token_digest = secpolicy.token_digest(pg_temp.t($1)) $$;
CREATE FUNCTION pg_temp.updates() RETURNS bigint
    LANGUAGE sql AS $$
    SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'secpolicy.sessions'::regclass $$;

SELECT FROM secpolicy.create_user('regress_sess_ann', 'Vb8#kT2q!Lm4zR');
SELECT FROM secpolicy.create_user('regress_sess_bob', 'Hw5@pZ9r$Nc3xY');
SELECT FROM secpolicy.create_user('regress_sess_cat', 'Jd2%gF7v^Qs6mK');
SELECT FROM secpolicy.create_user('regress_sess_dan', 'Ty4&bN8w*Ee1uP');
SELECT FROM secpolicy.create_user('regress_sess_eve', 'Rk9!hC3z#Wa5oL');
SELECT FROM secpolicy.create_user('regress_sess_fay', 'Gm6$sV1x@Yi7tB');

-- ---------------------------------------------------------------- active
SELECT is(pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a1'), 'ok', 'login without MFA answers ok');
SELECT ok(pg_temp.t('a1') IS NOT NULL, 'login with require_mfa = false returns a session token');
SELECT is(secpolicy.current_session_user(), NULL, 'current_session_user() is NULL before any touch');
SELECT is(secpolicy.current_session_id(), NULL, 'current_session_id() is NULL before any touch');

-- an expired session does not set the current session
SELECT FROM pg_temp.login('regress_sess_bob', 'Hw5@pZ9r$Nc3xY', 'bx');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '16 minutes'
 WHERE id = (pg_temp.srow('bx')).id;
SELECT is(pg_temp.touch('bx'), 'expired', 'a session idle for 16 minutes answers expired');
SELECT is(secpolicy.current_session_user(), NULL, 'current_session_user() stays NULL after touching an expired session');

SELECT results_eq(
    $$SELECT status, user_id FROM secpolicy.session_touch(pg_temp.t('a1'))$$,
    $$VALUES ('active'::text, pg_temp.uid('regress_sess_ann'))$$,
    'a fresh session answers active with its user');
SELECT is((secpolicy.session_touch(pg_temp.t('a1'))).idle_expires_at,
          (pg_temp.srow('a1')).last_seen_at + interval '15 minutes',
          'idle_expires_at = last_seen_at + session_idle_timeout');
SELECT is(secpolicy.current_session_user(), pg_temp.uid('regress_sess_ann'),
          'current_session_user() is the user after an active touch in the same transaction');
SELECT is(secpolicy.current_session_id(), (pg_temp.srow('a1')).id,
          'current_session_id() is the touched session');

-- the idle deadline never passes the absolute lifetime
UPDATE secpolicy.sessions SET created_at = now() - interval '11 hours 55 minutes'
 WHERE id = (pg_temp.srow('a1')).id;
SELECT is((secpolicy.session_touch(pg_temp.t('a1'))).idle_expires_at,
          (pg_temp.srow('a1')).created_at + interval '12 hours',
          'idle_expires_at is capped by created_at + session_max_lifetime');
SELECT is((secpolicy.session_touch(pg_temp.t('a1'))).idle_expires_at, now() + interval '5 minutes',
          'the capped deadline is 5 minutes away');
UPDATE secpolicy.sessions SET created_at = now() WHERE id = (pg_temp.srow('a1')).id;

-- ---------------------------------------------------------------- idle and lifetime
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '14 minutes 59 seconds'
 WHERE id = (pg_temp.srow('a1')).id;
SELECT is(pg_temp.touch('a1'), 'active', 'a session idle just under the timeout is still active');

SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a2');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '15 minutes 1 second'
 WHERE id = (pg_temp.srow('a2')).id;
SELECT is(pg_temp.touch('a2'), 'expired', 'a session idle just past the timeout answers expired');
SELECT is((pg_temp.srow('a2')).end_reason, 'idle', 'its end_reason is idle');
SELECT ok((pg_temp.srow('a2')).ended_at IS NOT NULL, 'its ended_at is set');
SELECT is(pg_temp.touch('a2'), 'expired', 'it answers expired again on the next touch');
UPDATE secpolicy.sessions SET last_seen_at = now() WHERE id = (pg_temp.srow('a2')).id;
SELECT is(pg_temp.touch('a2'), 'expired', 'an expired session never becomes active again, even with a fresh last_seen_at');
SELECT is((secpolicy.session_touch(pg_temp.t('a2'))).idle_expires_at, NULL, 'an expired session has no idle deadline');

SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a3');
UPDATE secpolicy.sessions SET created_at = now() - interval '12 hours 1 second'
 WHERE id = (pg_temp.srow('a3')).id;
SELECT is(pg_temp.touch('a3'), 'expired', 'a session older than session_max_lifetime answers expired although it is not idle');
SELECT is((pg_temp.srow('a3')).end_reason, 'lifetime', 'its end_reason is lifetime');
UPDATE secpolicy.sessions SET created_at = now() WHERE id = (pg_temp.srow('a3')).id;
SELECT is(pg_temp.touch('a3'), 'expired', 'a lifetime-expired session stays expired');

-- the timeouts come from the policy
UPDATE secpolicy.policy SET session_idle_timeout = '2 minutes';
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a4');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '3 minutes' WHERE id = (pg_temp.srow('a4')).id;
SELECT is(pg_temp.touch('a4'), 'expired', 'a shorter session_idle_timeout in the policy applies');
UPDATE secpolicy.policy SET session_idle_timeout = '15 minutes';
-- as if that change had committed (the check of a longer timeout runs at commit)
SET CONSTRAINTS secpolicy.policy_sessions IMMEDIATE;
SET CONSTRAINTS secpolicy.policy_sessions DEFERRED;

-- a longer timeout or lifetime does not revive sessions that expired under the old one
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a5');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a6');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a7');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '20 minutes' WHERE id = (pg_temp.srow('a5')).id;
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '10 minutes' WHERE id = (pg_temp.srow('a6')).id;
UPDATE secpolicy.sessions SET created_at = now() - interval '13 hours' WHERE id = (pg_temp.srow('a7')).id;
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'a8');
UPDATE secpolicy.policy SET session_idle_timeout = '30 minutes', session_max_lifetime = '24 hours';
-- the check runs when the change commits: a session that passes its old
-- deadline while the changing transaction is still open is ended too
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '16 minutes' WHERE id = (pg_temp.srow('a8')).id;
SELECT is((pg_temp.srow('a5')).id IS NOT NULL AND (pg_temp.srow('a5')).ended_at IS NULL, true,
          'before the change commits nothing is ended (the trigger is deferred)');
SET CONSTRAINTS secpolicy.policy_sessions IMMEDIATE;  -- what COMMIT does
SELECT results_eq($$SELECT pg_temp.touch('a5'), (pg_temp.srow('a5')).end_reason,
                           (pg_temp.srow('a5')).ended_at = (pg_temp.srow('a5')).last_seen_at + interval '15 minutes'$$,
                  $$VALUES ('expired', 'idle', true)$$,
                  'a session idle for 20 minutes stays expired when the idle timeout is raised to 30 minutes (ended at 15)');
SELECT is(pg_temp.touch('a6'), 'active', 'a session idle for 10 minutes is still active');
SELECT results_eq($$SELECT pg_temp.touch('a7'), (pg_temp.srow('a7')).end_reason$$, $$VALUES ('expired', 'lifetime')$$,
                  'a 13-hour-old session stays expired when the lifetime is raised to 24 hours');
SELECT results_eq($$SELECT pg_temp.touch('a8'), (pg_temp.srow('a8')).end_reason$$, $$VALUES ('expired', 'idle')$$,
                  'a session that became idle for 16 minutes while the change was open is ended at commit');
SET CONSTRAINTS secpolicy.policy_sessions DEFERRED;
UPDATE secpolicy.policy SET session_idle_timeout = '15 minutes', session_max_lifetime = '12 hours';

-- ---------------------------------------------------------------- revocations
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'lo');
SELECT is(pg_temp.touch('lo'), 'active', 'session before logout is active');
SELECT is(secpolicy.current_session_user(), pg_temp.uid('regress_sess_ann'), 'and is the current session');
SELECT ok(secpolicy.logout(pg_temp.t('lo')), 'logout returns true for a live session');
SELECT is(secpolicy.current_session_user(), NULL, 'current_session_user() is NULL after logout in the same transaction');
SELECT is(secpolicy.current_session_id(), NULL, 'current_session_id() is NULL after logout in the same transaction');
SELECT ok(NOT secpolicy.logout(pg_temp.t('lo')), 'logout returns false the second time');
SELECT ok(NOT secpolicy.logout('sps_not-a-token'), 'logout returns false for an unknown token');
SELECT ok(NOT secpolicy.logout(NULL), 'logout returns false for NULL');
SELECT is(pg_temp.touch('lo'), 'revoked', 'a logged-out session answers revoked');
SELECT is((pg_temp.srow('lo')).end_reason, 'logout', 'its end_reason is logout');
UPDATE secpolicy.sessions SET last_seen_at = now() WHERE id = (pg_temp.srow('lo')).id;
SELECT is(pg_temp.touch('lo'), 'revoked', 'a revoked session never becomes active again');
SELECT is((secpolicy.session_touch(pg_temp.t('lo'))).user_id, pg_temp.uid('regress_sess_ann'),
          'revoked still names the user');

-- disable_user
SELECT FROM pg_temp.login('regress_sess_bob', 'Hw5@pZ9r$Nc3xY', 'b1');
SELECT is(pg_temp.touch('b1'), 'active', 'bob''s session is active');
SELECT FROM secpolicy.disable_user('regress_sess_bob', 'left the company');
SELECT is(pg_temp.touch('b1'), 'revoked', 'disable_user revokes the session');
SELECT is((pg_temp.srow('b1')).end_reason, 'disabled', 'end_reason disabled');
SELECT FROM secpolicy.enable_user('regress_sess_bob', 'came back');
SELECT is(pg_temp.touch('b1'), 'revoked', 'enabling the account again does not revive the session');

-- change_password keeps the session it was made from
SELECT FROM pg_temp.login('regress_sess_cat', 'Jd2%gF7v^Qs6mK', 'c1');
SELECT FROM pg_temp.login('regress_sess_cat', 'Jd2%gF7v^Qs6mK', 'c2');
SELECT FROM pg_temp.login('regress_sess_cat', 'Jd2%gF7v^Qs6mK', 'c3');
SELECT is((secpolicy.change_password('regress_sess_cat', 'Jd2%gF7v^Qs6mK', 'Pz3*fL8q#Xw2vD', NULL,
                                     pg_temp.t('c1'))).status, 'ok', 'change_password with a session token answers ok');
SELECT is(pg_temp.touch('c1'), 'active', 'the session passed to change_password stays active');
SELECT is(pg_temp.touch('c2'), 'revoked', 'another session of the user is revoked by change_password');
SELECT is((pg_temp.srow('c2')).end_reason, 'password_changed', 'end_reason password_changed');
SELECT is((pg_temp.srow('c3')).end_reason, 'password_changed', 'every other session ends');
SELECT is((secpolicy.change_password('regress_sess_cat', 'Pz3*fL8q#Xw2vD', 'Mn7!dR4s&Kv9wQ')).status, 'ok',
          'change_password without a session token answers ok');
SELECT is(pg_temp.touch('c1'), 'revoked', 'without a session token every session ends, the caller''s too');
SELECT is((pg_temp.srow('c1')).end_reason, 'password_changed', 'end_reason password_changed');

-- reset_password
SELECT FROM pg_temp.login('regress_sess_dan', 'Ty4&bN8w*Ee1uP', 'd1');
CREATE TEMP TABLE rt AS SELECT secpolicy.request_password_reset('regress_sess_dan') AS token;
SELECT is(pg_temp.touch('d1'), 'active', 'requesting a reset leaves the session active');
SELECT is((secpolicy.session_touch((SELECT token FROM rt))).status, 'unknown',
          'a reset token is not a session token (unknown)');
SELECT is((secpolicy.reset_password((SELECT token FROM rt), 'Bq5^wE2n!Hu8cZ')).status, 'ok', 'reset_password answers ok');
SELECT is(pg_temp.touch('d1'), 'revoked', 'reset_password revokes the session');
SELECT is((pg_temp.srow('d1')).end_reason, 'password_changed', 'end_reason password_changed');

-- lockout
SELECT FROM pg_temp.login('regress_sess_eve', 'Rk9!hC3z#Wa5oL', 'e1');
SELECT is(pg_temp.touch('e1'), 'active', 'eve''s session is active');
SELECT FROM generate_series(1, 4) i, secpolicy.login('regress_sess_eve', 'wrong-' || i);
SELECT is(pg_temp.touch('e1'), 'active', 'four wrong passwords leave the session active');
SELECT is((secpolicy.login('regress_sess_eve', 'wrong-5')).status, 'reset_required', 'the fifth wrong password locks the account');
SELECT is(pg_temp.touch('e1'), 'revoked', 'the lockout revokes the session');
SELECT is((pg_temp.srow('e1')).end_reason, 'lockout', 'end_reason lockout');

-- the admin actions end sessions with reason admin
SELECT FROM pg_temp.login('regress_sess_fay', 'Gm6$sV1x@Yi7tB', 'f1');
SELECT is(secpolicy.revoke_sessions('regress_sess_fay', 'suspicious activity'), 1, 'revoke_sessions returns how many ended');
SELECT is(pg_temp.touch('f1'), 'revoked', 'revoke_sessions revokes the session');
SELECT is((pg_temp.srow('f1')).end_reason, 'admin', 'end_reason admin (revoke_sessions)');

SELECT FROM pg_temp.login('regress_sess_fay', 'Gm6$sV1x@Yi7tB', 'f2');
SELECT FROM secpolicy.admin_set_password('regress_sess_fay', 'Wc8@tJ5y%Ab2nM', 'helpdesk');
SELECT is(pg_temp.touch('f2'), 'revoked', 'admin_set_password revokes the session');
SELECT is((pg_temp.srow('f2')).end_reason, 'admin', 'end_reason admin (admin_set_password)');

SELECT FROM secpolicy.unlock_user('regress_sess_fay');
UPDATE secpolicy.users SET must_change_password = false WHERE id = pg_temp.uid('regress_sess_fay');
SELECT is(pg_temp.login('regress_sess_fay', 'Wc8@tJ5y%Ab2nM', 'f3'), 'ok', 'fay logs in again');
SELECT FROM secpolicy.force_password_reset('regress_sess_fay', 'password seen in a leak');
SELECT is(pg_temp.touch('f3'), 'revoked', 'force_password_reset revokes the session');
SELECT is((pg_temp.srow('f3')).end_reason, 'admin', 'end_reason admin (force_password_reset)');

SELECT FROM secpolicy.unlock_user('regress_sess_fay');
SELECT is(pg_temp.login('regress_sess_fay', 'Wc8@tJ5y%Ab2nM', 'f4'), 'ok', 'fay logs in once more');
SELECT FROM secpolicy.reset_mfa('regress_sess_fay', 'lost phone');
SELECT is(pg_temp.touch('f4'), 'revoked', 'reset_mfa revokes the session');
SELECT is((pg_temp.srow('f4')).end_reason, 'admin', 'end_reason admin (reset_mfa)');

-- ---------------------------------------------------------------- unknown tokens
SELECT results_eq($$SELECT status, user_id, idle_expires_at FROM secpolicy.session_touch('sps_garbage')$$,
                  $$VALUES ('unknown'::text, NULL::bigint, NULL::timestamptz)$$, 'garbage answers unknown with NULLs');
SELECT is((secpolicy.session_touch(NULL)).status, 'unknown', 'NULL answers unknown');
SELECT is((secpolicy.session_touch('')).status, 'unknown', 'the empty string answers unknown');
SELECT is((secpolicy.session_touch(repeat('x', 1048576))).status, 'unknown', 'a 1 MB string answers unknown');
SELECT is((secpolicy.session_touch(pg_temp.t('a1') || 'x')).status, 'unknown', 'a token with a character appended answers unknown');
SELECT is((secpolicy.session_touch(upper(pg_temp.t('a1')))).status, 'unknown', 'tokens are case-sensitive');
SELECT is((secpolicy.session_touch(encode(secpolicy.token_digest(pg_temp.t('a1')), 'hex'))).status, 'unknown',
          'the stored digest is not a token');

-- ---------------------------------------------------------------- write coalescing
UPDATE secpolicy.policy SET session_touch_interval = '5 seconds';
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'w1');
CREATE TEMP TABLE w AS SELECT pg_temp.ctid('w1') AS rowtid, (pg_temp.srow('w1')).last_seen_at AS seen, pg_temp.updates() AS upd;
SELECT is(pg_temp.touch('w1'), 'active', 'touch right after login is active');
SELECT is(pg_temp.ctid('w1'), (SELECT rowtid FROM w), 'a touch within session_touch_interval does not rewrite the row');
SELECT is(pg_temp.updates(), (SELECT upd FROM w), 'and no update of secpolicy.sessions was counted');

UPDATE secpolicy.sessions SET last_seen_at = now() - interval '4 seconds' WHERE id = (pg_temp.srow('w1')).id;
UPDATE w SET rowtid = pg_temp.ctid('w1'), upd = pg_temp.updates();
SELECT results_eq(
    $$SELECT status, idle_expires_at FROM secpolicy.session_touch(pg_temp.t('w1'))$$,
    $$VALUES ('active'::text, now() - interval '4 seconds' + interval '15 minutes')$$,
    'a touch 4 s after the last write does not write, and its deadline is the stored last_seen_at + timeout');
SELECT is(pg_temp.updates(), (SELECT upd FROM w), 'no update within the interval');
SELECT ok((secpolicy.session_touch(pg_temp.t('w1'))).idle_expires_at
              BETWEEN now() + interval '15 minutes' - interval '5 seconds' AND now() + interval '15 minutes',
          'the idle deadline is exact to session_touch_interval (early, never late)');

UPDATE secpolicy.sessions SET last_seen_at = now() - interval '10 seconds' WHERE id = (pg_temp.srow('w1')).id;
UPDATE w SET rowtid = pg_temp.ctid('w1'), upd = pg_temp.updates();
SELECT is(pg_temp.touch('w1'), 'active', 'touch 10 s after the last write is active');
SELECT is((pg_temp.srow('w1')).last_seen_at, now(), 'and writes last_seen_at');
SELECT is(pg_temp.updates(), (SELECT upd FROM w) + 1, 'exactly one update was counted');
SELECT is(pg_temp.touch('w1'), 'active', 'the next touch is active');
SELECT is(pg_temp.updates(), (SELECT upd FROM w) + 1, 'and does not write again');

UPDATE secpolicy.sessions SET last_seen_at = now() - interval '4.999 seconds' WHERE id = (pg_temp.srow('w1')).id;
UPDATE w SET upd = pg_temp.updates();
SELECT is(pg_temp.touch('w1'), 'active', 'a touch 4.999 s after the last write is active');
SELECT is(pg_temp.updates(), (SELECT upd FROM w), 'and does not write (interval 5 s)');
UPDATE secpolicy.policy SET session_touch_interval = '0';
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 second' WHERE id = (pg_temp.srow('w1')).id;
UPDATE w SET rowtid = pg_temp.ctid('w1'), upd = pg_temp.updates();
SELECT is(pg_temp.touch('w1'), 'active', 'with interval 0 a touch 1 s later is active');
SELECT is(pg_temp.updates(), (SELECT upd FROM w) + 1, 'and writes');
SELECT isnt(pg_temp.ctid('w1'), (SELECT rowtid FROM w), 'the row was rewritten');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 millisecond' WHERE id = (pg_temp.srow('w1')).id;
UPDATE w SET upd = pg_temp.updates();
SELECT is(pg_temp.touch('w1'), 'active', 'with interval 0 a touch 1 ms later is active');
SELECT is(pg_temp.updates(), (SELECT upd FROM w) + 1, 'with interval 0 every touch writes');
SELECT is((pg_temp.srow('w1')).last_seen_at, now(), 'last_seen_at is the time of the touch');
UPDATE secpolicy.policy SET session_touch_interval = '5 seconds';

-- ---------------------------------------------------------------- max_sessions_per_user
SELECT is((SELECT max_sessions_per_user FROM secpolicy.policy), NULL, 'max_sessions_per_user is off (NULL) by default');
DELETE FROM secpolicy.sessions WHERE user_id = pg_temp.uid('regress_sess_dan');
SELECT FROM generate_series(1, 3) i, pg_temp.login('regress_sess_dan', 'Bq5^wE2n!Hu8cZ', 'm' || i);
SELECT is((SELECT count(*) FROM secpolicy.sessions WHERE user_id = pg_temp.uid('regress_sess_dan') AND ended_at IS NULL),
          3::bigint, 'without a cap three logins give three live sessions');
UPDATE secpolicy.policy SET max_sessions_per_user = 2;
UPDATE secpolicy.sessions SET ended_at = now(), end_reason = 'logout'
 WHERE user_id = pg_temp.uid('regress_sess_ann') AND ended_at IS NULL;
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'n1');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'n2');
SELECT is(pg_temp.touch('n1'), 'active', 'with a cap of 2 the first session is active after two logins');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'n3');
SELECT is(pg_temp.touch('n1'), 'revoked', 'a third login ends the oldest session');
SELECT is((pg_temp.srow('n1')).end_reason, 'session_limit', 'with end_reason session_limit');
SELECT is(pg_temp.touch('n2'), 'active', 'the second session stays');
SELECT is(pg_temp.touch('n3'), 'active', 'the new session is active');
SELECT is((SELECT count(*) FROM secpolicy.sessions WHERE user_id = pg_temp.uid('regress_sess_ann') AND ended_at IS NULL),
          2::bigint, 'the user has exactly 2 live sessions');
UPDATE secpolicy.policy SET max_sessions_per_user = NULL;

-- ---------------------------------------------------------------- list_sessions, end_other_sessions
SELECT is((SELECT count(*) FROM secpolicy.list_sessions(pg_temp.t('n2'))), 2::bigint, 'list_sessions shows the 2 live sessions');
SELECT results_eq(
    $$SELECT session_id, current FROM secpolicy.list_sessions(pg_temp.t('n2')) ORDER BY session_id$$,
    $$VALUES ((pg_temp.srow('n2')).id, true), ((pg_temp.srow('n3')).id, false)$$,
    'list_sessions marks the caller''s session as current');
SELECT is((SELECT count(*) FROM secpolicy.list_sessions(pg_temp.t('n1'))), 0::bigint, 'list_sessions of an ended session shows nothing');
SELECT is((SELECT count(*) FROM secpolicy.list_sessions('sps_garbage')), 0::bigint, 'list_sessions of garbage shows nothing');
SELECT is((SELECT count(*) FROM secpolicy.list_sessions(NULL)), 0::bigint, 'list_sessions of NULL shows nothing');
SELECT is(secpolicy.end_other_sessions(pg_temp.t('n1')), 0, 'end_other_sessions of an ended session ends nothing');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'n4');
SELECT is(secpolicy.end_other_sessions(pg_temp.t('n3')), 2, 'end_other_sessions ends the 2 other sessions');
SELECT is(pg_temp.touch('n3'), 'active', 'the caller''s session stays active');
SELECT is(pg_temp.touch('n2'), 'revoked', 'the others are revoked');
SELECT is((pg_temp.srow('n4')).end_reason, 'logout', 'with end_reason logout');
SELECT is(secpolicy.end_other_sessions(pg_temp.t('n3')), 0, 'a second end_other_sessions ends nothing');

-- ---------------------------------------------------------------- row-level security, has_access
CREATE TABLE public.regress_sess_notes (owner bigint NOT NULL, body text NOT NULL);
INSERT INTO public.regress_sess_notes VALUES (pg_temp.uid('regress_sess_ann'), 'ann-1'), (pg_temp.uid('regress_sess_ann'), 'ann-2'),
                                 (pg_temp.uid('regress_sess_dan'), 'dan-1');
ALTER TABLE public.regress_sess_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON public.regress_sess_notes USING (owner = secpolicy.current_session_user());
CREATE ROLE regress_sess_app NOLOGIN;
GRANT secpolicy_app TO regress_sess_app;
GRANT SELECT ON public.regress_sess_notes TO regress_sess_app;
GRANT SELECT ON tok TO regress_sess_app;
SELECT FROM secpolicy.grant_access('regress_sess_ann', 'billing.read', 'test');

SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'r0');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'r1');
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'r2');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '10 seconds' WHERE id = (pg_temp.srow('r1')).id;
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '16 minutes' WHERE id = (pg_temp.srow('r2')).id;

SET LOCAL ROLE regress_sess_app;
SELECT ok(secpolicy.logout(pg_temp.t('r0')), 'the application role logs a session out (no current session now)');
SELECT is((SELECT count(*) FROM public.regress_sess_notes), 0::bigint, 'RLS: no rows visible without a touched session');
SELECT is(secpolicy.has_access('billing.read'), false, 'has_access is false without a touched session');
SELECT is((secpolicy.session_touch(pg_temp.t('n3'))).status, 'active', 'the application role touches ann''s session');
SELECT results_eq($$SELECT body FROM public.regress_sess_notes ORDER BY body$$, ARRAY['ann-1', 'ann-2'],
                  'RLS on current_session_user(): only ann''s rows are visible');
SELECT is(secpolicy.has_access('billing.read'), true, 'has_access is true for a granted access');
SELECT is(secpolicy.has_access('billing.write'), false, 'has_access is false for an access not granted');
SELECT is((secpolicy.session_touch(pg_temp.t('m1'))).status, 'active', 'the application role touches dan''s session');
SELECT results_eq($$SELECT body FROM public.regress_sess_notes ORDER BY body$$, ARRAY['dan-1'],
                  'RLS: after touching dan''s session only dan''s rows are visible');
SELECT is(secpolicy.has_access('billing.read'), false, 'has_access follows the session touched last (dan has no grant)');
SELECT ok(secpolicy.logout(pg_temp.t('m1')), 'the application role logs dan out');
SELECT is((SELECT count(*) FROM public.regress_sess_notes), 0::bigint, 'RLS: no rows after logout in the same transaction');
SELECT is((secpolicy.session_touch(pg_temp.t('r1'))).status, 'active', 'the application role touches a session due for a write');
SELECT is((secpolicy.session_touch(pg_temp.t('r2'))).status, 'expired', 'the application role touches an idle session');
SELECT throws_ok('SELECT count(*) FROM secpolicy.sessions', '42501', NULL, 'the application role cannot read sessions itself');
RESET ROLE;
SELECT is((pg_temp.srow('r1')).last_seen_at, now(), 'the touch by the application role wrote last_seen_at');
SELECT is((pg_temp.srow('r2')).end_reason, 'idle', 'the touch by the application role ended the idle session');

-- ---------------------------------------------------------------- expire_sessions
DELETE FROM secpolicy.sessions;
SELECT FROM generate_series(1, 6) i, pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'p' || i);
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '20 minutes', created_at = now() - interval '1 hour'
 WHERE id = (pg_temp.srow('p1')).id;                                   -- idle since 5 minutes
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '1 minute', created_at = now() - interval '13 hours'
 WHERE id = (pg_temp.srow('p2')).id;                                   -- lifetime over 1 hour ago
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '11 hours', created_at = now() - interval '13 hours'
 WHERE id = (pg_temp.srow('p3')).id;                                   -- idle first (10h45m ago), lifetime later
UPDATE secpolicy.sessions SET ended_at = now() - interval '40 days', end_reason = 'logout'
 WHERE id = (pg_temp.srow('p5')).id;                                   -- ended long ago: deleted
UPDATE secpolicy.sessions SET ended_at = now() - interval '10 days', end_reason = 'logout'
 WHERE id = (pg_temp.srow('p6')).id;                                   -- ended recently: kept
SELECT results_eq($$SELECT expired, deleted FROM secpolicy.expire_sessions('30 days')$$,
                  $$VALUES (3, 1)$$, 'expire_sessions ends 3 sessions and deletes 1 old ended one');
SELECT results_eq($$SELECT (pg_temp.srow('p1')).end_reason, (pg_temp.srow('p1')).ended_at$$,
                  $$VALUES ('idle'::text, now() - interval '5 minutes')$$,
                  'an idle session ends with reason idle at the time it went idle');
SELECT results_eq($$SELECT (pg_temp.srow('p2')).end_reason, (pg_temp.srow('p2')).ended_at$$,
                  $$VALUES ('lifetime'::text, now() - interval '1 hour')$$,
                  'an outlived session ends with reason lifetime at the end of its lifetime');
SELECT results_eq($$SELECT (pg_temp.srow('p3')).end_reason, (pg_temp.srow('p3')).ended_at$$,
                  $$VALUES ('idle'::text, now() - interval '10 hours 45 minutes')$$,
                  'past both deadlines the one reached first counts');
SELECT ok((pg_temp.srow('p4')).ended_at IS NULL, 'a live session is not touched by expire_sessions');
SELECT ok((pg_temp.srow('p5')).user_id IS NULL, 'an ended session older than keep_ended is deleted');
SELECT is((pg_temp.srow('p6')).end_reason, 'logout', 'an ended session younger than keep_ended is kept');
SELECT results_eq($$SELECT expired, deleted FROM secpolicy.expire_sessions('30 days')$$,
                  $$VALUES (0, 0)$$, 'a second expire_sessions finds nothing to do');
SELECT is(pg_temp.touch('p1'), 'expired', 'a session ended by expire_sessions answers expired');

-- ---------------------------------------------------------------- known gaps (bugs reported)
-- session_touch ends a session at the time it really expired, with the
-- reason reached first, as expire_sessions does.
SELECT FROM pg_temp.login('regress_sess_ann', 'Vb8#kT2q!Lm4zR', 'q1');
UPDATE secpolicy.sessions SET last_seen_at = now() - interval '11 hours', created_at = now() - interval '13 hours'
 WHERE id = (pg_temp.srow('q1')).id;
SELECT is(pg_temp.touch('q1'), 'expired', 'a session past both deadlines answers expired');
SELECT results_eq($$SELECT (pg_temp.srow('q1')).end_reason, (pg_temp.srow('q1')).ended_at$$,
                  $$VALUES ('idle'::text, now() - interval '10 hours 45 minutes')$$,
                  'session_touch records the real expiry time and the deadline reached first (as expire_sessions)');

SELECT * FROM finish();
ROLLBACK;
