-- pgTAP: the TOTP building blocks (totp_code, totp_match, otpauth_uri) give
-- the known answers of the RFCs, oathtool and liboath, and refuse bad input.
-- Known answers: the 18 RFC 6238 Appendix B vectors (SHA1/20-byte seed,
-- SHA256/32-byte seed, SHA512/64-byte seed, secrets in base32, 8 digits, 30 s),
-- the 6-digit value at t=59, the 10 RFC 4226 Appendix D HOTP values (TOTP with
-- a period of 1 s at t = counter), extra values cross-checked with oathtool
-- 2.6.7 (7 digits, other periods, the 20-byte-seed SHA256 pitfall).
-- totp_match: the liboath tst_totp_validate rows with window <= 10 (returns the
-- matched step), window edges, out-of-range windows; NULL for wrong, malformed
-- and huge codes; spaces in codes accepted.  Errors: 22023 for an empty or
-- malformed secret, digits, period, algorithm and window out of range; 22023
-- for times before 1970 or infinite.  Lower-case and spaced base32 accepted.
-- otpauth_uri: exact format, percent-encoding, no padding, colon rejected.
BEGIN;
SELECT plan(128);

-- ------------------------------------------- RFC 6238 Appendix B (18) -----
-- base32 of the ASCII seeds (checked with oathtool -b against the hex seeds):
--   SHA1   "12345678901234567890"                                              (20 bytes)
--   SHA256 "12345678901234567890123456789012"                                  (32 bytes)
--   SHA512 "1234567890123456789012345678901234567890123456789012345678901234"  (64 bytes)
CREATE TEMP TABLE seeds (alg text PRIMARY KEY, b32 text, ascii text);
INSERT INTO seeds VALUES
  ('sha1',   'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '12345678901234567890'),
  ('sha256', 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA', '12345678901234567890123456789012'),
  ('sha512', 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA',
             '1234567890123456789012345678901234567890123456789012345678901234');

SELECT is(secpolicy.totp_code(s.b32, to_timestamp(v.t), 8, 30, v.alg), v.code,
          format('RFC 6238 B: t=%s %s -> %s', v.t, v.alg, v.code))
  FROM (VALUES
    (59::bigint,   'sha1', '94287082'), (59,          'sha256', '46119246'), (59,          'sha512', '90693936'),
    (1111111109,   'sha1', '07081804'), (1111111109,  'sha256', '68084774'), (1111111109,  'sha512', '25091201'),
    (1111111111,   'sha1', '14050471'), (1111111111,  'sha256', '67062674'), (1111111111,  'sha512', '99943326'),
    (1234567890,   'sha1', '89005924'), (1234567890,  'sha256', '91819424'), (1234567890,  'sha512', '93441116'),
    (2000000000,   'sha1', '69279037'), (2000000000,  'sha256', '90698825'), (2000000000,  'sha512', '38618901'),
    (20000000000,  'sha1', '65353130'), (20000000000, 'sha256', '77737706'), (20000000000, 'sha512', '47863826')
  ) AS v(t, alg, code)
  JOIN seeds s USING (alg)
 ORDER BY v.t, v.alg;

SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(59)), '287082',
          '6 digits (the defaults sha1/6/30) at t=59: 287082');
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(59), 7), '4287082', '7 digits at t=59: 4287082');
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(59), 8, 30, 'sha256'), '32247374',
          'SHA256 with the 20-byte seed at t=59 gives 32247374 (the errata 2866 pitfall)');
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(1111111109), 7, 60), '9360094',
          'sha1, 7 digits, 60 s at 1111111109 (oathtool: 9360094)');
SELECT is(secpolicy.totp_code(b32, to_timestamp(2000000000), 6, 45, 'sha512'), '856446',
          'sha512, 6 digits, 45 s at 2000000000 (oathtool: 856446)') FROM seeds WHERE alg = 'sha512';
SELECT is(secpolicy.totp_code('JBSWY3DPEHPK3PXP', to_timestamp(1234567890), 6, 3600), '018201',
          'period 3600 (the maximum) at 1234567890 (oathtool: 018201), leading zero kept');
SELECT is(secpolicy.totp_code(b32, to_timestamp(59), 8, 30, 'SHA256'), '46119246', 'algorithm names are case-insensitive')
  FROM seeds WHERE alg = 'sha256';
SELECT is(secpolicy.totp_code(b32 || '====', to_timestamp(59), 8, 30, 'sha256'), '46119246', 'a padded secret gives the same code')
  FROM seeds WHERE alg = 'sha256';
-- step boundaries: T = floor(t / period)
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(29.999), 8), '84755224', 't=29.999 is step 0');
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(30), 8), '94287082', 't=30 is step 1');
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(59.999), 8), '94287082', 't=59.999 is still step 1');
SELECT isnt(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(60), 8), '94287082', 't=60 is step 2');
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(0), 6, 1), '755224', 't=0 is allowed (step 0)');

-- --------------------------------------------- RFC 4226 Appendix D (10) -----
-- HOTP(counter) = TOTP with period 1 s at t = counter
SELECT is(secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(v.c), 6, 1), v.hotp,
          format('RFC 4226 D: HOTP(%s) = %s', v.c, v.hotp))
  FROM (VALUES (0, '755224'), (1, '287082'), (2, '359152'), (3, '969429'), (4, '338314'),
               (5, '254676'), (6, '287922'), (7, '162583'), (8, '399871'), (9, '520489')) AS v(c, hotp)
 ORDER BY v.c;

-- ----------------------------------------------- base32 input forms -----
SELECT is(secpolicy.totp_code('gezdgnbvgy3tqojqgezdgnbvgy3tqojq', to_timestamp(59), 8), '94287082', 'lower-case base32 accepted');
SELECT is(secpolicy.totp_code('GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ', to_timestamp(59), 8), '94287082', 'spaced base32 accepted');
SELECT is(secpolicy.totp_code('jbsw y3dp ehpk 3pxp', to_timestamp(59)), '996554', 'lower-case spaced base32 (oathtool: 996554)');
SELECT is(secpolicy.totp_code('JBSWY3DPEHPK3PXP', to_timestamp(59)), '996554', 'the same secret in canonical form');

-- ------------------------------------------------------ totp_match -----
-- liboath tests/tst_totp_validate.c rows with window <= 10: the matched step
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', v.otp, to_timestamp(v.now), v.w, 8), v.step,
          format('totp_match(now=%s, window=%s, %s) = step %s', v.now, v.w, v.otp, v.step))
  FROM (VALUES (0::bigint,  10, '94287082', 1::bigint),
               (1111111100, 10, '07081804', 37037036), (1111111109, 10, '07081804', 37037036),
               (1111111000, 10, '07081804', 37037036),
               (1111111100, 10, '14050471', 37037037), (1111111109, 10, '14050471', 37037037),
               (1111111000, 10, '14050471', 37037037)) AS v(now, w, otp, step)
 ORDER BY v.otp, v.now;
-- the two rows with window 99: out of range here; with window 10 they are outside
SELECT throws_ok($$SELECT secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '07081804', to_timestamp(1111112000), 99, 8)$$,
                 '22023', NULL, 'window 99 (liboath row 5): 22023, the maximum is 10');
SELECT throws_ok($$SELECT secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '14050471', to_timestamp(1111112000), 99, 8)$$,
                 '22023', NULL, 'window 99 (liboath row 9): 22023');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '07081804', to_timestamp(1111112000), 10, 8), NULL,
          '30 steps in the past with window 10: NULL');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '14050471', to_timestamp(1111112000), 10, 8), NULL,
          '29 steps in the past with window 10: NULL');
-- window edges (step 1's code is 94287082)
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(59), 0, 8), 1::bigint, 'window 0, same step: 1');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(60), 0, 8), NULL, 'window 0, one step later: NULL');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(89), 1, 8), 1::bigint, 'window 1, one step later: 1');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(0), 1, 8), 1::bigint, 'window 1, one step earlier (future code): 1');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(90), 1, 8), NULL, 'window 1, two steps later: NULL');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(90), 2, 8), 1::bigint, 'window 2, two steps later: 1');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '287082', to_timestamp(59)), 1::bigint, 'defaults (window 1, 6 digits): 1');
SELECT is(secpolicy.totp_match(b32, '46119246', to_timestamp(59), 1, 8, 30, 'sha256'), 1::bigint, 'sha256 match') FROM seeds WHERE alg = 'sha256';
SELECT is(secpolicy.totp_match(b32, '47863826', to_timestamp(20000000000), 1, 8, 30, 'sha512'), 666666666::bigint,
          'sha512 match at t=20000000000: step 666666666') FROM seeds WHERE alg = 'sha512';
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '520489', to_timestamp(9), 0, 6, 1), 9::bigint,
          'HOTP(9) as a period-1 match: step 9');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', now()), now()),
          floor(extract(epoch FROM now()) / 30)::bigint, 'the current code matches the current step');
-- codes with spaces are accepted
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '287 082', to_timestamp(59)), 1::bigint, 'code "287 082" accepted');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', ' 2 8 7 0 8 2 ', to_timestamp(59)), 1::bigint, 'code " 2 8 7 0 8 2 " accepted');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '9428 7082', to_timestamp(59), 1, 8), 1::bigint, '8-digit code "9428 7082" accepted');
-- wrong and malformed codes: NULL
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', v.code, to_timestamp(59)), NULL, format('code %s: NULL', v.label))
  FROM (VALUES (1, '287083', 'wrong digit 287083'), (3, '', 'empty'), (4, 'abcdef', 'letters'), (5, '28708', '5 digits'),
               (6, '2870820', '7 digits for 6'), (7, '94287082', '8 digits for 6'), (8, '２８７０８２', 'full-width digits'),
               (9, '+87082', 'sign'), (10, E'287082\n', 'trailing newline'), (11, '28708x', 'trailing letter'),
               (12, repeat('2', 1000000), '1 MB')) AS v(n, code, label)
 ORDER BY v.n;
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '755224', to_timestamp(59), 0), NULL, 'a step-0 code at step 1 with window 0: NULL');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '755224', to_timestamp(59), 1), 0::bigint, 'a step-0 code at step 1 with window 1: 0');
SELECT is(secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', NULL, to_timestamp(59)), NULL, 'NULL code: NULL (strict)');
SELECT is(secpolicy.totp_match('JBSWY3DPEHPK3PXP', '94287082', to_timestamp(59), 1, 8), NULL, 'another secret''s code: NULL');

-- --------------------------------------------------------------- errors -----
SELECT throws_ok(format('SELECT secpolicy.totp_code(%L, to_timestamp(59))', v.secret), '22023', NULL,
                 format('totp_code with %s secret: 22023', v.label))
  FROM (VALUES (1, '', 'an empty'), (2, '   ', 'a blank'), (3, 'JBSWY3DPEHPK3PX1', 'an invalid base32 (1)'),
               (4, 'JBSWY3DP-EHPK3PXP', 'a dash in the'), (5, '====', 'a padding-only'),
               (6, 'ÄBCDEFGH', 'a non-ASCII'),
               (7, repeat('A', 207), 'a 129-byte (too long)'), (8, repeat('A', 208), 'a 130-byte')) AS v(n, secret, label)
 ORDER BY v.n;
SELECT is(length(secpolicy.totp_code(repeat('A', 205), to_timestamp(59))), 6, 'a 128-byte secret (the maximum) is accepted');
SELECT throws_ok($$SELECT secpolicy.totp_match('JBSWY3DPEHPK3PX1', '123456', now())$$, '22023', NULL,
                 'totp_match with an invalid secret: 22023');
SELECT throws_ok($$SELECT secpolicy.totp_match('', 'garbage', now())$$, '22023', NULL,
                 'totp_match with an empty secret and a garbage code: 22023 (the secret is checked first)');
SELECT throws_ok(format('SELECT secpolicy.totp_code(%L, to_timestamp(59), %s, %s, %L)', 'JBSWY3DPEHPK3PXP', v.d, v.p, v.a),
                 '22023', NULL, format('totp_code with %s: 22023', v.label))
  FROM (VALUES (1, 5, 30, 'sha1', 'digits 5'), (2, 9, 30, 'sha1', 'digits 9'), (3, 0, 30, 'sha1', 'digits 0'),
               (4, 6, 0, 'sha1', 'period 0'), (5, 6, -30, 'sha1', 'period -30'), (6, 6, 3601, 'sha1', 'period 3601'),
               (7, 6, 30, 'md5', 'algorithm md5'), (8, 6, 30, '', 'an empty algorithm'),
               (9, 6, 30, 'sha384', 'algorithm sha384'), (10, 6, 30, 'sha-1', 'algorithm sha-1')) AS v(n, d, p, a, label)
 ORDER BY v.n;
SELECT throws_ok(format('SELECT secpolicy.totp_match(%L, %L, to_timestamp(59), %s, %s, %s, %L)',
                        'JBSWY3DPEHPK3PXP', '123456', v.w, v.d, v.p, v.a),
                 '22023', NULL, format('totp_match with %s: 22023', v.label))
  FROM (VALUES (1, -1, 6, 30, 'sha1', 'window -1'), (2, 11, 6, 30, 'sha1', 'window 11'),
               (3, 1, 5, 30, 'sha1', 'digits 5'), (4, 1, 9, 30, 'sha1', 'digits 9'),
               (5, 1, 6, 0, 'sha1', 'period 0'), (6, 1, 6, 30, 'whirlpool', 'algorithm whirlpool')) AS v(n, w, d, p, a, label)
 ORDER BY v.n;
SELECT throws_ok($$SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', to_timestamp(-1))$$, '22023', NULL, 'a time before 1970: 22023');
SELECT throws_ok($$SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', 'infinity')$$, '22023', NULL, 'an infinite time: 22023');
SELECT throws_ok($$SELECT secpolicy.totp_match('JBSWY3DPEHPK3PXP', '123456', '-infinity')$$, '22023', NULL, 'totp_match at -infinity: 22023');
SELECT is(secpolicy.totp_code(NULL, now()), NULL, 'NULL secret: NULL (strict)');

-- ---------------------------------------------------------- otpauth_uri -----
SELECT is(secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'alice@google.com', 'Example'),
          'otpauth://totp/Example:alice%40google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example&algorithm=SHA1&digits=6&period=30',
          'otpauth_uri with the defaults: SHA1, 6 digits, 30 s');
SELECT is(secpolicy.otpauth_uri('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====', 'john.doe@email.com', 'ACME Co', 'sha256', 8, 60),
          'otpauth://totp/ACME%20Co:john.doe%40email.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA&issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60',
          'otpauth_uri: padding stripped, issuer percent-encoded in label and parameter, SHA256/8/60');
SELECT is(secpolicy.otpauth_uri('jbsw y3dp ehpk 3pxp', 'bob', 'X', 'SHA512', 7, 45),
          'otpauth://totp/X:bob?secret=JBSWY3DPEHPK3PXP&issuer=X&algorithm=SHA512&digits=7&period=45',
          'otpauth_uri: secret canonicalised (upper case, no spaces), SHA512');
SELECT is(secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'ålice & bob/?#+%=', 'Ünïcode Inc.'),
          'otpauth://totp/%C3%9Cn%C3%AFcode%20Inc.:%C3%A5lice%20%26%20bob%2F%3F%23%2B%25%3D?secret=JBSWY3DPEHPK3PXP&issuer=%C3%9Cn%C3%AFcode%20Inc.&algorithm=SHA1&digits=6&period=30',
          'otpauth_uri: UTF-8 and reserved characters percent-encoded; unreserved -._~ kept');
SELECT is(secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'a-b.c_d~e', 'i'),
          'otpauth://totp/i:a-b.c_d~e?secret=JBSWY3DPEHPK3PXP&issuer=i&algorithm=SHA1&digits=6&period=30',
          'otpauth_uri: unreserved characters are not encoded');
SELECT throws_ok($$SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'corp:alice', 'Example')$$, '22023', NULL,
                 'otpauth_uri: a colon in the account: 22023');
SELECT throws_ok($$SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'alice', 'Ex:ample')$$, '22023', NULL,
                 'otpauth_uri: a colon in the issuer: 22023');
SELECT throws_ok($$SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PX1', 'alice', 'Example')$$, '22023', NULL,
                 'otpauth_uri: an invalid secret: 22023');
SELECT throws_ok($$SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'alice', 'Example', 'md5')$$, '22023', NULL,
                 'otpauth_uri: an unknown algorithm: 22023');
SELECT throws_ok($$SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'alice', 'Example', 'sha1', 9)$$, '22023', NULL,
                 'otpauth_uri: digits 9: 22023');

-- ---------------------------------------------------------- privileges -----
SELECT ok(has_function_privilege('secpolicy_app', 'secpolicy.totp_code(text, timestamptz, integer, integer, text)', 'EXECUTE')
          AND has_function_privilege('secpolicy_app', 'secpolicy.totp_match(text, text, timestamptz, integer, integer, integer, text)', 'EXECUTE')
          AND has_function_privilege('secpolicy_app', 'secpolicy.otpauth_uri(text, text, text, text, integer, integer)', 'EXECUTE'),
          'secpolicy_app may execute totp_code, totp_match and otpauth_uri');
SELECT ok(NOT has_function_privilege('public', 'secpolicy.totp_code(text, timestamptz, integer, integer, text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'secpolicy.totp_match(text, text, timestamptz, integer, integer, integer, text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'secpolicy.otpauth_uri(text, text, text, text, integer, integer)', 'EXECUTE'),
          'PUBLIC may not');

SELECT * FROM finish();
ROLLBACK;
