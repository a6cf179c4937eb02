-- Findings of the fuzzer that are known and being fixed: reported as
-- "known", they fail no run (scripts/fuzz, test/scenarios/fuzz.sh).  Delete
-- a row when its fix lands, so that the fuzzer guards against its return.
-- Columns: regular expressions on the target, the SQLSTATE and the message;
-- the database encoding (NULL: any); why.

INSERT INTO fuzz.known (target, sqlstate, message, encoding, why) VALUES
('.', '^22021$', 'invalid byte sequence for encoding "UTF8"', 'SQL_ASCII',
 'issue 10 finding 7: names that are not UTF-8 in a SQL_ASCII database raise 22021 (jsonb audit entries)'),
('^(login|verify_mfa|totp_confirm|change_password|session_touch|totp_enroll|list_sessions|end_other_sessions|reset_password)$',
 '^22008$', 'out of range', NULL,
 'issue 10 finding 9: timestamp arithmetic on unbounded policy intervals (session_max_lifetime, max_password_age, ...)');
