-- Two-factor login end to end: enrolment demanded after a correct password,
-- the secret and its otpauth:// URI, confirmation (wrong code, right code,
-- recovery codes, single-use challenge), login with a TOTP code (replay
-- refused, the next step accepted), recovery codes (single use), challenge
-- expiry, the wrong-code lockout, and no secret or code in clear in any
-- table.  Prints statuses, booleans and counts only.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS secpolicy;
RESET client_min_messages;
\set SHOW_CONTEXT never
SELECT preset FROM secpolicy.apply_preset('org');
UPDATE secpolicy.policy
   SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = true, max_failed_attempts = 5,
       totp_algorithm = 'sha1', totp_digits = 6, totp_period = 30, totp_window = 1,
       recovery_code_count = 10, totp_issuer = 'Example Corp';

-- a code that matches none of the steps within the window around now
CREATE FUNCTION pg_temp.wrong_code(secret text) RETURNS text LANGUAGE sql AS $$
    SELECT min(c) FROM (SELECT lpad(k::text, 6, '0') AS c FROM generate_series(0, 9) k) x
     WHERE c NOT IN (SELECT secpolicy.totp_code(secret, now() + s * interval '30 seconds')
                       FROM generate_series(-1, 1) s) $$;

-- every row of a table as text (bytea columns in hex)
CREATE FUNCTION pg_temp.table_text(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r text;
BEGIN
    EXECUTE format('SELECT coalesce(string_agg(x::text, E''\n''), '''') FROM %s x', t) INTO r;
    RETURN r;
END $$;

SELECT secpolicy.create_user('mfa_ann', 'Kestrel-Pass-01x') > 0 AS created;

-- 1. a correct password without a factor: enrolment is required
CREATE TEMP TABLE l1 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x', '192.0.2.1', 'regress');
SELECT status, session_token IS NULL AS no_session, challenge_token ~ '^spc_[A-Za-z0-9_-]{43}$' AS challenge
  FROM l1;
SELECT status FROM secpolicy.login('mfa_ann', 'Wrong-Pass-01x');

-- 2. the secret and its URI
CREATE TEMP TABLE e1 AS SELECT r.* FROM l1, secpolicy.totp_enroll(l1.challenge_token) r;
SELECT secret ~ '^[A-Z2-7]{32}$' AS base32_160_bits,
       replace(otpauth_uri, secret, '<secret>') AS uri
  FROM e1;

-- 3. confirmation: a wrong code, then the right one
SELECT r.status, r.session_token IS NULL AS no_session
  FROM l1, e1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.wrong_code(e1.secret)) r;
CREATE TEMP TABLE c1 AS
SELECT r.*, secpolicy.totp_code(e1.secret) AS code FROM l1, e1, secpolicy.totp_confirm(l1.challenge_token, secpolicy.totp_code(e1.secret)) r;
SELECT status, session_token ~ '^sps_' AS session, cardinality(recovery_codes) AS recovery_codes,
       cardinality(ARRAY(SELECT DISTINCT unnest(recovery_codes))) AS distinct_codes
  FROM c1;
SELECT r.status FROM l1, e1, secpolicy.totp_confirm(l1.challenge_token, secpolicy.totp_code(e1.secret)) r;
SELECT failed_attempts FROM secpolicy.users WHERE username = 'mfa_ann';

-- 4. login with a TOTP code: the code used to confirm is a replay; the next step's code works
CREATE TEMP TABLE l2 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x');
SELECT status, challenge_token IS NOT NULL AS challenge FROM l2;
SELECT r.status FROM l2, c1, secpolicy.verify_mfa(l2.challenge_token, c1.code) r;
CREATE TEMP TABLE v2 AS
SELECT r.* FROM l2, e1, secpolicy.verify_mfa(l2.challenge_token, secpolicy.totp_code(e1.secret, now() + interval '30 seconds')) r;
SELECT status, session_token ~ '^sps_' AS session FROM v2;
SELECT (secpolicy.session_touch(session_token)).status AS touch, s.mfa
  FROM v2 JOIN secpolicy.sessions s ON s.token_digest = secpolicy.token_digest(v2.session_token);
SELECT r.status FROM l2, e1, secpolicy.verify_mfa(l2.challenge_token, secpolicy.totp_code(e1.secret, now() + interval '30 seconds')) r;

-- 5. recovery codes: accepted once, in any case and with spaces
CREATE TEMP TABLE l3 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x');
SELECT r.status FROM l3, c1, secpolicy.verify_mfa(l3.challenge_token, ' ' || upper(c1.recovery_codes[1]) || ' ') r;
CREATE TEMP TABLE l4 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x');
SELECT r.status FROM l4, c1, secpolicy.verify_mfa(l4.challenge_token, c1.recovery_codes[1]) r;
SELECT r.status FROM l4, c1, secpolicy.verify_mfa(l4.challenge_token, c1.recovery_codes[2]) r;

-- 6. an expired challenge
CREATE TEMP TABLE l5 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x');
UPDATE secpolicy.mfa_challenges SET expires_at = now() - interval '1 second'
 WHERE token_digest = (SELECT secpolicy.token_digest(challenge_token) FROM l5);
SELECT r.status FROM l5, e1, secpolicy.verify_mfa(l5.challenge_token, secpolicy.totp_code(e1.secret)) r;

-- 7. wrong codes count toward the limit; a correct password alone never clears them
CREATE TEMP TABLE l6 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x');
SELECT n, r.status FROM generate_series(1, 3) n, l6, e1,
       LATERAL secpolicy.verify_mfa(l6.challenge_token, pg_temp.wrong_code(e1.secret) || left(n::text, 0)) r ORDER BY n;
SELECT (secpolicy.login('mfa_ann', 'Kestrel-Pass-01x')).status AS password_only;
SELECT failed_attempts FROM secpolicy.users WHERE username = 'mfa_ann';
CREATE TEMP TABLE l7 AS SELECT * FROM secpolicy.login('mfa_ann', 'Kestrel-Pass-01x');
SELECT n, r.status FROM generate_series(4, 5) n, l7, e1,
       LATERAL secpolicy.verify_mfa(l7.challenge_token, pg_temp.wrong_code(e1.secret) || left(n::text, 0)) r ORDER BY n;
SELECT failed_attempts, reset_required FROM secpolicy.users WHERE username = 'mfa_ann';
SELECT (secpolicy.login('mfa_ann', 'Kestrel-Pass-01x')).status AS after_lockout;
SELECT count(*) AS live_sessions FROM secpolicy.sessions s JOIN secpolicy.users u ON u.id = s.user_id
 WHERE u.username = 'mfa_ann' AND s.ended_at IS NULL;

-- 8. nothing in clear: neither the secret nor a recovery code appears in any table row,
-- as text or as the hex of a bytea (no rows expected)
SELECT c.relname AS table_holding_a_secret
  FROM pg_class c
 WHERE c.relnamespace = 'secpolicy'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND EXISTS (SELECT 1 FROM e1, c1, LATERAL (SELECT lower(pg_temp.table_text(c.oid::regclass)) AS t) x
                WHERE x.t LIKE '%' || lower(e1.secret) || '%'
                   OR x.t LIKE '%' || encode(convert_to(e1.secret, 'UTF8'), 'hex') || '%'
                   OR x.t LIKE '%' || lower(c1.recovery_codes[3]) || '%'
                   OR x.t LIKE '%' || encode(convert_to(c1.recovery_codes[3], 'UTF8'), 'hex') || '%');
SELECT stage, outcome, success, count(*)
  FROM secpolicy.login_attempts WHERE username = 'mfa_ann'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

DROP EXTENSION secpolicy;
