-- pgTAP: the self-service password flows.
--   request_password_reset: 'spr_' token (stored as its digest only), lifetime
--     from the policy, NULL for unknown/disabled/NULL/empty usernames after the
--     same work (a write, an attempt row with stage reset), a new request
--     revokes the previous token;
--   reset_password: invalid_token for garbage, NULL, empty, oversized, used,
--     expired, revoked tokens and after disable_user; rejected (token still
--     usable) with the rule codes; ok clears failed_attempts, reset_required,
--     locked_at and must_change_password, ends every session
--     ('password_changed') and audits 'password_reset';
--   change_password: ok, invalid_credentials, rejected with violations,
--     reset_required, disabled accounts, the attempt row and audit; other
--     sessions end but the one passed as session_token stays; an account
--     without a password costs one argon2 verification, as any other.
BEGIN;
\ir lib/helpers.psql
SELECT plan(63);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false, max_failed_attempts = 5, reset_token_lifetime = '1 hour';

CREATE FUNCTION pg_temp.reset(t text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT ROW(r.status, r.violations)::text FROM secpolicy.reset_password(t, p) r;
$$;
CREATE FUNCTION pg_temp.change(u text, o text, n text, s text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT ROW(c.status, c.violations)::text FROM secpolicy.change_password(u, o, n, NULL, s) c;
$$;
CREATE FUNCTION pg_temp.reset_row(t text) RETURNS secpolicy.password_resets LANGUAGE sql AS $$
    SELECT * FROM secpolicy.password_resets WHERE token_digest = secpolicy.token_digest(t);
$$;
CREATE FUNCTION pg_temp.session_state(t text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(end_reason, 'live') FROM secpolicy.sessions WHERE token_digest = secpolicy.token_digest(t);
$$;

SELECT secpolicy.create_user('hugo', 'Puffin-Pass-01x') AS hugo \gset
SELECT secpolicy.create_user('iris', 'Gannet-Pass-01x') AS iris \gset
SELECT secpolicy.create_user('jon', 'Plover-Pass-01x') AS jon \gset
SELECT secpolicy.create_user('kim', 'Curlew-Pass-01x') AS kim \gset

-- request_password_reset
SELECT secpolicy.request_password_reset('HUGO', '198.51.100.7') AS tok1 \gset
SELECT matches(:'tok1'::text, '^spr_[A-Za-z0-9_-]{43}$', 'a reset token is spr_ and 43 base64url characters');
SELECT is((SELECT ROW(r.user_id, r.requested_addr, r.expires_at, r.used_at, r.revoked_at)::text FROM pg_temp.reset_row(:'tok1') r),
          ROW(:hugo, '198.51.100.7'::inet, now() + interval '1 hour', NULL::timestamptz, NULL::timestamptz)::text,
          'stored under its digest, for the user, from the address, valid for the policy''s lifetime');
SELECT is((SELECT count(*) FROM secpolicy.password_resets r WHERE strpos(row_to_json(r)::text, substr(:'tok1', 5)) > 0), 0::bigint,
          'the token itself is not stored');
SELECT is(secpolicy.request_password_reset('nobody-here'), NULL, 'unknown user: NULL');
SELECT is(secpolicy.request_password_reset(NULL), NULL, 'NULL username: NULL');
SELECT is(secpolicy.request_password_reset(''), NULL, 'empty username: NULL');
DO $$ BEGIN PERFORM secpolicy.disable_user('iris', 'regress'); END $$;
SELECT is(secpolicy.request_password_reset('iris'), NULL, 'disabled user: NULL');
-- the same work either way (it took a fifth of the time for an unknown name in
-- 1.0, which wrote nothing): a request writes (so its commit waits for a WAL
-- flush) and is recorded, for an account, an unknown name and a disabled one
CREATE FUNCTION pg_temp.writes(u text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    before pg_lsn := pg_current_wal_insert_lsn();
BEGIN
    PERFORM secpolicy.request_password_reset(u);
    RETURN pg_current_wal_insert_lsn() > before;
END $$;
SELECT is(ARRAY[pg_temp.writes('hugo'), pg_temp.writes('nobody-there'), pg_temp.writes('iris')], ARRAY[true, true, true],
          'a request writes the same kinds of rows for an account, an unknown name and a disabled account');
SELECT is((SELECT string_agg(a.outcome || '/' || a.stage || '/' || a.success, ',' ORDER BY a.id)
             FROM secpolicy.login_attempts a WHERE a.username IN ('hugo', 'nobody-there', 'iris') AND a.stage = 'reset'),
          'disabled/reset/false,reset_requested/reset/true,unknown_user/reset/false,disabled/reset/false',
          'every request is in the attempt log (stage reset)');
SELECT secpolicy.request_password_reset('hugo') AS tok2 \gset
SELECT isnt(:'tok2'::text, :'tok1', 'a second request gives a new token');
SELECT isnt((SELECT revoked_at FROM pg_temp.reset_row(:'tok1')), NULL, 'and revokes the first one');
SELECT is((SELECT count(*) FROM secpolicy.password_resets WHERE user_id = :hugo AND used_at IS NULL AND revoked_at IS NULL), 1::bigint,
          'one live token per user');
SELECT is(pg_temp.reset(:'tok1', 'Puffin-Pass-02x'), '(invalid_token,)', 'the revoked token is invalid_token');

-- invalid tokens
SELECT is(pg_temp.reset('spr_not-a-real-token', 'Puffin-Pass-02x'), '(invalid_token,)', 'garbage: invalid_token');
SELECT is(pg_temp.reset(NULL, 'Puffin-Pass-02x'), '(invalid_token,)', 'NULL token: invalid_token');
SELECT is(pg_temp.reset('', 'Puffin-Pass-02x'), '(invalid_token,)', 'empty token: invalid_token');
SELECT is(pg_temp.reset(:'tok2' || repeat('x', 200), 'Puffin-Pass-02x'), '(invalid_token,)', 'an oversized token: invalid_token');
SELECT is(pg_temp.reset(upper(:'tok2'), 'Puffin-Pass-02x'), '(invalid_token,)', 'tokens are case-sensitive');

-- a locked account recovers through a reset
SELECT session_token AS hugo_s FROM secpolicy.login('hugo', 'Puffin-Pass-01x') \gset
SELECT is(pg_temp.status('hugo', 'Wrong-1x') || pg_temp.status('hugo', 'Wrong-2x') || pg_temp.status('hugo', 'Wrong-3x')
          || pg_temp.status('hugo', 'Wrong-4x') || pg_temp.status('hugo', 'Wrong-5x'),
          'invalid_credentialsinvalid_credentialsinvalid_credentialsinvalid_credentialsreset_required', 'hugo locks himself out');
SELECT is(pg_temp.reset(:'tok2', 'zqxvw'), '(rejected,"{too_short,missing_upper,missing_digit,missing_symbol}")',
          'a weak new password: rejected with the rule codes');
SELECT is(pg_temp.reset(:'tok2', 'Puffin-Pass-01x'), '(rejected,{reused_password})', 'the current password: rejected, reused_password');
SELECT is(pg_temp.reset(:'tok2', 'My-hugo-Pass-1x'), '(rejected,{contains_username})', 'a password with the username: rejected');
SELECT is(pg_temp.reset(:'tok2', NULL), '(rejected,{too_short})', 'a NULL password: rejected, too_short');
SELECT is((SELECT ROW(used_at, revoked_at)::text FROM pg_temp.reset_row(:'tok2')), '(,)', 'the token is still usable after rejections');
SELECT is(pg_temp.state('hugo'), '(5,t,t)', 'and the account is still locked');
SELECT is(pg_temp.reset(:'tok2', 'Puffin-Pass-02x'), '(ok,{})', 'a good password: ok');
SELECT is(pg_temp.state('hugo'), '(0,f,f)', 'failed_attempts, reset_required and locked_at are cleared');
SELECT is((SELECT used_at FROM pg_temp.reset_row(:'tok2')), now(), 'the token is marked used');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'password_reset' AND user_id = :hugo), 1::bigint, 'password_reset is audited');
SELECT is(pg_temp.status('hugo', 'Puffin-Pass-02x'), 'ok', 'the new password logs in');
SELECT is(pg_temp.status('hugo', 'Puffin-Pass-01x'), 'invalid_credentials', 'the old one does not');
SELECT is(pg_temp.reset(:'tok2', 'Puffin-Pass-03x'), '(invalid_token,)', 'a used token: invalid_token');

-- sessions end at a reset
SELECT session_token AS jon_s1 FROM secpolicy.login('jon', 'Plover-Pass-01x') \gset
SELECT session_token AS jon_s2 FROM secpolicy.login('jon', 'Plover-Pass-01x') \gset
SELECT secpolicy.request_password_reset('jon') AS tok3 \gset
SELECT is(pg_temp.reset(:'tok3', 'Plover-Pass-02x'), '(ok,{})', 'jon resets his password');
SELECT is(pg_temp.session_state(:'jon_s1') || ',' || pg_temp.session_state(:'jon_s2'), 'password_changed,password_changed',
          'every session of the user ended with end_reason password_changed');

-- expiry and revocation
SELECT secpolicy.request_password_reset('jon') AS tok4 \gset
UPDATE secpolicy.password_resets SET expires_at = now() - interval '1 second' WHERE token_digest = secpolicy.token_digest(:'tok4');
SELECT is(pg_temp.reset(:'tok4', 'Plover-Pass-03x'), '(invalid_token,)', 'an expired token: invalid_token');
UPDATE secpolicy.password_resets SET expires_at = now() WHERE token_digest = secpolicy.token_digest(:'tok4');
SELECT is(pg_temp.reset(:'tok4', 'Plover-Pass-03x'), '(invalid_token,)', 'a token expiring this instant: invalid_token');
UPDATE secpolicy.password_resets SET expires_at = now() + interval '1 second' WHERE token_digest = secpolicy.token_digest(:'tok4');
SELECT is(pg_temp.reset(:'tok4', 'zqxvw'), '(rejected,"{too_short,missing_upper,missing_digit,missing_symbol}")',
          'a second before expiry the token still works');
SELECT secpolicy.request_password_reset('jon') AS tok5 \gset
DO $$ BEGIN PERFORM secpolicy.disable_user('jon', 'regress'); END $$;
SELECT isnt((SELECT revoked_at FROM pg_temp.reset_row(:'tok5')), NULL, 'disable_user revokes live reset tokens');
SELECT is(pg_temp.reset(:'tok5', 'Plover-Pass-03x'), '(invalid_token,)', 'and they answer invalid_token');
DO $$ BEGIN PERFORM secpolicy.enable_user('jon'); END $$;
SELECT is(pg_temp.reset(:'tok5', 'Plover-Pass-03x'), '(invalid_token,)', 'even after enable_user');

-- a reset clears a temporary password's must-change flag
DO $$ BEGIN PERFORM secpolicy.admin_set_password('kim', 'Temp-Admin-Pass-1x', 'regress'); END $$;
SELECT is(pg_temp.status('kim', 'Temp-Admin-Pass-1x'), 'password_change_required', 'kim has a temporary password');
SELECT secpolicy.request_password_reset('kim') AS tok6 \gset
SELECT is(pg_temp.reset(:'tok6', 'Curlew-Pass-02x'), '(ok,{})', 'kim resets instead');
SELECT is(pg_temp.status('kim', 'Curlew-Pass-02x'), 'ok', 'the reset password logs in without a further change');

-- change_password
SELECT is(pg_temp.change('kim', 'Curlew-Pass-02x', 'Curlew-Pass-03x'), '(ok,{})', 'change_password: ok');
SELECT is((SELECT a.outcome || '/' || a.stage || '/' || a.success || '/' || a.user_id FROM secpolicy.login_attempts a ORDER BY a.id DESC LIMIT 1),
          'password_changed/change_password/true/' || :kim, 'the attempt row of a change');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'password_changed' AND user_id = :kim), 1::bigint, 'password_changed is audited');
SELECT is(pg_temp.status('kim', 'Curlew-Pass-02x') || ',' || pg_temp.status('kim', 'Curlew-Pass-03x'), 'invalid_credentials,ok',
          'the old password does not log in, the new one does (and clears the counter)');
SELECT is(pg_temp.change('kim', 'Curlew-Pass-99x', 'Curlew-Pass-04x'), '(invalid_credentials,)', 'wrong old password: invalid_credentials');
SELECT is(pg_temp.state('kim'), '(1,f,f)', 'and it counts as a failure');
SELECT is(pg_temp.change('nobody-here', 'Curlew-Pass-03x', 'Curlew-Pass-04x'), '(invalid_credentials,)', 'unknown user: invalid_credentials');
SELECT is(pg_temp.change('kim', 'Curlew-Pass-03x', 'zqxvw'), '(rejected,"{too_short,missing_upper,missing_digit,missing_symbol}")',
          'a weak new password: rejected with the rule codes');
SELECT is(pg_temp.change('kim', 'Curlew-Pass-03x', 'Curlew-Pass-02x'), '(rejected,{reused_password})', 'a recent password: rejected, reused_password');
SELECT is(pg_temp.change('kim', 'Curlew-Pass-03x', 'Kim-Curlew-04x'), '(rejected,{contains_username})', 'the username: rejected');
SELECT is(pg_temp.status('kim', 'Curlew-Pass-03x'), 'ok', 'after rejections the password is unchanged');
DO $$ BEGIN PERFORM secpolicy.force_password_reset('kim', 'regress'); END $$;
SELECT is(pg_temp.change('kim', 'Curlew-Pass-03x', 'Curlew-Pass-04x'), '(reset_required,)', 'a forced reset: reset_required');
DO $$ BEGIN PERFORM secpolicy.unlock_user('kim'); PERFORM secpolicy.disable_user('kim', 'regress'); END $$;
SELECT is(pg_temp.change('kim', 'Curlew-Pass-03x', 'Curlew-Pass-04x'), '(invalid_credentials,)', 'a disabled account: invalid_credentials');
DO $$ BEGIN PERFORM secpolicy.enable_user('kim'); END $$;

-- sessions at a change
SELECT session_token AS kim_s1 FROM secpolicy.login('kim', 'Curlew-Pass-03x') \gset
SELECT session_token AS kim_s2 FROM secpolicy.login('kim', 'Curlew-Pass-03x') \gset
SELECT session_token AS kim_s3 FROM secpolicy.login('kim', 'Curlew-Pass-03x') \gset
SELECT session_token AS jon_s3 FROM secpolicy.login('jon', 'Plover-Pass-02x') \gset
SELECT is(pg_temp.change('kim', 'Curlew-Pass-03x', 'Curlew-Pass-05x', :'kim_s1'), '(ok,{})', 'change from session 1');
SELECT is(pg_temp.session_state(:'kim_s1') || ',' || pg_temp.session_state(:'kim_s2') || ',' || pg_temp.session_state(:'kim_s3'),
          'live,password_changed,password_changed', 'the session passed stays, the others end with password_changed');
SELECT is((SELECT status FROM secpolicy.session_touch(:'kim_s1')), 'active', 'session 1 is still active');
SELECT is(pg_temp.change('kim', 'Curlew-Pass-05x', 'Curlew-Pass-06x', :'jon_s3'), '(ok,{})', 'change passing another user''s session');
SELECT is(pg_temp.session_state(:'kim_s1') || ',' || pg_temp.session_state(:'jon_s3'), 'password_changed,live',
          'another user''s token keeps nothing of kim''s, and jon''s session is untouched');

-- an account without a password costs what any other does
INSERT INTO secpolicy.users (username) VALUES ('no-password');
SELECT verifications AS v0 FROM secpolicy.hash_stats() \gset
SELECT is(pg_temp.change('no-password', 'Some-Guess-01x', 'Curlew-Pass-07x'), '(invalid_credentials,)', 'an account without a password: invalid_credentials');
SELECT is((SELECT verifications FROM secpolicy.hash_stats()) - :v0, 1::bigint, 'it costs one argon2 verification, like a wrong password');

SELECT * FROM finish();
ROLLBACK;
