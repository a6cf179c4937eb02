-- pgTAP: protected columns (issue 11; src/columns.c, src/sql/93_protected_columns.sql):
-- protect_column() refuses, with a precise SQLSTATE, a missing column (42703),
-- a column that is not text (42804), a table without a primary key (55000),
-- one already protected (42710), a primary key column, an indexed or
-- constrained column (55000), a primary key of a type whose text may change
-- (0A000), a view (42809), a secpolicy table (42501), NULLs (22004) and bad
-- access names (22023).  The trigger encrypts what is written in clear into
-- "$sp2$" || base64(0x02 || key id || row key || nonce || ciphertext),
-- under the current key, with a fresh nonce (equal plaintexts differ), keeps
-- NULL as NULL, leaves an unchanged value alone (same bytes, blind index
-- restored after a hand edit), re-encrypts when the primary key changes, runs
-- after the table's other BEFORE triggers, and refuses (XX001) a value copied
-- from another row, column or table, a malformed one, and (54000) a value over
-- 1 MiB.  A composite primary key binds as ROW(a, b)::text, the same text in
-- C and SQL.  Values stored before protection stay readable and are encrypted
-- by protect_batch() until the column is protected (audited).
-- unprotect_column() decrypts in place, drops the blind index column and is
-- audited.  The event trigger refuses renames, moves, retypes and dropping the
-- primary key (55000), and forgets dropped tables and columns.
BEGIN;
\ir lib/helpers.psql
SELECT plan(72);

-- every batch of a column until it is protected; returns the values rewritten
CREATE FUNCTION pg_temp.encrypt_all(t regclass, c name) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
BEGIN
    FOR i IN 1 .. 1000 LOOP
        n := n + secpolicy.protect_batch(t, c, 50);
        IF (SELECT s.state FROM secpolicy.protection_status s
             WHERE format('%I.%I', s.table_schema, s.table_name)::regclass = t AND s.column_name = c::text) = 'protected' THEN
            RETURN n;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'not protected after 1000 batches';
END
$$;
-- the decoded bytes of a protected value
CREATE FUNCTION pg_temp.raw(v text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT decode(translate(substr(v, 6), '-_', '+/') || repeat('=', (4 - length(substr(v, 6)) % 4) % 4), 'base64')
$$;

CREATE SCHEMA regress_app;
CREATE TABLE regress_app.people (id bigint PRIMARY KEY, name text, email text, phone varchar, note varchar(20),
                                 age integer, code text UNIQUE, grade text CHECK (grade <> ''));
CREATE TABLE regress_app.nopk (id bigint, email text);
CREATE TABLE regress_app.tspk (at timestamptz PRIMARY KEY, email text);
CREATE VIEW regress_app.people_v AS SELECT * FROM regress_app.people;
CREATE TABLE regress_app.pairs (a integer, b text, secret text, PRIMARY KEY (a, b));
INSERT INTO regress_app.people (id, name, email, phone) VALUES (1, 'Ann', 'ann@example.com', '555-0101'),
       (2, 'Ben', 'ben@example.com', NULL), (3, 'Cat', NULL, '555-0103');
SELECT secpolicy.grant_reveal('postgres', 'people.contact');

-- ------------------------------------------------------------ bad input --
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'mail', 'people.contact')$$, '42703',
                 NULL, 'a column that does not exist: 42703');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'age', 'people.contact')$$, '42804',
                 NULL, 'an integer column: 42804');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'note', 'people.contact')$$, '42804',
                 NULL, 'a varchar(20) column (the ciphertext would not fit): 42804');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.nopk', 'email', 'people.contact')$$, '55000',
                 NULL, 'a table without a primary key: 55000');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.tspk', 'email', 'people.contact')$$, '0A000',
                 NULL, 'a timestamptz primary key (its text depends on settings): 0A000');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'id', 'people.contact')$$, '42804',
                 NULL, 'the bigint primary key column: 42804 (not text)');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.pairs', 'b', 'people.contact')$$, '55000',
                 NULL, 'a text column of the primary key: 55000');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'code', 'people.contact')$$, '55000',
                 NULL, 'a column with a unique index: 55000');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'grade', 'people.contact')$$, '55000',
                 NULL, 'a column with a CHECK constraint: 55000');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people_v', 'email', 'people.contact')$$, '42809',
                 NULL, 'a view: 42809');
DROP VIEW regress_app.people_v;
SELECT throws_ok($$SELECT secpolicy.protect_column('secpolicy.users', 'username', 'people.contact')$$, '42501',
                 NULL, 'a secpolicy table: 42501');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'email', NULL)$$, '22004',
                 NULL, 'a NULL access: 22004');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'email', 'People Contact')$$, '22023',
                 NULL, 'an invalid access name: 22023');
ALTER TABLE regress_app.people ADD COLUMN "a_column_with_a_name_of_sixty_characters_xxxxxxxxxxxxxxxxxx" text;
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'a_column_with_a_name_of_sixty_characters_xxxxxxxxxxxxxxxxxx', 'people.contact', true)$$,
                 '42622', NULL, 'a searchable column whose blind index name would exceed 63 bytes: 42622');
ALTER TABLE regress_app.people DROP COLUMN "a_column_with_a_name_of_sixty_characters_xxxxxxxxxxxxxxxxxx";
SELECT is((SELECT count(*) FROM secpolicy.protected_columns), 0::bigint, 'nothing was registered by the refusals');

-- ------------------------------------------------------- protect_column --
SELECT ok(secpolicy.protect_column('regress_app.people', 'email', 'people.contact', true) IS NOT NULL,
          'protect_column(people.email, searchable)');
SELECT throws_ok($$SELECT secpolicy.protect_column('regress_app.people', 'email', 'people.contact')$$, '42710',
                 NULL, 'protecting it again: 42710');
SELECT ok(secpolicy.protect_column('regress_app.people', 'phone', 'people.contact') IS NOT NULL,
          'protect_column(people.phone), a varchar');
SELECT results_eq($$SELECT column_name, access, searchable, state, key_id FROM secpolicy.protection_status ORDER BY column_name$$,
                  $$SELECT * FROM (VALUES ('email', 'people.contact', true, 'encrypting', (SELECT key_id FROM secpolicy.key_status())),
                                          ('phone', 'people.contact', false, 'encrypting', (SELECT key_id FROM secpolicy.key_status()))) v$$,
                  'both are registered, encrypting, under the current key');
SELECT is((SELECT tgargs FROM pg_trigger WHERE tgrelid = 'regress_app.people'::regclass AND tgname = 'zz_secpolicy_protect'),
          '\x656d61696c0073656172636861626c650070686f6e6500706c61696e00'::bytea,
          'one trigger, zz_secpolicy_protect(email, searchable, phone, plain)');
SELECT is((SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'regress_app.people'::regclass AND attname = 'email_bidx'),
          'bytea', 'the blind index column email_bidx was added');
SELECT is((SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = 'regress_app.people'::regclass AND a.attname = 'email_bidx'), 1::bigint, '... with an index');
SELECT results_eq($$SELECT action, details ->> 'column' FROM secpolicy.audit_log WHERE action = 'column_protected' ORDER BY id$$,
                  $$VALUES ('column_protected', 'email'), ('column_protected', 'phone')$$, 'both protections are audited');

-- values stored before protection: still in clear, still readable, encrypted by batches
SELECT is((SELECT email FROM regress_app.people WHERE id = 1), 'ann@example.com', 'a value stored before is in clear until its batch');
SELECT is((SELECT secpolicy.reveal('regress_app.people', 'email', email) FROM regress_app.people WHERE id = 1), 'ann@example.com',
          '... and reveal() shows it as it is');
SELECT is(pg_temp.encrypt_all('regress_app.people', 'email'), 2::bigint, 'protect_batch() encrypts the 2 stored emails');
SELECT is(pg_temp.encrypt_all('regress_app.people', 'phone'), 1::bigint,
          'the phones of those rows were encrypted by the same writes (any write of a row encrypts its values in clear), one is left');
SELECT is((SELECT count(*) FROM regress_app.people WHERE left(email, 5) = '$sp2$' OR left(phone, 5) = '$sp2$'), 3::bigint,
          'every non-NULL value is encrypted');
SELECT is((SELECT count(*) FROM regress_app.people WHERE email IS NULL), 1::bigint, 'NULL stays NULL');
SELECT is((SELECT email_bidx FROM regress_app.people WHERE id = 3), NULL, '... and so does its blind index');
SELECT results_eq($$SELECT action, details ->> 'values_written' FROM secpolicy.audit_log WHERE action = 'column_encrypted' ORDER BY id$$,
                  $$VALUES ('column_encrypted', '2'), ('column_encrypted', '1')$$, 'the end of each pass is audited with its count');

-- ------------------------------------------------------ the stored format --
INSERT INTO regress_app.people (id, name, email) VALUES (10, 'Dan', 'dan@example.com'), (11, 'Dee', 'dan@example.com');
SELECT is((SELECT get_byte(pg_temp.raw(email), 0) FROM regress_app.people WHERE id = 10), 2, 'format version byte 0x02');
SELECT is((SELECT encode(substr(pg_temp.raw(email), 2, 8), 'hex') FROM regress_app.people WHERE id = 10),
          (SELECT key_id FROM secpolicy.key_status()), 'then the id of the current key');
SELECT is((SELECT convert_from(substr(pg_temp.raw(email), 12, 2), 'UTF8') FROM regress_app.people WHERE id = 10), '10',
          'then the row key (length-prefixed)');
SELECT is((SELECT secpolicy.protected_key_id(email) FROM regress_app.people WHERE id = 10), (SELECT key_id FROM secpolicy.key_status()),
          'protected_key_id() reads the key id');
SELECT is((SELECT length(pg_temp.raw(email)) FROM regress_app.people WHERE id = 10), 1 + 8 + 2 + 2 + 24 + 15 + 16,
          'then a 24-byte nonce and the ciphertext with its 16-byte tag (15 bytes of plaintext)');
SELECT isnt((SELECT substr(pg_temp.raw(email), 14) FROM regress_app.people WHERE id = 10),
            (SELECT substr(pg_temp.raw(email), 14) FROM regress_app.people WHERE id = 11),
            'the same plaintext encrypts differently (fresh nonce)');
SELECT is((SELECT count(DISTINCT email_bidx) FROM regress_app.people WHERE id IN (10, 11)), 1::bigint,
          '... but has the same blind index');
SELECT is((SELECT position(convert_to('dan@example.com', 'UTF8') IN pg_temp.raw(email)) FROM regress_app.people WHERE id = 10), 0,
          'the plaintext is nowhere in the stored bytes');

-- --------------------------------------------------------------- updates --
CREATE TEMP TABLE before_upd AS SELECT id, email, email_bidx FROM regress_app.people;
UPDATE regress_app.people SET name = name || '!';
SELECT is((SELECT count(*) FROM regress_app.people p JOIN before_upd b USING (id)
            WHERE p.email IS NOT DISTINCT FROM b.email AND p.email_bidx IS NOT DISTINCT FROM b.email_bidx), 5::bigint,
          'an UPDATE of another column leaves the values and blind indexes as they were');
UPDATE regress_app.people SET email_bidx = '\x00' WHERE id = 1;
SELECT is((SELECT email_bidx FROM regress_app.people WHERE id = 1), (SELECT email_bidx FROM before_upd WHERE id = 1),
          'a hand-made edit of the blind index is undone');
UPDATE regress_app.people SET id = 100 WHERE id = 1;
SELECT isnt((SELECT email FROM regress_app.people WHERE id = 100), (SELECT email FROM before_upd WHERE id = 1),
            'a new primary key re-encrypts the value');
SELECT is((SELECT secpolicy.reveal('regress_app.people', 'email', email, id::text) FROM regress_app.people WHERE id = 100),
          'ann@example.com', '... bound to the new row key');
SELECT is((SELECT email_bidx FROM regress_app.people WHERE id = 100), (SELECT email_bidx FROM before_upd WHERE id = 1),
          '... with the same blind index');
UPDATE regress_app.people SET email = 'ann@example.org' WHERE id = 100;
SELECT is((SELECT secpolicy.reveal('regress_app.people', 'email', email) FROM regress_app.people WHERE id = 100),
          'ann@example.org', 'an UPDATE in clear is encrypted');

-- ------------------------------------------------- moved values: XX001 ---
SELECT throws_ok($$UPDATE regress_app.people SET email = (SELECT email FROM regress_app.people WHERE id = 2) WHERE id = 100$$,
                 'XX001', NULL, 'a value copied from another row is refused (XX001)');
SELECT throws_ok($$INSERT INTO regress_app.people (id, email) SELECT 12, email FROM regress_app.people WHERE id = 2$$,
                 'XX001', NULL, '... also into a new row');
SELECT throws_ok($$UPDATE regress_app.people SET phone = email WHERE id = 2$$,
                 'XX001', NULL, 'a value copied from another column of the row is refused');
CREATE TABLE regress_app.people2 (id bigint PRIMARY KEY, email text);
SELECT secpolicy.protect_column('regress_app.people2', 'email', 'people.contact');
SELECT throws_ok($$INSERT INTO regress_app.people2 SELECT id, email FROM regress_app.people WHERE id = 2$$,
                 'XX001', NULL, 'a value copied into another table (same column name and row key) is refused');
SELECT throws_ok($$INSERT INTO regress_app.people (id, email) VALUES (13, '$sp2$not-a-value')$$,
                 'XX001', NULL, 'a malformed value that looks encrypted is refused');
-- a value encrypted elsewhere for this very row is kept as it is (a restore)
CREATE TEMP TABLE ben AS SELECT * FROM regress_app.people WHERE id = 2;
DELETE FROM regress_app.people WHERE id = 2;
INSERT INTO regress_app.people SELECT * FROM ben;
SELECT is((SELECT email FROM regress_app.people WHERE id = 2), (SELECT email FROM ben),
          'a value encrypted for its own row is kept, not encrypted twice');

-- ------------------------------------------------------------- limits ----
SELECT lives_ok($$INSERT INTO regress_app.people (id, email) VALUES (20, repeat('x', 1048576))$$, 'a value of 1 MiB is accepted');
SELECT throws_ok($$INSERT INTO regress_app.people (id, email) VALUES (21, repeat('x', 1048577))$$, '54000',
                 NULL, 'a value over 1 MiB: 54000');
SELECT is((SELECT length(secpolicy.reveal('regress_app.people', 'email', email)) FROM regress_app.people WHERE id = 20), 1048576,
          'the 1 MiB value reveals whole');

-- ---------------------------------------- trigger order, composite keys --
CREATE FUNCTION regress_app.lower_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.email := lower(NEW.email); RETURN NEW; END $$;
CREATE TRIGGER aa_lower BEFORE INSERT ON regress_app.people FOR EACH ROW EXECUTE FUNCTION regress_app.lower_email();
INSERT INTO regress_app.people (id, email) VALUES (30, 'Eve@Example.COM');
SELECT is((SELECT secpolicy.reveal('regress_app.people', 'email', email) FROM regress_app.people WHERE id = 30), 'eve@example.com',
          'the table''s own BEFORE trigger saw (and normalised) the plaintext first');
SELECT secpolicy.protect_column('regress_app.pairs', 'secret', 'people.contact');
INSERT INTO regress_app.pairs VALUES (1, 'a b', 's1'), (2, '', 's2'), (3, 'q"\(x)', 's3');
SELECT is((SELECT string_agg(convert_from(substr(pg_temp.raw(secret), 12, get_byte(pg_temp.raw(secret), 10)), 'UTF8'), '|' ORDER BY a)
             FROM regress_app.pairs),
          (SELECT string_agg(ROW(a, b)::text, '|' ORDER BY a) FROM regress_app.pairs),
          'a composite key binds as ROW(a, b)::text (quoted as SQL quotes it)');
SELECT is((SELECT string_agg(secpolicy.reveal('regress_app.pairs', 'secret', secret, ROW(a, b)::text), ',' ORDER BY a)
             FROM regress_app.pairs), 's1,s2,s3', '... and reveals with that row key');

-- ------------------------------------------------------------ DDL guard --
SELECT throws_ok($$ALTER TABLE regress_app.people RENAME COLUMN email TO mail$$, '55000', NULL, 'renaming a protected column: 55000');
SELECT throws_ok($$ALTER TABLE regress_app.people RENAME TO persons$$, '55000', NULL, 'renaming its table: 55000');
SELECT throws_ok($$ALTER TABLE regress_app.people SET SCHEMA public$$, '55000', NULL, 'moving its table: 55000');
SELECT throws_ok($$ALTER TABLE regress_app.people ALTER COLUMN email TYPE varchar(10000000)$$, '55000', NULL, 'changing its type: 55000');
SELECT throws_ok($$ALTER TABLE regress_app.people DROP CONSTRAINT people_pkey$$, '55000', NULL, 'dropping the primary key: 55000');
SELECT throws_ok($$ALTER TABLE regress_app.people DROP COLUMN email_bidx$$, '55000', NULL, 'dropping the blind index column: 55000');
ALTER TABLE regress_app.people DROP COLUMN phone;
SELECT results_eq($$SELECT (SELECT count(*) FROM secpolicy.protected_columns WHERE table_name = 'people' AND column_name = 'phone'),
                           (SELECT tgargs FROM pg_trigger WHERE tgrelid = 'regress_app.people'::regclass AND tgname = 'zz_secpolicy_protect')$$,
                  $$VALUES (0::bigint, '\x656d61696c0073656172636861626c6500'::bytea)$$,
                  'a dropped protected column leaves the register and the trigger');
DROP TABLE regress_app.people2;
SELECT is((SELECT count(*) FROM secpolicy.protected_columns WHERE table_name = 'people2'), 0::bigint, 'a dropped table leaves the register');

-- ------------------------------------------------------ unprotect_column --
SELECT throws_ok($$SELECT secpolicy.unprotect_column('regress_app.people', 'email', NULL)$$, '22004', NULL, 'unprotect needs a reason');
SELECT throws_ok($$SELECT secpolicy.unprotect_column('regress_app.people', 'name', 'test')$$, '42704', NULL,
                 'unprotecting a column that is not protected: 42704');
SELECT is(secpolicy.unprotect_column('regress_app.people', 'email', 'no longer personal'), 6::bigint,
          'unprotect_column() decrypts the 6 stored values');
SELECT results_eq($$SELECT id, email FROM regress_app.people WHERE id IN (2, 10, 100) ORDER BY id$$,
                  $$VALUES (2::bigint, 'ben@example.com'), (10, 'dan@example.com'), (100, 'ann@example.org')$$,
                  'the values are back in clear');
SELECT results_eq($$SELECT (SELECT count(*) FROM pg_attribute WHERE attrelid = 'regress_app.people'::regclass AND attname = 'email_bidx' AND NOT attisdropped),
                           (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'regress_app.people'::regclass AND tgname = 'zz_secpolicy_protect'),
                           (SELECT count(*) FROM secpolicy.protected_columns WHERE table_name = 'people')$$,
                  $$VALUES (0::bigint, 0::bigint, 0::bigint)$$, 'the blind index column, the trigger and the registration are gone');
SELECT results_eq($$SELECT reason, details ->> 'values_decrypted' FROM secpolicy.audit_log WHERE action = 'column_unprotected'$$,
                  $$VALUES ('no longer personal', '6')$$, 'unprotect_column() is audited with its reason');
INSERT INTO regress_app.people (id, email) VALUES (40, 'plain@example.com');
SELECT is((SELECT email FROM regress_app.people WHERE id = 40), 'plain@example.com', 'new values stay in clear');

SELECT * FROM finish();
ROLLBACK;
