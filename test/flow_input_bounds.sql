-- pgTAP: the bounds that keep every flow answering with a status and every
-- hash computation short, whatever a caller passes or an admin sets.
-- Covers: verify_mfa with a 280 MB code answers invalid_code (1.0 raised
-- "invalid memory alloc request size"); session timeouts are bounded by a
-- CHECK (23514) and session_touch answers at the bound (1.0 raised 22008 once
-- session_max_lifetime was huge), and so are the password age and the
-- retention intervals; a caller-supplied hash costlier than
-- secpolicy.max_hash_work verifies false at once, without argon2 work
-- (verify_password, password_match), and cannot be imported (22023), while
-- the policy's own cost is always allowed; TOTP times out of range are 22023.
BEGIN;
\ir lib/helpers.psql
SELECT plan(18);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = true;
SELECT ok(pg_temp.enrol_new('regress_bounds') IS NOT NULL, 'setup: an enrolled account');

-- ------------------------------------------------------------- huge input -----
SELECT is((SELECT status FROM secpolicy.verify_mfa(pg_temp.challenge('regress_bounds'), repeat('1', 280 * 1024 * 1024))),
          'invalid_code', 'verify_mfa with a 280 MB code answers invalid_code');
SELECT is((SELECT status FROM secpolicy.totp_confirm(pg_temp.get('regress_bounds.session'), repeat('7', 1024 * 1024))),
          'invalid_code', 'totp_confirm with a 1 MB code answers invalid_code');

-- -------------------------------------------------------- session bounds -----
SELECT throws_ok($$UPDATE secpolicy.policy SET session_max_lifetime = '1000 years'$$, '23514', NULL,
                 'session_max_lifetime beyond a year: 23514');
SELECT throws_ok($$UPDATE secpolicy.policy SET session_idle_timeout = '200000 years'$$, '23514', NULL,
                 'session_idle_timeout beyond a year: 23514');
SELECT throws_ok($$UPDATE secpolicy.policy SET max_password_age = '200000 years'$$, '23514', NULL,
                 'max_password_age beyond a hundred years: 23514 (login overflowed the timestamp range)');
SELECT throws_ok($$UPDATE secpolicy.policy SET attempt_retention = '200000 years'$$, '23514', NULL,
                 'attempt_retention beyond a hundred years: 23514 (maintain() overflowed)');
UPDATE secpolicy.policy SET max_password_age = '100 years', password_expiry_warning = '100 years',
       attempt_retention = '100 years', pseudonymise_after = '100 years';
SELECT is((SELECT status FROM secpolicy.login('regress_bounds', pg_temp.pw())), 'mfa_required',
          'at the bounds, login answers');
SELECT ok(secpolicy.maintain() ? 'partitions_created', '... and maintain() runs');
UPDATE secpolicy.policy SET session_max_lifetime = '366 days', session_idle_timeout = '366 days';
SELECT is((secpolicy.session_touch(pg_temp.get('regress_bounds.session'))).status, 'active',
          'at the bound, session_touch answers active');
UPDATE secpolicy.sessions SET created_at = '4000-01-01', last_seen_at = '4000-01-01'
 WHERE user_id = pg_temp.uid('regress_bounds');
SELECT is((secpolicy.session_touch(pg_temp.get('regress_bounds.session'))).status, 'active',
          '... also for a session whose times lie far ahead (no timestamp overflow)');

-- ------------------------------------------------------------ hash costs -----
SELECT pg_temp.put('costly', '$argon2id$v=19$m=1048576,t=16,p=1$c29tZXNhbHRzb21lc2FsdA$'
                              || 'YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY') IS NOT NULL AS ok \gset
SELECT pg_temp.put('v0', pg_temp.verifications()::text) IS NOT NULL AS ok \gset
SELECT is(secpolicy.verify_password('Some-Guess-123!', pg_temp.get('costly')), false,
          'a caller-supplied hash of 1 GiB and 16 passes verifies false');
SELECT is(secpolicy.password_match('Some-Guess-123!', pg_temp.get('costly')), NULL, '... password_match answers NULL');
SELECT is(pg_temp.verifications() - pg_temp.get('v0')::bigint, 0::bigint, '... and no argon2 work was done');
SELECT throws_ok(format('SELECT secpolicy.import_password_hash(%L, %L)', 'regress_bounds', pg_temp.get('costly')),
                 '22023', 'the hash''s cost exceeds secpolicy.max_hash_work', 'importing it: 22023');
SET LOCAL secpolicy.max_hash_work = 1;
UPDATE secpolicy.policy SET hash_memlimit = 8 * 1024 * 1024;
SELECT pg_temp.put('policy_hash', secpolicy.hash_password(pg_temp.pw())) IS NOT NULL AS ok \gset
SELECT is(secpolicy.verify_password(pg_temp.pw(), pg_temp.get('policy_hash')), true,
          'a hash at the policy''s cost verifies even when max_hash_work is lower');

-- ------------------------------------------------------------- TOTP times -----
SELECT throws_ok($$SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', 'infinity')$$, '22023', NULL,
                 'totp_code at infinity: 22023');
SELECT throws_ok($$SELECT secpolicy.totp_match('JBSWY3DPEHPK3PXP', '123456', '1969-12-31 23:59:59+00')$$, '22023', NULL,
                 'totp_match before 1970: 22023');

SELECT * FROM finish();
ROLLBACK;
