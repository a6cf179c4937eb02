-- Password rules: secpolicy.password_violations() case by case under the org
-- preset (length in characters, classes, username, blocklists), the
-- organisation's blocked words, the nist preset, and the hash-on-write trigger
-- that raises 22023 with the rule codes in DETAIL.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS secpolicy;
RESET client_min_messages;
-- error context quotes line numbers of the install script: keep it out of the output
\set SHOW_CONTEXT never
SELECT preset FROM secpolicy.apply_preset('org');
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, max_length = 128, check_username = true;

CREATE TEMP TABLE cases (n int, label text, pw text, username text);
INSERT INTO cases VALUES
  ( 1, 'acceptable',               'Correct-horse-9',          NULL),
  ( 2, '11 characters',            'Abcdef-1wxy',              NULL),
  ( 3, '12 characters',            'Abcdef-1wxyz',             NULL),
  ( 4, '128 characters',           'Aa1!' || repeat('xy', 62), NULL),
  ( 5, '129 characters',           'Aa1!' || repeat('xy', 62) || 'z', NULL),
  ( 6, '12 chars, 20 bytes',       'Aa1!' || repeat('é', 8),   NULL),
  ( 7, '11 chars, 18 bytes',       'Aa1!' || repeat('é', 7),   NULL),
  ( 8, 'emoji as symbol',          'Aa1' || repeat('😀', 9),   NULL),
  ( 9, 'no upper',                 'correct-horse-9',          NULL),
  (10, 'no lower',                 'CORRECT-HORSE-9',          NULL),
  (11, 'no digit',                 'Correct-horse-x',          NULL),
  (12, 'no symbol',                'Correcthorse9x',           NULL),
  (13, 'space is a symbol',        'Correct horse 9',          NULL),
  (14, 'empty',                    '',                         NULL),
  (15, 'username',                 'Xalice-Pass-9z',           'alice'),
  (16, 'username, other case',     'XALICE-pass-9z',           'Alice'),
  (17, 'address local part',       'Bob.smith-Pw-9z',          'bob.smith@example.com'),
  (18, '2-char username',          'Xal-Correct-9z',           'al'),
  (19, 'NULL username',            'Xalice-Pass-9z',           NULL),
  (20, 'listed',                   'p030710P$E4o',             NULL),
  (21, 'decorated',                'Password123!',             NULL),
  (22, 'decorated both sides',     '!!Password2024',           NULL),
  (23, 'most common',              'password',                 NULL),
  (24, 'everything',               'alice',                    'alice');
SELECT n, label, char_length(pw) AS chars, octet_length(pw) AS bytes,
       secpolicy.password_violations(pw, username) AS violations
  FROM cases ORDER BY n;
SELECT secpolicy.password_violations(NULL) IS NULL AS null_password_gives_null;

-- the organisation's own words are matched anywhere, in any case
SELECT secpolicy.password_violations('MyAcmeCorp-2024x') AS before_blocking;
INSERT INTO secpolicy.password_blocklist (word) VALUES ('acmecorp');
SELECT secpolicy.password_violations('MyAcmeCorp-2024x') AS after_blocking;
-- words are stored lower-cased (and in NFKC): a capitalised one still blocks
INSERT INTO secpolicy.password_blocklist (word) VALUES ('Widget');
SELECT word FROM secpolicy.password_blocklist ORDER BY word;
SELECT secpolicy.password_violations('Blue-Widget-2024x') AS widget_blocked;
DELETE FROM secpolicy.password_blocklist;

-- toggles
UPDATE secpolicy.policy SET require_upper = false, require_symbol = false, check_blocklist = false;
SELECT preset, secpolicy.password_violations('correcthorse9') AS lower_and_digits,
       secpolicy.password_violations('Password123!') AS common_allowed
  FROM secpolicy.policy;

-- the nist preset: 15 characters, no composition rules, blocklist on, no expiry
SELECT preset, min_length, require_upper, require_lower, require_digit, require_symbol,
       check_blocklist, history_depth, max_password_age
  FROM secpolicy.apply_preset('nist');
SELECT secpolicy.password_violations('plumtreeriverbo') AS fifteen_letters,
       secpolicy.password_violations('plumtreeriverb') AS fourteen_letters,
       secpolicy.password_violations('Nick1234-rem936') AS listed_fifteen;
SELECT preset, min_length, require_upper, require_symbol, history_depth, max_password_age
  FROM secpolicy.apply_preset('org');
SELECT preset FROM secpolicy.apply_preset('bogus');

-- the same rules on write: plaintext is hashed, violations raise 22023
SELECT secpolicy.create_user('rules_user', 'Rules-Pass-01x') > 0 AS created;
SELECT password_hash LIKE '$argon2id$v=19$m=8,t=1,p=1$%' AS hashed FROM secpolicy.users WHERE username = 'rules_user';
UPDATE secpolicy.users SET password_hash = 'zqxvw' WHERE username = 'rules_user';
UPDATE secpolicy.users SET password_hash = 'Rules_User-Pass-02x' WHERE username = 'rules_user';
UPDATE secpolicy.users SET password_hash = 'Rules-Pass-01x' WHERE username = 'rules_user';
SELECT secpolicy.create_user('rules_other', 'Password123!');

-- and on an application table through the generic trigger
CREATE TABLE regress_rules_accounts (login text, pw text, pw_history text[]);
CREATE TRIGGER password_policy BEFORE INSERT OR UPDATE ON regress_rules_accounts
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'pw_history');
INSERT INTO regress_rules_accounts (login, pw) VALUES ('wren', 'Wren-Pass-01x');
INSERT INTO regress_rules_accounts (login, pw) VALUES ('robin', 'Songbird-Pass-01x');
UPDATE regress_rules_accounts SET pw = 'Songbird-Pass-02x';
UPDATE regress_rules_accounts SET pw = 'Songbird-Pass-01x';
SELECT login, pw LIKE '$argon2id$%' AS hashed, secpolicy.verify_password('Songbird-Pass-02x', pw) AS verifies,
       cardinality(pw_history) AS history
  FROM regress_rules_accounts;
DROP TABLE regress_rules_accounts;

DROP EXTENSION secpolicy;
