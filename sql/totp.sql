-- TOTP building blocks: totp_code, totp_match and otpauth_uri against the
-- RFC 6238 Appendix B and RFC 4226 Appendix D known answers, window
-- semantics, input forms, and the errors for bad parameters.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS secpolicy;
RESET client_min_messages;

-- RFC 6238 Appendix B: 8 digits, 30 s; seeds in base32 (20, 32, 64 ASCII bytes)
CREATE TEMP TABLE seeds (alg text, b32 text);
INSERT INTO seeds VALUES
  ('sha1',   'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'),
  ('sha256', 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA'),
  ('sha512', 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA');
SELECT t, to_timestamp(t) AT TIME ZONE 'UTC' AS utc, s.alg,
       secpolicy.totp_code(s.b32, to_timestamp(t), 8, 30, s.alg) AS totp
  FROM unnest(ARRAY[59, 1111111109, 1111111111, 1234567890, 2000000000, 20000000000]::bigint[]) t,
       seeds s
 ORDER BY t, s.alg;

-- the 6-digit value at t=59, and the default arguments
SELECT secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(59)) AS six_digits;

-- RFC 4226 Appendix D: HOTP(c) is TOTP with a 1 s period at t = c
SELECT c AS counter, secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', to_timestamp(c), 6, 1) AS hotp
  FROM generate_series(0, 9) c;

-- base32 forms: lower case, spaces, padding
SELECT secpolicy.totp_code('gezd gnbv gy3t qojq gezd gnbv gy3t qojq', to_timestamp(59), 8) AS lower_spaced,
       secpolicy.totp_code('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA====', to_timestamp(59), 8, 30, 'SHA256') AS padded_upper_alg;

-- totp_match: the liboath tst_totp_validate rows return the matched step;
-- the two rows liboath runs with window 99 (30 and 29 steps back) are
-- outside the largest window allowed here (10)
SELECT now_t, win, otp,
       secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', otp, to_timestamp(now_t), win, 8) AS step
  FROM (VALUES (0::bigint, 10, '94287082'), (1111111100, 10, '07081804'), (1111111109, 10, '07081804'),
               (1111111000, 10, '07081804'), (1111112000, 10, '07081804'), (1111111100, 10, '14050471'),
               (1111111109, 10, '14050471'), (1111111000, 10, '14050471'), (1111112000, 10, '14050471')) v(now_t, win, otp)
 ORDER BY otp, now_t;

-- window edges around the step-1 code 94287082, and codes that never match
SELECT t, win, secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', '94287082', to_timestamp(t), win, 8) AS step
  FROM (VALUES (59, 0), (60, 0), (89, 1), (0, 1), (90, 1), (90, 2)) v(t, win)
 ORDER BY win, t;
SELECT label, secpolicy.totp_match('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', code, to_timestamp(59)) AS step
  FROM (VALUES (1, 'spaces', '287 082'), (2, 'wrong', '287083'), (3, 'letters', 'abcdef'),
               (4, 'too short', '28708'), (5, 'too long', '2870821'), (6, 'empty', ''),
               (7, 'null', NULL)) v(n, label, code)
 ORDER BY n;

-- otpauth:// key URIs
SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'alice@example.com', 'Example');
SELECT secpolicy.otpauth_uri('gezd gnbv gy3t qojq gezd gnbv gy3t qojq geza====', 'john doe', 'ACME Co', 'sha256', 8, 60);
SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'ålice/?&=', 'Ünïcode', 'SHA512', 7, 45);

-- errors (22023 unless noted)
SELECT secpolicy.totp_code('', now());
SELECT secpolicy.totp_code('JBSWY3DPEHPK3PX1', now());
SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', now(), 5);
SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', now(), 9);
SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', now(), 6, 0);
SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', now(), 6, 30, 'md5');
SELECT secpolicy.totp_match('JBSWY3DPEHPK3PXP', '123456', now(), 11);
SELECT secpolicy.totp_match('JBSWY3DPEHPK3PXP', '123456', now(), -1);
SELECT secpolicy.totp_code('JBSWY3DPEHPK3PXP', to_timestamp(-1));  -- 22008
SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'corp:alice', 'Example');
SELECT secpolicy.otpauth_uri('JBSWY3DPEHPK3PXP', 'alice', 'Ex:ample');

DROP TABLE seeds;
DROP EXTENSION secpolicy;
