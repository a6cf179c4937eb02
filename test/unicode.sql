-- pgTAP: Unicode normalisation of passwords (NIST SP 800-63B 5.1.1.2: NFKC
-- before hashing).  In this UTF-8 database:
--   hash_password hashes the NFKC form (a reference-CLI hash of the NFKC
--     bytes verifies), so a precomposed "é" and "e" + U+0301, full-width and
--     ASCII letters, a ligature and its letters are the same password;
--   verify_password also accepts the exact bytes a hash imported from a
--     non-normalising system was made from, at the price of a second argon2
--     computation that depends only on the password (so an unknown account's
--     dummy verification costs the same: counted, not timed);
--   password_violations judges the NFKC form: length, classes, username,
--     blocklist;
--   login and the password history treat the forms as one password;
--   password_match tells how a password matched, and login rehashes a hash
--     of unnormalised bytes even at the policy's cost;
--   passwords over 1024 bytes, or whose NFKC form exceeds 4096 bytes, are
--     used as received; organisation blocklist words are stored in NFKC.
-- Byte sequences are written with U&'' escapes so that no editor can change them.
-- Reference hashes: printf '<bytes>' | argon2 somesalt -id -t 1 -m 3 -p 1 -e
BEGIN;
\ir lib/helpers.psql
SELECT plan(44);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false;

\set nfc 'U&''caf\\00E9-Horse-42!'''::text
\set nfd 'U&''cafe\\0301-Horse-42!'''::text
\set nfd_wrong 'U&''cafe\\0301-Horse-43!'''::text
\set fullwidth 'U&''\\FF23\\FF4F\\FF52\\FF52\\FF45\\FF43\\FF54-horse-9'''::text
\set ligature 'U&''O\\FB01ce-Horse-42!'''::text
-- argon2 CLI hashes of the NFC bytes, the NFD bytes and the ligature bytes
\set ref_nfc '$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$OBdUmzE46EsSAzteJIP1YjA3PzA/laqHGa4Jip/64XU'
\set ref_nfd '$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$gm+NvTCZeaB22cLTez5QRijUvj8RWLMiJ9nVQMG1mzM'
\set ref_ligature '$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$ANgKq4NxEfpZ5P3yBxblgbBLeKnDTzaUgFUIwMH1IPs'

SELECT isnt(:nfc, :nfd, 'the two spellings of café are different strings');
SELECT is(normalize(:nfd, NFKC), :nfc, 'and the same in NFKC');

-- hashing: the NFKC form is what is hashed
SELECT secpolicy.hash_password(:nfd) AS h_nfd, secpolicy.hash_password(:fullwidth) AS h_full,
       secpolicy.hash_password(:ligature) AS h_lig \gset
SELECT ok(secpolicy.verify_password(:nfc, :'h_nfd'), 'a hash made from e + U+0301 verifies with a precomposed é');
SELECT ok(secpolicy.verify_password(:nfd, :'h_nfd'), 'and with e + U+0301');
SELECT ok(secpolicy.verify_password('Correct-horse-9', :'h_full'), 'a hash made from full-width letters verifies with ASCII');
SELECT ok(secpolicy.verify_password('Ofice-Horse-42!', :'h_lig'), 'a hash made from the ligature ﬁ verifies with f, i');
SELECT ok(NOT secpolicy.verify_password('Office-Horse-42!', :'h_lig'), 'but not with another password');
SELECT ok(secpolicy.verify_password(:nfd, :'ref_nfc'),
          'the reference CLI''s hash of the NFC bytes verifies with e + U+0301 (the NFKC bytes are hashed)');
SELECT ok(secpolicy.verify_password(:ligature, secpolicy.hash_password('Ofice-Horse-42!')),
          'an ASCII hash verifies with the ligature');

-- hashes imported from systems that did not normalise
SELECT ok(secpolicy.verify_password(:nfd, :'ref_nfd'), 'a foreign hash of the NFD bytes verifies with the same bytes');
SELECT ok(secpolicy.verify_password(:ligature, :'ref_ligature'), 'a foreign hash of the ligature bytes verifies with the same bytes');
SELECT ok(NOT secpolicy.verify_password(:nfc, :'ref_nfd'), 'but not with another spelling (the foreign hash holds one form)');
SELECT ok(NOT secpolicy.verify_password(U&'cafe\0301-Horse-43!', :'ref_nfd'), 'and a wrong password does not verify');

-- the cost of a verification depends on the password only
SELECT pg_temp.verifications() AS v0 \gset
SELECT secpolicy.verify_password('Correct-horse-8', :'h_full') \gset
SELECT is(pg_temp.verifications() - :v0, 1::bigint, 'an ASCII password: one computation');
SELECT pg_temp.verifications() AS v0 \gset
SELECT secpolicy.verify_password(U&'caf\00E9-Horse-43!', :'h_nfd') \gset
SELECT is(pg_temp.verifications() - :v0, 1::bigint, 'a wrong password already in NFKC: one computation');
SELECT pg_temp.verifications() AS v0 \gset
SELECT secpolicy.verify_password(:nfd_wrong, :'h_nfd') \gset
SELECT is(pg_temp.verifications() - :v0, 2::bigint, 'a wrong password not in NFKC: two (normalised, then as received)');
SELECT pg_temp.verifications() AS v0 \gset
SELECT secpolicy.verify_password(:nfd, :'h_nfd') \gset
SELECT is(pg_temp.verifications() - :v0, 1::bigint, 'a right password whose NFKC form matches: one');

-- the rules judge the NFKC form
SELECT is(secpolicy.password_violations(U&'\FF50\FF41\FF53\FF53\FF57\FF4F\FF52\FF44\FF11\FF12\FF13'),
          secpolicy.password_violations('password123'),
          'full-width "password123" breaks the same rules as the ASCII one (blocklist included)');
SELECT ok('common_password' = ANY (secpolicy.password_violations(U&'\FF30\FF41\FF53\FF53\FF57\FF4F\FF52\FF44-123456')),
          'a full-width blocked word is caught by the blocklist');
SELECT is(secpolicy.password_violations(U&'Aa1!\FB03\FB03\FB03'), '{}'::text[],
          'three ﬃ ligatures count as nine characters (13 in all: accepted)');
SELECT is(secpolicy.password_violations(U&'Abcdefghijk!\00B2'), '{}'::text[],
          'a superscript two is the digit 2');
SELECT is(secpolicy.password_violations(U&'\FF41\FF4C\FF49\FF43\FF45-Horse-42!', 'alice'), '{contains_username}'::text[],
          'a full-width username inside the password is found');
SELECT is(secpolicy.password_violations('Alice-Horse-42!', U&'\FF41\FF4C\FF49\FF43\FF45'), '{contains_username}'::text[],
          'and a full-width username is compared in NFKC too');
SELECT is(secpolicy.password_violations(:nfd), '{}'::text[], 'a decomposed é is an accepted lower-case letter');

-- login and history
SELECT ok(secpolicy.create_user('zoe', :nfc) > 0, 'create_user zoe with the NFC spelling');
SELECT is(pg_temp.status('zoe', :nfd), 'ok', 'zoe logs in with the NFD spelling');
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('zoe', :nfd_wrong), 'invalid_credentials', 'a wrong NFD password is refused');
SELECT pg_temp.verifications() - :v0 AS known_cost \gset
SELECT pg_temp.verifications() AS v0 \gset
SELECT is(pg_temp.status('nobody-here', :nfd_wrong), 'invalid_credentials', 'so is an unknown name');
SELECT is(pg_temp.verifications() - :v0, :known_cost::bigint,
          'with as many argon2 computations as for the account (the dummy verification normalises too)');
SELECT is(:known_cost::bigint, 2::bigint, 'two each');
SELECT is((secpolicy.change_password('zoe', :nfc, :nfd)).violations, '{reused_password}'::text[],
          'changing to the other spelling of the same password is reuse');
SELECT is((secpolicy.change_password('zoe', :nfd, :fullwidth)).status, 'ok', 'another password is accepted');
SELECT is(pg_temp.status('zoe', 'Correct-horse-9'), 'ok', 'and its ASCII spelling logs in');

-- password_match tells how a password matched; login rehashes a hash of unnormalised bytes
SELECT is(ARRAY[secpolicy.password_match(:nfd, :'ref_nfd'), secpolicy.password_match(:nfd, :'h_nfd'),
                secpolicy.password_match(:nfc, :'ref_nfd'), secpolicy.password_match('Correct-horse-9', :'h_full')],
          ARRAY['as_received', 'nfkc', NULL, 'nfkc'],
          'password_match: as_received for a foreign hash of NFD bytes, nfkc otherwise, NULL for no match');
SELECT ok(secpolicy.create_user('yves', 'Start-Pass-01x') > 0, 'create_user yves');
SELECT secpolicy.import_password_hash('yves', :'ref_nfd', 'from the old system');
SELECT is(secpolicy.password_needs_rehash(:'ref_nfd'), false, 'the imported hash is at exactly the policy''s cost');
SELECT is(pg_temp.status('yves', :nfd), 'ok', 'yves logs in with the NFD bytes of the imported hash');
SELECT ok((SELECT password_hash <> :'ref_nfd' AND secpolicy.password_match(:nfc, password_hash) = 'nfkc'
             FROM secpolicy.users WHERE username = 'yves'),
          'and the login rehashed it in NFKC although the cost was already the policy''s');
SELECT is(pg_temp.status('yves', :nfc), 'ok', 'so the NFC spelling logs in too');

-- limits: long passwords are used as received
SELECT ok(secpolicy.verify_password('Aa1!' || repeat(U&'e\0301', 400), secpolicy.hash_password('Aa1!' || repeat(U&'e\0301', 400)))
          AND NOT secpolicy.verify_password('Aa1!' || repeat(U&'\00E9', 400), secpolicy.hash_password('Aa1!' || repeat(U&'e\0301', 400))),
          'a password over 1024 bytes is not normalised (hashed and verified as received)');
SELECT ok(secpolicy.verify_password(repeat(U&'\FDFA', 300), secpolicy.hash_password(repeat(U&'\FDFA', 300))),
          '900 bytes whose NFKC form exceeds 4096 bytes are hashed and verified as received, without an error');
SELECT is(secpolicy.password_violations(repeat(U&'\FDFA', 300)),
          '{too_long,missing_upper,missing_lower,missing_digit,missing_symbol}'::text[],
          'and judged as received (300 letters; the NFKC form would hold spaces, which are symbols)');

-- organisation blocklist words are stored in NFKC
INSERT INTO secpolicy.password_blocklist (word) VALUES (U&'\FF57\FF49\FF44\FF47\FF45\FF54\FF43\FF4F'), (U&'fromage\0301');
SELECT set_eq($$SELECT word FROM secpolicy.password_blocklist WHERE word IN ('widgetco', U&'fromag\00E9')$$,
              ARRAY['widgetco', U&'fromag\00E9'], 'a full-width word and a decomposed one are stored in NFKC');
SELECT results_eq($$SELECT 'common_password' = ANY (secpolicy.password_violations('My-Widgetco-Pass-42!')),
                           'common_password' = ANY (secpolicy.password_violations(U&'My-Fromag\00E9-Pass-42!')),
                           'common_password' = ANY (secpolicy.password_violations(U&'My-Fromage\0301-Pass-42!'))$$,
                  $$VALUES (true, true, true)$$, 'and they match passwords in any spelling');

SELECT * FROM finish();
ROLLBACK;
