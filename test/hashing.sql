-- pgTAP: the argon2id building blocks.
--   hash_password: PHC format at the policy's cost, random salts, errors for
--     '' and for more than SP_MAX_PASSWORD_BYTES (4096) bytes;
--   verify_password: true/false, false (never an error) for NULLs, empty,
--     garbage, truncated strings, costs above the caps of src/secpolicy.h
--     (m 1 GiB, t 16, p 16: nothing is computed), argon2i/argon2d strings;
--     interoperability with the argon2 reference implementation;
--   password_needs_rehash: false at the policy cost, true otherwise;
--   hash_stats: per-backend counters.
-- Vectors were produced with the reference CLI: echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1
BEGIN;
SELECT plan(57);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;

\set ref '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc'
\set ref_changed '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPd'
\set ref_small '$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$8Tf44YakA6Z5zNBgblq13Nr+Q8FkCFWsjG4z6b1j7rM'
\set ref_t16 '$argon2id$v=19$m=8,t=16,p=1$c29tZXNhbHQ$RQELSh1yhAPCsJMufH2XvH3HRl54xojprmhiTG+zdjk'
\set ref_p16 '$argon2id$v=19$m=128,t=1,p=16$c29tZXNhbHQ$/MhVs61NxzSv0jMJWNKwsrH75YyLjG6we/MjYBwgn58'
\set ref_p2 '$argon2id$v=19$m=64,t=1,p=2$c29tZXNhbHQ$fulyYjWJJvMORDFTPUq4Eatpl3lItiixI9xM9B6eb10'
\set ref_argon2i '$argon2i$v=19$m=64,t=2,p=1$c29tZXNhbHQ$mJ2mVFjovhRArlVdCzyKw6ZYTg0ikLncyRWminHkHB4'
\set ref_argon2d '$argon2d$v=19$m=64,t=2,p=1$c29tZXNhbHQ$+SDZVThkhGWr7rpq4G6lMu0m3zFK/2AVAjfY/hFvYs0'

CREATE TEMP TABLE h AS
SELECT secpolicy.hash_password('Correct-horse-9') AS h1,
       secpolicy.hash_password('Correct-horse-9') AS h2;

-- format and cost
SELECT matches((SELECT h1 FROM h), '^\$argon2id\$v=19\$m=8,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$',
               'hash is an argon2id PHC string at the policy cost (m in KiB, 16-byte salt, 32-byte hash)');
UPDATE secpolicy.policy SET hash_opslimit = 2, hash_memlimit = 16384;
SELECT alike(secpolicy.hash_password('Correct-horse-9'), '$argon2id$v=19$m=16,t=2,p=1$%',
            'a new cost in the policy is used at once (m=16 KiB, t=2)');
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 10000;
SELECT alike(secpolicy.hash_password('Correct-horse-9'), '$argon2id$v=19$m=9,t=1,p=1$%',
            'memlimit in bytes that is not a multiple of 1024 rounds down to KiB');
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
SELECT isnt((SELECT h1 FROM h), (SELECT h2 FROM h), 'two hashes of the same password differ');
SELECT isnt((SELECT split_part(h1, '$', 5) FROM h), (SELECT split_part(h2, '$', 5) FROM h),
            'their salts differ');
SELECT is((SELECT strpos(h1, 'Correct-horse-9') FROM h), 0, 'the hash does not contain the password');

-- verify_password
SELECT is(secpolicy.verify_password('Correct-horse-9', (SELECT h1 FROM h)), true, 'right password verifies');
SELECT is(secpolicy.verify_password('Correct-horse-9', (SELECT h2 FROM h)), true, 'right password verifies against the second hash');
SELECT is(secpolicy.verify_password('Correct-horse-8', (SELECT h1 FROM h)), false, 'wrong password does not verify');
SELECT is(secpolicy.verify_password('correct-horse-9', (SELECT h1 FROM h)), false, 'verification is case-sensitive');
SELECT is(secpolicy.verify_password('', (SELECT h1 FROM h)), false, 'empty password does not verify');
SELECT is(secpolicy.verify_password(NULL, (SELECT h1 FROM h)), false, 'NULL password: false, not NULL');
SELECT is(secpolicy.verify_password('Correct-horse-9', NULL), false, 'NULL hash: false, not NULL');
SELECT is(secpolicy.verify_password(NULL, NULL), false, 'NULL both: false');
SELECT is(secpolicy.verify_password('Correct-horse-9', ''), false, 'empty hash: false');
SELECT is(secpolicy.verify_password('Correct-horse-9', 'not a hash at all'), false, 'garbage hash: false');
SELECT is(secpolicy.verify_password('Correct-horse-9', '$argon2id$'), false, 'truncated ''$argon2id$'': false');
SELECT is(secpolicy.verify_password('Correct-horse-9', (SELECT left(h1, 60) FROM h)), false, 'hash cut in the salt: false');
SELECT is(secpolicy.verify_password('Correct-horse-9', (SELECT h1 || ' ' FROM h)), false, 'hash with trailing garbage: false');
SELECT is(secpolicy.verify_password('Correct-horse-9', (SELECT h1 || repeat('A', 200) FROM h)), false, 'hash longer than any PHC string: false');
SELECT is(secpolicy.verify_password('Correct-horse-9', '$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$'), false, 'hash with an empty digest: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 'v=19', 'v=16')), false, 'version other than 19: false');

-- costs outside the accepted range are refused without computing anything
SELECT verifications AS v0 FROM secpolicy.hash_stats() \gset
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 'm=8,', 'm=1048577,')), false, 'm above the 1 GiB cap: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 'm=8,', 'm=99999999999999999999,')), false, 'm that overflows: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 't=1,', 't=17,')), false, 't above the cap of 16: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 'p=1$', 'p=17$')), false, 'p above the cap of 16: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 'm=8,', 'm=7,')), false, 'm below 8 KiB: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 't=1,', 't=0,')), false, 't = 0: false');
SELECT is(secpolicy.verify_password('password', replace(:'ref_small', 'p=1$', 'p=0$')), false, 'p = 0: false');
SELECT is(secpolicy.verify_password('password', :'ref_argon2i'), false, 'a valid $argon2i$ string: false');
SELECT is(secpolicy.verify_password('password', :'ref_argon2d'), false, 'a valid $argon2d$ string: false');
SELECT is(secpolicy.verify_password(repeat('x', 4097), (SELECT h1 FROM h)), false, 'a password over 4096 bytes: false');
SELECT is((SELECT verifications FROM secpolicy.hash_stats()) - :v0, 0::bigint,
          'none of the refused strings or oversized passwords ran an argon2 computation');

-- interoperability with the reference implementation
SELECT is(secpolicy.verify_password('password', :'ref'), true, 'reference vector (m=65536,t=2,p=1, salt somesalt) verifies');
SELECT is(secpolicy.verify_password('password', :'ref_changed'), false, 'reference vector with one character changed does not');
SELECT is(secpolicy.verify_password('Password', :'ref'), false, 'reference vector with another password does not');
SELECT is(secpolicy.verify_password('password', :'ref_small'), true, 'reference vector at the minimum cost verifies');
SELECT is(secpolicy.verify_password('password', :'ref_t16'), true, 't = 16 (the cap) is accepted and verifies');
SELECT is(secpolicy.verify_password('password', :'ref_p16'), true, 'p = 16 (the cap) is accepted and verifies');
SELECT is(secpolicy.verify_password('password', :'ref_p2'), true, 'p = 2 verifies');

-- password_needs_rehash
SELECT is(secpolicy.password_needs_rehash((SELECT h1 FROM h)), false, 'a hash at the policy cost needs no rehash');
UPDATE secpolicy.policy SET hash_opslimit = 2;
SELECT is(secpolicy.password_needs_rehash((SELECT h1 FROM h)), true, 'after raising opslimit it needs a rehash');
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 16384;
SELECT is(secpolicy.password_needs_rehash((SELECT h1 FROM h)), true, 'after raising memlimit it needs a rehash');
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
SELECT is(secpolicy.password_needs_rehash(:'ref_small'), false, 'a foreign hash at exactly the policy cost needs no rehash');
SELECT is(secpolicy.password_needs_rehash(:'ref'), true, 'the reference vector (another cost) needs a rehash');
SELECT is(secpolicy.password_needs_rehash(:'ref_p2'), true, 'p = 2 needs a rehash');
SELECT is(secpolicy.password_needs_rehash('not a hash'), true, 'garbage needs a rehash');
SELECT is(secpolicy.password_needs_rehash(''), true, 'empty string needs a rehash');
SELECT is(secpolicy.password_needs_rehash(:'ref_argon2i'), true, 'an argon2i string needs a rehash');
SELECT is(secpolicy.password_needs_rehash(replace(:'ref_small', 't=1,', 't=17,')), true, 'a string above the caps needs a rehash');

-- hash_password input limits
SELECT throws_ok($$SELECT secpolicy.hash_password('')$$, '22023', NULL, 'hash_password('''') raises 22023');
SELECT throws_ok($$SELECT secpolicy.hash_password(repeat('a', 4097))$$, '22023', NULL, 'hash_password of 4097 bytes raises 22023');
SELECT throws_ok($$SELECT secpolicy.hash_password(repeat('é', 2049))$$, '22023', NULL,
                 'the limit is in bytes: 2049 two-byte characters raise 22023');
SELECT ok(secpolicy.verify_password(repeat('é', 2048), secpolicy.hash_password(repeat('é', 2048))),
          'exactly 4096 bytes hash and verify');
SELECT is(secpolicy.hash_password(NULL), NULL, 'hash_password(NULL) is NULL');

-- hash_stats
SELECT hashes AS h0, verifications AS v1 FROM secpolicy.hash_stats() \gset
SELECT ok(secpolicy.verify_password('x', secpolicy.hash_password('Correct-horse-9')) IS NOT NULL, 'one hash and one verification');
SELECT results_eq(
    format('SELECT hashes - %s, verifications - %s FROM secpolicy.hash_stats()', :h0, :v1),
    $$VALUES (1::bigint, 1::bigint)$$,
    'hash_stats counted exactly one hash and one verification');

SELECT * FROM finish();
ROLLBACK;
