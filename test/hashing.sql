-- pgTAP: hash_password / verify_password / password_needs_rehash.
BEGIN;
SELECT plan(3);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
SELECT ok(secpolicy.hash_password('Correct-horse-9') LIKE '$argon2id$v=19$m=8,t=1,p=1$%', 'hash is an argon2id PHC string at the policy cost');
SELECT ok(secpolicy.verify_password('Correct-horse-9', secpolicy.hash_password('Correct-horse-9')), 'right password verifies');
SELECT ok(NOT secpolicy.verify_password('wrong', secpolicy.hash_password('Correct-horse-9')), 'wrong password does not verify');
SELECT * FROM finish();
ROLLBACK;
