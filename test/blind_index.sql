-- pgTAP: blind indexes of searchable protected columns and key rotation of
-- protected columns (issue 11; src/columns.c, reseal_columns()).
-- blind_index(tbl, col, value) equals the <col>_bidx the trigger stores; an
-- equality search on it uses the index protect_column() made (no value is
-- decrypted), finds every row with that value and no other; it follows
-- updates, is NULL for NULL, differs between columns, and refuses columns
-- that are not protected (42704) or not searchable (55000).
-- Rotation inside the transaction (key files written next to the data
-- directory with COPY ... TO PROGRAM, removed at the end): with a new
-- secpolicy.key_file and the old one as previous_key_file, old values still
-- reveal; reseal_columns() returns the number of columns, reseals the blind
-- index keys at once, is audited, and the batches re-encrypt every value
-- under the new key (the old key alone then fails with 55000) while the
-- blind indexes, and so the searches, stay as they were.
BEGIN;
\ir lib/helpers.psql
SELECT plan(23);

CREATE FUNCTION pg_temp.encrypt_all(t regclass, c name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 1000 LOOP
        PERFORM secpolicy.protect_batch(t, c, 20);
        EXIT WHEN (SELECT s.state FROM secpolicy.protection_status s
                    WHERE format('%I.%I', s.table_schema, s.table_name)::regclass = t AND s.column_name = c::text) = 'protected';
    END LOOP;
END
$$;
-- write a key file next to the data directory
CREATE FUNCTION pg_temp.keyfile(name text, content text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    path text := current_setting('data_directory') || '/sp_tap_' || pg_backend_pid() || '_' || name;
BEGIN
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
                   format('cat >/dev/null; printf ''%s'' > %s && chmod 600 %s', content, path, path));
    PERFORM pg_temp.put('file.' || name, path);
    RETURN path;
END $$;

CREATE SCHEMA regress_bi;
CREATE TABLE regress_bi.members (id bigint PRIMARY KEY, email text, alt_email text, phone text);
INSERT INTO regress_bi.members
SELECT g, 'member' || (g % 50) || '@example.com', 'member' || (g % 50) || '@example.com', '555-' || g FROM generate_series(1, 500) g;
SELECT secpolicy.protect_column('regress_bi.members', 'email', 'members.contact', true) IS NOT NULL AS ok \gset
SELECT secpolicy.protect_column('regress_bi.members', 'alt_email', 'members.contact', true) IS NOT NULL AS ok \gset
SELECT secpolicy.protect_column('regress_bi.members', 'phone', 'members.contact') IS NOT NULL AS ok \gset
SELECT pg_temp.encrypt_all('regress_bi.members', 'email'), pg_temp.encrypt_all('regress_bi.members', 'alt_email'),
       pg_temp.encrypt_all('regress_bi.members', 'phone');
SELECT secpolicy.grant_reveal('postgres', 'members.contact');
ANALYZE regress_bi.members;

-- ------------------------------------------------------------- searches --
SELECT is((SELECT count(*) FROM regress_bi.members WHERE email_bidx IS NULL), 0::bigint, 'every row has its blind index');
SELECT results_eq($$SELECT id FROM regress_bi.members WHERE email_bidx = secpolicy.blind_index('regress_bi.members', 'email', 'member7@example.com') ORDER BY id$$,
                  $$SELECT g::bigint FROM generate_series(1, 500) g WHERE g % 50 = 7 ORDER BY g$$,
                  'blind_index() finds the 10 rows with that email, and no other');
SET LOCAL enable_seqscan = off;
SELECT ok(pg_temp.plan_of($$SELECT id FROM regress_bi.members WHERE email_bidx = secpolicy.blind_index('regress_bi.members', 'email', 'member7@example.com')$$)
          ~ 'Index Scan using members_email_bidx_idx|Bitmap Index Scan on members_email_bidx_idx', 'through the index on email_bidx');
RESET enable_seqscan;
SELECT is((SELECT count(*) FROM regress_bi.members
            WHERE email_bidx = secpolicy.blind_index('regress_bi.members', 'email', 'Member7@example.com')), 0::bigint,
          'equality of bytes: another spelling finds nothing');
SELECT isnt(secpolicy.blind_index('regress_bi.members', 'alt_email', 'member7@example.com'),
            secpolicy.blind_index('regress_bi.members', 'email', 'member7@example.com'),
            'each column has its own key');
SELECT is(secpolicy.blind_index('regress_bi.members', 'email', NULL), NULL, 'NULL: NULL');
SELECT is(length(secpolicy.blind_index('regress_bi.members', 'email', 'x')), 16, '128 bits');
UPDATE regress_bi.members SET email = 'moved@example.com' WHERE id = 7;
SELECT results_eq($$SELECT count(*) FROM regress_bi.members WHERE email_bidx = secpolicy.blind_index('regress_bi.members', 'email', 'member7@example.com')$$,
                  ARRAY[9::bigint], 'an update moves the row out of the old value''s rows ...');
SELECT results_eq($$SELECT id FROM regress_bi.members WHERE email_bidx = secpolicy.blind_index('regress_bi.members', 'email', 'moved@example.com')$$,
                  ARRAY[7::bigint], '... and into the new one''s');
SELECT throws_ok($$SELECT secpolicy.blind_index('regress_bi.members', 'phone', '555-1')$$, '55000', NULL,
                 'a protected column that is not searchable: 55000');
SELECT throws_ok($$SELECT secpolicy.blind_index('regress_bi.members', 'id', '1')$$, '42704', NULL, 'a column that is not protected: 42704');

-- ------------------------------------------------------------- rotation --
CREATE TEMP TABLE before_rot AS SELECT id, email, email_bidx, alt_email_bidx FROM regress_bi.members;
SELECT pg_temp.put('key_a', current_setting('secpolicy.key_file')) IS NOT NULL AS ok \gset
SELECT pg_temp.put('id_a', key_id) IS NOT NULL AS ok FROM secpolicy.key_status() \gset
SELECT pg_temp.keyfile('key_b', left(md5(random()::text) || md5(random()::text), 64)) IS NOT NULL AS ok \gset
SELECT set_config('secpolicy.key_file', pg_temp.get('file.key_b'), true) IS NOT NULL AS ok,
       set_config('secpolicy.previous_key_file', pg_temp.get('key_a'), true) IS NOT NULL AS ok2 \gset
SELECT pg_temp.put('id_b', key_id) IS NOT NULL AS ok FROM secpolicy.key_status() \gset
SELECT is((SELECT secpolicy.reveal('regress_bi.members', 'email', email) FROM regress_bi.members WHERE id = 8), 'member8@example.com',
          'with a new key and the old one as previous: old values reveal');
INSERT INTO regress_bi.members VALUES (501, 'new@example.com', NULL, NULL);
SELECT is((SELECT secpolicy.protected_key_id(email) FROM regress_bi.members WHERE id = 501), pg_temp.get('id_b'),
          'new values are under the new key');
SELECT is(secpolicy.reseal_columns(), 3, 'reseal_columns() covers the 3 protected columns');
SELECT is((SELECT count(*) FROM secpolicy.protected_columns WHERE searchable AND secpolicy.sealed_key_id(index_key) = pg_temp.get('id_b')),
          2::bigint, 'the blind index keys are resealed under the new key at once');
SELECT is((SELECT string_agg(DISTINCT state, ',') FROM secpolicy.protection_status), 'resealing', 'the columns are resealing');
SELECT is((SELECT details ->> 'columns' FROM secpolicy.audit_log WHERE action = 'columns_resealed'), '3', 'reseal_columns() is audited');
SELECT pg_temp.encrypt_all('regress_bi.members', 'email'), pg_temp.encrypt_all('regress_bi.members', 'alt_email'),
       pg_temp.encrypt_all('regress_bi.members', 'phone');
SELECT is((SELECT count(*) FROM regress_bi.members
            WHERE secpolicy.protected_key_id(email) IS DISTINCT FROM pg_temp.get('id_b')
               OR secpolicy.protected_key_id(alt_email) IS DISTINCT FROM pg_temp.get('id_b')
               OR secpolicy.protected_key_id(phone) IS DISTINCT FROM pg_temp.get('id_b')), 1::bigint,
          'after the batches every value is under the new key (row 501 has NULLs)');
SELECT is((SELECT count(*) FROM regress_bi.members m JOIN before_rot b USING (id)
            WHERE m.email_bidx = b.email_bidx AND m.alt_email_bidx = b.alt_email_bidx), 500::bigint,
          'the blind indexes did not change');
SELECT is((SELECT count(*) FROM regress_bi.members m JOIN before_rot b USING (id) WHERE m.email = b.email), 0::bigint,
          '... while every ciphertext did');
SELECT set_config('secpolicy.previous_key_file', '', true) IS NOT NULL AS ok \gset
SELECT results_eq($$SELECT count(*) FROM regress_bi.members WHERE email_bidx = secpolicy.blind_index('regress_bi.members', 'email', 'member8@example.com')
                      AND secpolicy.reveal('regress_bi.members', 'email', email, id::text) = 'member8@example.com'$$,
                  ARRAY[10::bigint], 'under the new key alone, searches and reveals work');
SELECT set_config('secpolicy.key_file', pg_temp.get('key_a'), true) IS NOT NULL AS ok \gset
SELECT throws_ok($$SELECT secpolicy.reveal('regress_bi.members', 'email', email) FROM regress_bi.members WHERE id = 8$$,
                 '55000', NULL, 'the old key alone cannot open the resealed values: 55000');
SELECT set_config('secpolicy.key_file', pg_temp.get('key_a'), true) IS NOT NULL AS ok \gset

SELECT lives_ok(format('COPY (SELECT 1) TO PROGRAM %L', 'cat >/dev/null; rm -f ' || string_agg(v, ' ')), 'key files removed')
  FROM kv WHERE k LIKE 'file.%';

SELECT * FROM finish();
ROLLBACK;
