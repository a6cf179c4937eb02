-- pgTAP: a "reused password" answer is no oracle for guessing a user's
-- passwords.  admin_set_password accepts the user's current (or a previous)
-- password as the temporary one, so it tells an admin nothing, and still
-- checks the rules (22023), while change_password refuses the reuse.
-- reset_password counts its reused_password answers in
-- password_resets.reuse_rejections (other rejections do not count) and
-- revokes the token at max_failed_attempts of them, the password staying
-- what it was; fewer leave the token usable.
BEGIN;
\ir lib/helpers.psql
SELECT plan(17);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false, max_failed_attempts = 5;

-- (Statements ending in \gset quiet_ print nothing: tokens stay out of the output.)

-- 'status:violations' of reset_password / change_password
CREATE FUNCTION pg_temp.reset(t text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT r.status || ':' || coalesce(array_to_string(r.violations, ','), '') FROM secpolicy.reset_password(t, p) r;
$$;
CREATE FUNCTION pg_temp.change(u text, o text, n text) RETURNS text LANGUAGE sql AS $$
    SELECT c.status || ':' || coalesce(array_to_string(c.violations, ','), '') FROM secpolicy.change_password(u, o, n) c;
$$;

-- ------------------------------------------------- admin_set_password -----
SELECT secpolicy.create_user('regress_reuse_pw', 'Plover-Dune-61!') \gset quiet_
SELECT lives_ok($$SELECT secpolicy.admin_set_password('regress_reuse_pw', 'Plover-Dune-61!', 'regress')$$,
                'admin_set_password accepts the user''s current password as the temporary one');
SELECT is(pg_temp.status('regress_reuse_pw', 'Plover-Dune-61!'), 'password_change_required',
          'it was set as a temporary password (the user must change it)');
SELECT is(pg_temp.change('regress_reuse_pw', 'Plover-Dune-61!', 'Plover-Dune-61!'), 'rejected:reused_password',
          'change_password still refuses the current password');
SELECT is(pg_temp.change('regress_reuse_pw', 'Plover-Dune-61!', 'Curlew-Flat-72!'), 'ok:',
          'change_password to a new password');
SELECT lives_ok($$SELECT secpolicy.admin_set_password('regress_reuse_pw', 'Plover-Dune-61!', 'regress')$$,
                'admin_set_password accepts a previous password too (no history answer)');
SELECT throws_ok($$SELECT secpolicy.admin_set_password('regress_reuse_pw', 'short', 'regress')$$, '22023', NULL,
                 'admin_set_password still enforces the rules (22023)');

-- ----------------------------------------------------- reset_password -----
SELECT secpolicy.create_user('regress_reuse_rst', 'Godwit-Bank-94!') \gset quiet_
SELECT pg_temp.put('t1', secpolicy.request_password_reset('regress_reuse_rst')) \gset quiet_
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Godwit-Bank-94!'), 'rejected:reused_password',
          'reset_password answers reused_password for the current password');
SELECT is(r.reuse_rejections, 1, 'that answer is counted against the token')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Ab1!x'), 'rejected:too_short',
          'a password rejected for its rules');
SELECT is(r.reuse_rejections, 1, 'is not counted as a reuse answer')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is((SELECT string_agg(pg_temp.reset(pg_temp.get('t1'), 'Godwit-Bank-94!'), ',' ORDER BY i)
             FROM generate_series(1, 3) i),
          'rejected:reused_password,rejected:reused_password,rejected:reused_password',
          'three more reuse answers');
SELECT is(ROW(r.reuse_rejections, r.revoked_at IS NULL)::text, '(4,t)', 'four answers, the token is still live')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Godwit-Bank-94!'), 'rejected:reused_password',
          'the fifth reuse answer');
SELECT is(ROW(r.reuse_rejections, r.revoked_at IS NOT NULL, r.used_at IS NULL)::text, '(5,t,t)',
          'revokes the token at max_failed_attempts answers, in the same transaction (no rollback needed)')
  FROM secpolicy.password_resets r WHERE r.token_digest = secpolicy.token_digest(pg_temp.get('t1'));
SELECT is(pg_temp.reset(pg_temp.get('t1'), 'Avocet-Creek-35!'), 'invalid_token:',
          'a revoked token sets no password, not even a new one');
SELECT is(pg_temp.status('regress_reuse_rst', 'Godwit-Bank-94!'), 'ok', 'the password is still the old one');
SELECT pg_temp.put('t2', secpolicy.request_password_reset('regress_reuse_rst')) \gset quiet_
SELECT is((SELECT string_agg(pg_temp.reset(pg_temp.get('t2'), 'Godwit-Bank-94!'), ',' ORDER BY i)
             FROM generate_series(1, 4) i) || ',' || pg_temp.reset(pg_temp.get('t2'), 'Avocet-Creek-35!'),
          'rejected:reused_password,rejected:reused_password,rejected:reused_password,rejected:reused_password,ok:',
          'below the limit a token still sets a new password');

SELECT * FROM finish();
ROLLBACK;
