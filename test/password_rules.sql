-- pgTAP: secpolicy.password_violations(), every rule code on its own and at its
-- boundaries: too_short (11/12), too_long (128/129, and a lowered max_length),
-- length counted in characters (multibyte and 4-byte characters), each
-- missing character class, contains_username (case-insensitive, local part of
-- an address, usernames under 3 characters ignored, NULL username), the
-- built-in blocklist (exact, case-insensitive, decorated, long decorations),
-- the organisation's words (secpolicy.password_blocklist, containment), NULL
-- password, the order of the codes, the policy toggles and the nist/org presets.
BEGIN;
SELECT plan(67);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;

SELECT is(secpolicy.password_violations('Correct-horse-9'), '{}'::text[], 'a good password breaks no rule');

-- length
SELECT is(secpolicy.password_violations('Abcdef-1wxy'), '{too_short}'::text[], '11 characters: too_short');
SELECT is(secpolicy.password_violations('Abcdef-1wxyz'), '{}'::text[], '12 characters: accepted');
SELECT is(secpolicy.password_violations('Aa1!' || repeat('xy', 62)), '{}'::text[], '128 characters: accepted');
SELECT is(secpolicy.password_violations('Aa1!' || repeat('xy', 62) || 'z'), '{too_long}'::text[], '129 characters: too_long');
SELECT is(secpolicy.password_violations('Aa1!' || repeat('é', 8)), '{}'::text[],
          '12 characters of 20 bytes: accepted (length in characters)');
SELECT is(secpolicy.password_violations('Aa1!' || repeat('é', 7)), '{too_short}'::text[],
          '11 characters of 18 bytes: too_short (bytes do not count)');
SELECT is(secpolicy.password_violations('Aa1!' || repeat('é', 124)), '{}'::text[], '128 two-byte characters: accepted');
SELECT is(secpolicy.password_violations('Aa1!' || repeat('é', 125)), '{too_long}'::text[], '129 two-byte characters: too_long');
SELECT is(secpolicy.password_violations('Aa1' || repeat('😀', 9)), '{}'::text[],
          'a 4-byte emoji is one character and a symbol');
SELECT is(secpolicy.password_violations('Aa1' || repeat('😀', 8)), '{too_short}'::text[], '11 characters with emoji: too_short');

UPDATE secpolicy.policy SET max_length = 20;
SELECT is(secpolicy.password_violations('Abcdefghij-1234567xy'), '{}'::text[], 'max_length 20: 20 characters accepted');
SELECT is(secpolicy.password_violations('Abcdefghij-1234567xyz'), '{too_long}'::text[], 'max_length 20: 21 characters too_long');
UPDATE secpolicy.policy SET min_length = 8;
SELECT is(secpolicy.password_violations('Abc-1xyz'), '{}'::text[], 'min_length 8: 8 characters accepted');
SELECT is(secpolicy.password_violations('Abc-1xy'), '{too_short}'::text[], 'min_length 8: 7 characters too_short');
UPDATE secpolicy.policy SET min_length = 12, max_length = 1024;
SELECT is(secpolicy.password_violations('Aa1' || repeat('😀', 1021)), '{}'::text[],
          'max_length 1024: 1024 four-byte characters (4087 bytes) accepted');
SELECT is(secpolicy.password_violations(repeat('Aa1!', 1100)), '{too_long}'::text[], 'over 4096 bytes: too_long');
UPDATE secpolicy.policy SET max_length = 128;

-- character classes
SELECT is(secpolicy.password_violations('correct-horse-9'), '{missing_upper}'::text[], 'no upper case: missing_upper');
SELECT is(secpolicy.password_violations('CORRECT-HORSE-9'), '{missing_lower}'::text[], 'no lower case: missing_lower');
SELECT is(secpolicy.password_violations('Correct-horse-x'), '{missing_digit}'::text[], 'no digit: missing_digit');
SELECT is(secpolicy.password_violations('Correcthorse9x'), '{missing_symbol}'::text[], 'no symbol: missing_symbol');
SELECT is(secpolicy.password_violations('Correct horse 9'), '{}'::text[], 'a space counts as a symbol');
SELECT is(secpolicy.password_violations('École-normale-9'), '{}'::text[], 'a non-ASCII capital counts as upper case');
SELECT is(secpolicy.password_violations('école-normale-9'), '{missing_upper}'::text[], 'non-ASCII lower case is not upper case');
SELECT is(secpolicy.password_violations(''), '{too_short,missing_upper,missing_lower,missing_digit,missing_symbol}'::text[],
          'empty password: too_short and every class missing');

-- username
SELECT is(secpolicy.password_violations('Xalice-Pass-9z', 'alice'), '{contains_username}'::text[], 'contains the username');
SELECT is(secpolicy.password_violations('XALICE-pass-9z', 'Alice'), '{contains_username}'::text[], 'contains the username in another case');
SELECT is(secpolicy.password_violations('Bob.smith-Pw-9z', 'bob.smith@example.com'), '{contains_username}'::text[],
          'contains the local part of an address username');
SELECT is(secpolicy.password_violations('X-bob@example.com-9', 'BOB@example.com'), '{contains_username}'::text[],
          'contains the whole address username');
SELECT is(secpolicy.password_violations('Xjosé-Pass-9z', 'JOSÉ'), '{contains_username}'::text[], 'non-ASCII username, case-insensitive');
SELECT is(secpolicy.password_violations('Xal-Correct-9z', 'al'), '{}'::text[], 'a 2-character username is not searched for');
SELECT is(secpolicy.password_violations('Xal-Correct-9z', 'al@example.com'), '{}'::text[], 'a 2-character local part is not searched for');
SELECT is(secpolicy.password_violations('Xabc-Correct-9z', 'abc'), '{contains_username}'::text[], 'a 3-character username is');
SELECT is(secpolicy.password_violations('Xalice-Pass-9z', NULL), '{}'::text[], 'NULL username skips the rule');
SELECT is(secpolicy.password_violations('Xalice-Pass-9z', ''), '{}'::text[], 'empty username skips the rule');
SELECT is(secpolicy.password_violations('Xalice-Pass-9z', 'bob'), '{}'::text[], 'another username does not match');

-- built-in blocklist
SELECT is(secpolicy.password_violations('p030710P$E4o'), '{common_password}'::text[], 'a listed password that meets every other rule');
SELECT is(secpolicy.password_violations('P030710P$E4O'), '{missing_lower,common_password}'::text[], 'the list ignores case');
SELECT is(secpolicy.password_violations('password'), '{too_short,missing_upper,missing_digit,missing_symbol,common_password}'::text[],
          'the most common password breaks five rules, common_password last');
SELECT is(secpolicy.password_violations('Password123!'), '{common_password}'::text[], 'decorated with trailing digits and symbol');
SELECT is(secpolicy.password_violations('!!Password2024'), '{common_password}'::text[], 'decorated on both sides');
SELECT is(secpolicy.password_violations('Letmein!2024'), '{common_password}'::text[], 'another decorated common password');
SELECT is(secpolicy.password_violations(repeat('1', 70) || 'Password!'), '{common_password}'::text[],
          'a 79-character password that is a long decoration of a common one');
SELECT is(secpolicy.password_violations('Pass-Correct-9'), '{}'::text[], 'a common word inside a longer password is not a hit');
SELECT is(secpolicy.password_violations('alice', 'alice'),
          '{too_short,missing_upper,missing_digit,missing_symbol,contains_username,common_password}'::text[],
          'codes come in the documented order');

-- the organisation's words
SELECT is(secpolicy.password_violations('MyAcmeCorp-2024x'), '{}'::text[], 'before the word is blocked the password passes');
INSERT INTO secpolicy.password_blocklist (word) VALUES ('acmecorp');
SELECT is(secpolicy.password_violations('MyAcmeCorp-2024x'), '{common_password}'::text[], 'a blocked organisation word anywhere, any case');
SELECT is(secpolicy.password_violations('Acme-Corp-2024x'), '{}'::text[], 'the word must appear as a whole');
INSERT INTO secpolicy.password_blocklist (word) VALUES ('Widget');
SELECT is((SELECT count(*) FROM secpolicy.password_blocklist WHERE word = 'widget'), 1::bigint,
          'a capitalised word is stored lower-cased');
SELECT throws_ok($$INSERT INTO secpolicy.password_blocklist (word) VALUES ('ab')$$, '23514', NULL,
                 'blocked words have at least 3 characters');

-- NULL
SELECT is(secpolicy.password_violations(NULL), NULL::text[], 'NULL password: NULL');
SELECT is(secpolicy.password_violations(NULL, 'alice'), NULL::text[], 'NULL password with a username: NULL');

-- toggles
UPDATE secpolicy.policy SET require_upper = false;
SELECT is(secpolicy.password_violations('correct-horse-9'), '{}'::text[], 'require_upper off');
UPDATE secpolicy.policy SET require_lower = false;
SELECT is(secpolicy.password_violations('CORRECT-HORSE-9'), '{}'::text[], 'require_lower off');
UPDATE secpolicy.policy SET require_digit = false;
SELECT is(secpolicy.password_violations('Correct-horse-x'), '{}'::text[], 'require_digit off');
UPDATE secpolicy.policy SET require_symbol = false;
SELECT is(secpolicy.password_violations('Correcthorse9x'), '{}'::text[], 'require_symbol off');
UPDATE secpolicy.policy SET check_username = false;
SELECT is(secpolicy.password_violations('Xalice-Pass-9z', 'alice'), '{}'::text[], 'check_username off');
UPDATE secpolicy.policy SET check_blocklist = false;
SELECT is(secpolicy.password_violations('Password123!'), '{}'::text[], 'check_blocklist off: built-in list ignored');
SELECT is(secpolicy.password_violations('MyAcmeCorp-2024x'), '{}'::text[], 'check_blocklist off: organisation words ignored');

-- presets
SELECT is((SELECT preset || '/' || min_length || '/' || require_upper || require_lower || require_digit || require_symbol
                  || '/' || history_depth || '/' || coalesce(max_password_age::text, 'none') || '/' || check_blocklist
             FROM secpolicy.apply_preset('nist')),
          'nist/15/falsefalsefalsefalse/0/none/true', 'apply_preset(nist): 15 characters, no composition, no expiry, blocklist on');
SELECT is(secpolicy.password_violations('plumtreeriverbo'), '{}'::text[], 'nist: 15 lower-case letters accepted');
SELECT is(secpolicy.password_violations('plumtreeriverb'), '{too_short}'::text[], 'nist: 14 characters too_short');
SELECT is(secpolicy.password_violations('Nick1234-rem936'), '{common_password}'::text[], 'nist: the blocklist still applies');
SELECT is(secpolicy.password_violations('Password123!'), '{too_short,common_password}'::text[], 'nist: short and common');
SELECT is((SELECT preset || '/' || min_length || '/' || require_upper || require_lower || require_digit || require_symbol
                  || '/' || history_depth || '/' || coalesce(max_password_age::text, 'none') || '/' || check_username
             FROM secpolicy.apply_preset('org')),
          'org/12/truetruetruetrue/5/6 mons/true', 'apply_preset(org) restores the organisation''s rules');
SELECT is(secpolicy.password_violations('plumtreeriverbo'), '{missing_upper,missing_digit,missing_symbol}'::text[],
          'org again: composition rules are back');
SELECT throws_ok($$SELECT secpolicy.apply_preset('bogus')$$, '22023', NULL, 'an unknown preset raises 22023');

SELECT * FROM finish();
ROLLBACK;
