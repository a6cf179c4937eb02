-- Findings of the fuzzer that are known and being fixed: reported as
-- "known", they fail no run (scripts/fuzz, test/scenarios/fuzz.sh).  Delete
-- a row when its fix lands, so that the fuzzer guards against its return.
-- Columns: regular expressions on the target, the SQLSTATE and the message;
-- the database encoding (NULL: any); why.

INSERT INTO fuzz.known (target, sqlstate, message, encoding, why) VALUES
('^(login|verify_mfa|totp_confirm|change_password|maintain)$', '^22008$', 'out of range', NULL,
 'like issue 10 finding 9: max_password_age (and the retention intervals) have no upper bound; '
 'password_changed_at + max_password_age overflows in login(), password_usable() and maintain()');
