-- pgTAP: changing the password of an account with a second factor takes that
-- factor too (a stolen password alone must not replace the password, end the
-- owner's sessions and lock the owner out).
-- Covers: the password alone answers mfa_required (nothing changes, no
-- failure counted, sessions kept); a wrong code answers invalid_code, counts
-- a failure and is logged; a right TOTP code, a recovery code (spent) or a
-- session opened with the second factor change it; a session without it does
-- not; a new password rejected by the rules or the history spends no code; the forced change of an
-- expired password with a code; a replayed code; five wrong codes lock the
-- account; an account without a second factor changes with its password.
BEGIN;
\ir lib/helpers.psql
SELECT plan(30);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = true, max_failed_attempts = 5,
       totp_window = 1, history_depth = 3;

CREATE FUNCTION pg_temp.change(u text, n text, s text DEFAULT NULL, c text DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
    SELECT x.status || ':' || coalesce(array_to_string(x.violations, ','), '')
      FROM secpolicy.change_password(u, pg_temp.pw(), n, NULL, s, c) x;
$$;
-- did the password change to n? (then set it back to pw() as the owner would, unchecked)
CREATE FUNCTION pg_temp.changed_to(u text, n text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    yes boolean := secpolicy.verify_password(n, (SELECT password_hash FROM secpolicy.users WHERE username = u));
BEGIN
    IF yes THEN
        UPDATE secpolicy.users SET password_hash = secpolicy.hash_password(pg_temp.pw()) WHERE username = u;
    END IF;
    RETURN yes;
END $$;
CREATE FUNCTION pg_temp.live_sessions(u text) RETURNS bigint LANGUAGE sql AS
$$ SELECT count(*) FROM secpolicy.sessions WHERE user_id = pg_temp.uid(u) AND ended_at IS NULL $$;

SELECT ok(pg_temp.enrol_new('regress_cp2f') IS NOT NULL, 'setup: an account enrolled with TOTP, with a two-factor session');
UPDATE secpolicy.totp_credentials SET last_used_step = pg_temp.step(-5) WHERE user_id = pg_temp.uid('regress_cp2f');

-- ------------------------------------------------- the password alone -----
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-11!'), 'mfa_required:',
          'the old password alone answers mfa_required');
SELECT ok(NOT pg_temp.changed_to('regress_cp2f', 'Changed-Secret-11!'), '... and the password is unchanged');
SELECT is(pg_temp.live_sessions('regress_cp2f'), 1::bigint, '... the owner''s session is not ended');
SELECT is(pg_temp.failed('regress_cp2f'), 0, '... and no failure is counted (the password was right)');
SELECT is(pg_temp.last_outcome('regress_cp2f'), 'mfa_required/change_password', '... the attempt is logged');

-- -------------------------------------------------------- a wrong code -----
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-12!', NULL, pg_temp.wrong(pg_temp.secret('regress_cp2f'))),
          'invalid_code:', 'a wrong code answers invalid_code');
SELECT ok(NOT pg_temp.changed_to('regress_cp2f', 'Changed-Secret-12!'), '... the password is unchanged');
SELECT is(pg_temp.failed('regress_cp2f'), 1, '... and the wrong code counts as a failure');
SELECT is(pg_temp.last_outcome('regress_cp2f'), 'invalid_code/change_password', '... logged as invalid_code');

-- ------------------------------------------------------- a rejected password -----
SELECT is(pg_temp.change('regress_cp2f', 'qz', NULL, pg_temp.code(pg_temp.secret('regress_cp2f'))),
          'rejected:too_short,missing_upper,missing_digit,missing_symbol',
          'a new password that breaks the rules is rejected before the code is looked at');
SELECT is((SELECT last_used_step FROM secpolicy.totp_credentials WHERE user_id = pg_temp.uid('regress_cp2f')),
          pg_temp.step(-5), '... so the code is not spent');

-- ------------------------------------------------------------ a right code -----
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-13!', NULL, pg_temp.code(pg_temp.secret('regress_cp2f'))),
          'ok:', 'a right TOTP code: ok');
SELECT ok(pg_temp.changed_to('regress_cp2f', 'Changed-Secret-13!'), '... the password changed');
SELECT is(pg_temp.live_sessions('regress_cp2f'), 0::bigint, '... and the other sessions ended');
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-14!', NULL, pg_temp.code(pg_temp.secret('regress_cp2f'))),
          'invalid_code:', 'the same code again: refused (replay)');

-- --------------------------------------------------------- a recovery code -----
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-13!', NULL, pg_temp.rc('regress_cp2f', 3)),
          'rejected:reused_password', 'a previous password with a right code: rejected (the history)');
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-15!', NULL, upper(pg_temp.rc('regress_cp2f', 3))),
          'ok:', '... which did not spend the code: the same recovery code then changes it');
SELECT ok(pg_temp.changed_to('regress_cp2f', 'Changed-Secret-15!'), '... the password changed');
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-16!', NULL, pg_temp.rc('regress_cp2f', 3)),
          'invalid_code:', '... and that recovery code is spent');

-- ----------------------------------------------------------- a session -----
CREATE TEMP TABLE s2f AS
    SELECT v.session_token FROM secpolicy.verify_mfa(pg_temp.challenge('regress_cp2f'),
                                                      pg_temp.code(pg_temp.secret('regress_cp2f'), 1)) v;
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-17!', (SELECT session_token FROM s2f)), 'ok:',
          'from a session opened with the second factor: ok without a code');
SELECT ok(pg_temp.changed_to('regress_cp2f', 'Changed-Secret-17!'), '... the password changed');
SELECT is(pg_temp.live_sessions('regress_cp2f'), 1::bigint, '... and that session stays');
UPDATE secpolicy.sessions SET mfa = false WHERE token_digest = secpolicy.token_digest((SELECT session_token FROM s2f));
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-18!', (SELECT session_token FROM s2f)), 'mfa_required:',
          'a session not opened with the second factor does not prove it');

-- ----------------------------------------------------- an expired password -----
UPDATE secpolicy.users SET password_changed_at = now() - interval '7 months' WHERE username = 'regress_cp2f';
UPDATE secpolicy.totp_credentials SET last_used_step = pg_temp.step(-5) WHERE user_id = pg_temp.uid('regress_cp2f');
SELECT is((SELECT status FROM secpolicy.login('regress_cp2f', pg_temp.pw())), 'password_expired',
          'an expired password: login answers password_expired');
SELECT is(pg_temp.change('regress_cp2f', 'Changed-Secret-19!', NULL, pg_temp.code(pg_temp.secret('regress_cp2f'))),
          'ok:', '... and the forced change takes the password and a code');
SELECT ok(pg_temp.changed_to('regress_cp2f', 'Changed-Secret-19!'), '... the password changed');

-- ---------------------------------------------------------- the lockout -----
SELECT is(string_agg(pg_temp.change('regress_cp2f', 'Changed-Secret-20!', NULL, '000000'), ',' ORDER BY g), 
          'invalid_code:,invalid_code:,invalid_code:,invalid_code:,reset_required:',
          'five wrong codes: the fifth locks the account')
  FROM generate_series(1, 5) g;

-- -------------------------------------------------- without a second factor -----
SELECT lives_ok($$SELECT secpolicy.create_user('regress_cp1f', pg_temp.pw())$$, 'setup: an account without a second factor');
SELECT is(pg_temp.change('regress_cp1f', 'Changed-Secret-21!'), 'ok:', 'its password changes with the password alone');

SELECT * FROM finish();
ROLLBACK;
