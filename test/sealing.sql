-- pgTAP: second-factor secrets are sealed at rest: src/seal.c and reseal_secrets.
-- Covers: no TOTP secret (base32, lower case or raw bytes), recovery code
-- (any spelling), otpauth URI, challenge or session token appears in any
-- column of any secpolicy table or view (text, jsonb, bytea as bytes, hex and
-- escape; the scanner is shown to find planted values); a sealed value is
-- key id (8 bytes = key_status().key_id) || nonce || box; tampering with the
-- box, the nonce or the length raises XX001 (data_corrupted), with the key id
-- 55000; no key configured raises 55000 (enrol, verify, confirm, reseal); key
-- files: a copy with mode 644 or 640, wrong content (short, long, non-hex,
-- empty, a directory) raise F0000, a missing file 58P01; rotation inside the
-- transaction: new key + previous key, reseal_secrets() count and audit, every
-- value under the new key, previous key unset, old key alone fails with 55000;
-- privileges on the tables, the internal functions and the key settings.
-- Key files are written with COPY ... TO PROGRAM next to the data directory
-- and removed at the end.  Known bugs are asserted last.
BEGIN;
\ir lib/helpers.psql
SELECT plan(87);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
UPDATE secpolicy.policy SET require_mfa = true, max_failed_attempts = 5,
       totp_algorithm = 'sha1', totp_digits = 6, totp_period = 30, totp_window = 1,
       recovery_code_count = 10;
SET LOCAL secpolicy.previous_key_file = '';

-- Helpers (temporary, rolled back with the test); more in lib/helpers.psql.
GRANT ALL ON kv TO PUBLIC;
CREATE FUNCTION pg_temp.sealed(uname text) RETURNS bytea LANGUAGE sql STABLE AS
$$ SELECT sealed_secret FROM secpolicy.totp_credentials WHERE user_id = pg_temp.uid(uname) $$;
-- flip one byte (0-based) of a user's sealed secret
CREATE FUNCTION pg_temp.flip(uname text, i int) RETURNS void LANGUAGE sql AS
$$ UPDATE secpolicy.totp_credentials SET sealed_secret = set_byte(sealed_secret, i, get_byte(sealed_secret, i) # 1)
    WHERE user_id = pg_temp.uid(uname) $$;
-- every 'relation.column' of schema secpolicy (tables and views) holding one
-- of the needles: as text (case-insensitive), and for bytea also as bytes and
-- in hex and escape form; raw needles are searched as bytes, hex and base64
CREATE FUNCTION pg_temp.leaks(needles text[], raws bytea[]) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    r record;
    hits text[] := '{}';
    n text;
    b bytea;
    found boolean;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relkind, a.attname, a.atttypid
          FROM pg_class c
          JOIN pg_namespace s ON s.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE s.nspname = 'secpolicy' AND c.relkind IN ('r', 'p', 'v', 'm')
         ORDER BY 1, a.attnum
    LOOP
        BEGIN
            FOREACH n IN ARRAY needles LOOP
                IF r.atttypid = 'bytea'::regtype THEN
                    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE position(convert_to($1, ''UTF8'') IN %I) > 0
                                      OR strpos(lower(encode(%I, ''escape'')), lower($1)) > 0
                                      OR strpos(encode(%I, ''hex''), encode(convert_to(lower($1), ''UTF8''), ''hex'')) > 0
                                      OR strpos(encode(%I, ''hex''), encode(convert_to(upper($1), ''UTF8''), ''hex'')) > 0)',
                                   r.rel, r.attname, r.attname, r.attname, r.attname)
                       INTO found USING n;
                ELSE
                    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE strpos(lower(%I::text), lower($1)) > 0)',
                                   r.rel, r.attname)
                       INTO found USING n;
                END IF;
                IF found THEN
                    hits := hits || (r.rel || '.' || r.attname || ' has ' || left(n, 6) || '...');
                END IF;
            END LOOP;
            FOREACH b IN ARRAY raws LOOP
                IF r.atttypid = 'bytea'::regtype THEN
                    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE position($1 IN %I) > 0)', r.rel, r.attname)
                       INTO found USING b;
                ELSE
                    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE strpos(lower(%I::text), encode($1, ''hex'')) > 0
                                      OR strpos(%I::text, encode($1, ''base64'')) > 0)', r.rel, r.attname, r.attname)
                       INTO found USING b;
                END IF;
                IF found THEN
                    hits := hits || (r.rel || '.' || r.attname || ' has raw bytes');
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            IF r.relkind IN ('r', 'p') THEN
                RAISE;
            END IF;             -- a view that cannot be read here is skipped
        END;
    END LOOP;
    RETURN hits;
END $$;
-- write a key file next to the data directory (printf escapes allowed in content)
CREATE FUNCTION pg_temp.keyfile(name text, content text, mode text DEFAULT '600') RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    path text := current_setting('data_directory') || '/sp_tap_' || pg_backend_pid() || '_' || name;
BEGIN
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
                   format('cat >/dev/null; printf ''%s'' > %s && chmod %s %s', content, path, mode, path));
    PERFORM pg_temp.put('file.' || name, path);
    RETURN path;
END $$;

-- ---------------------------------------------------------------- setup -----
-- regress_seal: enrolled; regress_seal_p: enrolment pending (not confirmed)
SELECT secpolicy.create_user('regress_seal', pg_temp.pw()) IS NOT NULL AS ok \gset
SELECT secpolicy.create_user('regress_seal_p', pg_temp.pw()) IS NOT NULL AS ok \gset
SELECT secpolicy.create_user('regress_seal_canary', pg_temp.pw()) IS NOT NULL AS ok \gset
CREATE TEMP TABLE l1 AS SELECT * FROM secpolicy.login('regress_seal', pg_temp.pw(), '192.0.2.7', 'tap-agent');
CREATE TEMP TABLE e1 AS SELECT r.* FROM l1, secpolicy.totp_enroll(l1.challenge_token) r;
CREATE TEMP TABLE c1 AS SELECT r.* FROM l1, e1, secpolicy.totp_confirm(l1.challenge_token, pg_temp.code(e1.secret)) r;
SELECT is(status, 'ok', 'setup: regress_seal enrolled') FROM c1;
CREATE TEMP TABLE l2 AS SELECT * FROM secpolicy.login('regress_seal_p', pg_temp.pw());
CREATE TEMP TABLE e2 AS SELECT r.* FROM l2, secpolicy.totp_enroll(l2.challenge_token) r;
SELECT ok(secret IS NOT NULL, 'setup: regress_seal_p has a pending enrolment') FROM e2;
SELECT pg_temp.put('key_a', current_setting('secpolicy.key_file')) IS NOT NULL AS ok \gset
SELECT pg_temp.put('key_a_hex', btrim(pg_read_file(current_setting('secpolicy.key_file')), E' \t\r\n')) IS NOT NULL AS ok \gset
SELECT pg_temp.put('id_a', key_id) IS NOT NULL AS ok FROM secpolicy.key_status() \gset

-- --------------------------------------------------------- sealed format -----
SELECT ok(pg_temp.get('id_a') ~ '^[0-9a-f]{16}$', 'key_status().key_id is 16 hex characters (8 bytes)');
SELECT is(previous_key_id, NULL, 'no previous key configured') FROM secpolicy.key_status();
SELECT is(get_byte(pg_temp.sealed('regress_seal'), 0), 1, 'sealed_secret starts with the format version, 1');
SELECT is(encode(substring(pg_temp.sealed('regress_seal') FROM 2 FOR 8), 'hex'), pg_temp.get('id_a'),
          '... then the 8-byte id of the current key');
SELECT is(secpolicy.sealed_key_id(pg_temp.sealed('regress_seal')), pg_temp.get('id_a'), 'sealed_key_id() agrees');
SELECT is(encode(substring(c.pending_secret FROM 2 FOR 8), 'hex'), pg_temp.get('id_a'), 'a pending secret is sealed the same way')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_seal_p');
SELECT is(length(pg_temp.sealed('regress_seal')), 1 + 8 + 24 + 16 + 20, 'length = version 1 + key id 8 + nonce 24 + MAC 16 + secret 20');
SELECT isnt(substring(pg_temp.sealed('regress_seal') FROM 10 FOR 24), substring(c.pending_secret FROM 10 FOR 24),
            'nonces differ between sealed values')
  FROM secpolicy.totp_credentials c WHERE c.user_id = pg_temp.uid('regress_seal_p');
SELECT is((secpolicy.totp_verify_sealed(pg_temp.sealed('regress_seal'), pg_temp.code(e1.secret), now(), -1, 1, 6, 30, 'sha1')).step,
          pg_temp.step(0), 'the sealed value opens to the enrolled secret') FROM e1;

-- ---------------------------------------------------- nothing in clear -----
CREATE TEMP TABLE needles AS
SELECT array_remove(ARRAY[e1.secret, e2.secret, e1.otpauth_uri, e2.otpauth_uri,
                          l1.challenge_token, l2.challenge_token, c1.session_token]
                    || c1.recovery_codes
                    || ARRAY(SELECT replace(rc, '-', '') FROM unnest(c1.recovery_codes) rc), NULL) AS txt,
       ARRAY[pg_temp.b32decode(e1.secret), pg_temp.b32decode(e2.secret)] AS raw
  FROM e1, e2, l1, l2, c1;
SELECT is(array_length(txt, 1), 27, 'needles: 2 secrets, 2 URIs, 3 tokens, 10 recovery codes in two spellings') FROM needles;
SELECT is(pg_temp.leaks(txt, raw), '{}'::text[], 'no secret, recovery code, URI or token in any secpolicy table or view') FROM needles;
-- the scanner finds planted values (text, raw bytes, hex of raw bytes)
UPDATE secpolicy.users SET disabled_reason = 'x' || lower(e1.secret) || 'x' FROM e1 WHERE username = 'regress_seal_canary';
INSERT INTO secpolicy.recovery_codes (user_id, code_digest)
SELECT pg_temp.uid('regress_seal_canary'), '\x00'::bytea || pg_temp.b32decode(e2.secret) FROM e2;
UPDATE secpolicy.login_attempts SET user_agent = encode(pg_temp.b32decode(e1.secret), 'hex')
  FROM e1 WHERE user_agent = 'tap-agent';
SELECT ok(pg_temp.leaks(txt, raw) @>
          ARRAY['secpolicy.users.disabled_reason has ' || left(e1.secret, 6) || '...',
                'secpolicy.recovery_codes.code_digest has raw bytes',
                'secpolicy.login_attempts.user_agent has raw bytes'],
          'sanity: the scanner reports planted values (text, raw bytes, hex of raw bytes)')
  FROM needles, e1;
UPDATE secpolicy.users SET disabled_reason = NULL WHERE username = 'regress_seal_canary';
DELETE FROM secpolicy.recovery_codes WHERE user_id = pg_temp.uid('regress_seal_canary');
UPDATE secpolicy.login_attempts SET user_agent = 'tap-agent' WHERE user_id = pg_temp.uid('regress_seal') AND user_agent ~ '^[0-9a-f]+$';
SELECT is(pg_temp.leaks(txt, raw), '{}'::text[], 'clean again after removing the planted values') FROM needles;
-- after a full login with a TOTP code and a recovery code, still nothing
CREATE TEMP TABLE v1 AS SELECT r.* FROM e1, secpolicy.verify_mfa(pg_temp.challenge('regress_seal'), pg_temp.code(e1.secret, 1)) r;
SELECT is(status, 'ok', 'a login with a TOTP code') FROM v1;
SELECT is(r.status, 'ok', 'a login with a recovery code')
  FROM c1, secpolicy.verify_mfa(pg_temp.challenge('regress_seal'), c1.recovery_codes[1]) r;
SELECT is(pg_temp.leaks(txt || v1.session_token, raw), '{}'::text[], 'after logins: still nothing in clear') FROM needles, v1;

-- --------------------------------------------------------------- tamper -----
SELECT pg_temp.put('orig', encode(pg_temp.sealed('regress_seal'), 'hex')) IS NOT NULL AS ok \gset
SELECT pg_temp.put('ch', pg_temp.challenge('regress_seal')) IS NOT NULL AS ok \gset
-- step T+1 is used; the check below uses T+1 too, so a fresh code is needed: rewind the replay guard
UPDATE secpolicy.totp_credentials SET last_used_step = pg_temp.step(-5) WHERE user_id = pg_temp.uid('regress_seal');
SELECT pg_temp.flip('regress_seal', 68);
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 'XX001', NULL, 'last byte (ciphertext) flipped: verify_mfa raises XX001') FROM e1;
SELECT pg_temp.flip('regress_seal', 68);
SELECT pg_temp.flip('regress_seal', 41);
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 'XX001', NULL, 'a MAC byte flipped: XX001') FROM e1;
SELECT pg_temp.flip('regress_seal', 41);
SELECT pg_temp.flip('regress_seal', 13);
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 'XX001', NULL, 'a nonce byte flipped: XX001') FROM e1;
SELECT pg_temp.flip('regress_seal', 13);
SELECT pg_temp.flip('regress_seal', 1);
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 '55000', NULL, 'a key-id byte flipped: no configured key fits, 55000') FROM e1;
SELECT pg_temp.flip('regress_seal', 1);
SELECT pg_temp.flip('regress_seal', 0);
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 'XX001', NULL, 'the version byte flipped: an unknown format, XX001') FROM e1;
SELECT pg_temp.flip('regress_seal', 0);
-- a value sealed by version 1.0 (no version byte: 68 bytes) still opens
SELECT is((secpolicy.totp_verify_sealed(substring(pg_temp.sealed('regress_seal') FROM 2), pg_temp.code(e1.secret, 3),
                                        now(), -1, 3, 6, 30, 'sha1')).step,
          pg_temp.step(3), 'a value in the format of 1.0 (no version byte) still opens') FROM e1;
SELECT is(secpolicy.sealed_key_id(substring(pg_temp.sealed('regress_seal') FROM 2)), pg_temp.get('id_a'),
          'sealed_key_id() reads the key id of a 1.0 value');
UPDATE secpolicy.totp_credentials SET sealed_secret = substring(sealed_secret FROM 1 FOR 48)
 WHERE user_id = pg_temp.uid('regress_seal');
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 'XX001', NULL, 'truncated to the overhead (no ciphertext): XX001') FROM e1;
UPDATE secpolicy.totp_credentials SET sealed_secret = decode(pg_temp.get('orig'), 'hex') || '\x00'::bytea
 WHERE user_id = pg_temp.uid('regress_seal');
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.get('ch'), pg_temp.code(e1.secret)),
                 'XX001', NULL, 'one byte appended: XX001') FROM e1;
UPDATE secpolicy.totp_credentials c SET pending_secret = set_byte(pending_secret, 50, get_byte(pending_secret, 50) # 128)
 WHERE c.user_id = pg_temp.uid('regress_seal_p');
SELECT throws_ok(format('SELECT * FROM secpolicy.totp_confirm(%L, %L)', l2.challenge_token, pg_temp.code(e2.secret)),
                 'XX001', NULL, 'a tampered pending secret: totp_confirm raises XX001') FROM l2, e2;
UPDATE secpolicy.totp_credentials c SET pending_secret = set_byte(pending_secret, 50, get_byte(pending_secret, 50) # 128)
 WHERE c.user_id = pg_temp.uid('regress_seal_p');
UPDATE secpolicy.totp_credentials SET sealed_secret = decode(pg_temp.get('orig'), 'hex') WHERE user_id = pg_temp.uid('regress_seal');
SELECT is(r.status, 'invalid_code', 'a malformed code is rejected without opening the secret')
  FROM secpolicy.verify_mfa(pg_temp.get('ch'), 'abc') r;
SELECT is(r.status, 'ok', 'restored: the same code verifies') FROM e1, secpolicy.verify_mfa(pg_temp.get('ch'), pg_temp.code(e1.secret)) r;
UPDATE secpolicy.users SET failed_attempts = 0 WHERE username = 'regress_seal';

-- ------------------------------------------------------- no key at all -----
SET LOCAL secpolicy.key_file = '';
SELECT is(key_id, NULL, 'key_file empty: key_status().key_id is NULL') FROM secpolicy.key_status();
UPDATE secpolicy.totp_credentials SET last_used_step = pg_temp.step(-5) WHERE user_id = pg_temp.uid('regress_seal');
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.challenge('regress_seal'), pg_temp.code(e1.secret)),
                 '55000', NULL, 'no key: verify_mfa with a TOTP code raises 55000') FROM e1;
SELECT throws_ok(format('SELECT * FROM secpolicy.totp_confirm(%L, %L)', l2.challenge_token, pg_temp.code(e2.secret)),
                 '55000', NULL, 'no key: totp_confirm raises 55000') FROM l2, e2;
SELECT throws_ok(format('SELECT * FROM secpolicy.totp_enroll(%L)', c1.session_token),
                 '55000', NULL, 'no key: totp_enroll raises 55000') FROM c1;
SELECT throws_ok('SELECT secpolicy.reseal_secrets()', '55000', NULL, 'no key: reseal_secrets raises 55000');
RESET secpolicy.key_file;

-- ------------------------------------------------------------ key files -----
SELECT pg_temp.keyfile('copy600', pg_temp.get('key_a_hex') || '\n', '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('copy644', pg_temp.get('key_a_hex') || '\n', '644') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('copy640', pg_temp.get('key_a_hex') || '\n', '640') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('copy_crlf', pg_temp.get('key_a_hex') || '  \r\n', '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('short', left(pg_temp.get('key_a_hex'), 63), '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('long', pg_temp.get('key_a_hex') || '0', '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('nonhex', repeat('z', 64), '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('inner_space', left(pg_temp.get('key_a_hex'), 32) || ' ' || right(pg_temp.get('key_a_hex'), 31), '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('empty', '', '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('double', pg_temp.get('key_a_hex') || pg_temp.get('key_a_hex'), '600') IS NOT NULL AS ok \gset
SELECT pg_temp.keyfile('trailing', pg_temp.get('key_a_hex') || '        garbage after the key', '600') IS NOT NULL AS ok \gset
CREATE FUNCTION pg_temp.status_with_key(name text, q text DEFAULT 'SELECT * FROM secpolicy.key_status()') RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('secpolicy.key_file', coalesce(pg_temp.get('file.' || name), name), true);
    RETURN coalesce(pg_temp.sqlstate_of(q), 'no error');
END $$;
SELECT is(pg_temp.status_with_key('copy600'), 'no error', 'a mode-600 copy of the key works');
SELECT is(key_id, pg_temp.get('id_a'), 'and has the same key id') FROM secpolicy.key_status();
SELECT is(pg_temp.status_with_key('copy_crlf'), 'no error', 'trailing spaces and CRLF after the 64 hex characters are accepted');
SELECT is(key_id, pg_temp.get('id_a'), 'and give the same key id') FROM secpolicy.key_status();
SELECT is(pg_temp.status_with_key('copy644'), 'F0000', 'a mode-644 copy of the key: F0000');
SELECT is(pg_temp.status_with_key('copy640'), 'F0000', 'a mode-640 copy of the key: F0000');
SELECT is(pg_temp.status_with_key('copy644', format('SELECT * FROM secpolicy.verify_mfa(%L, %L)',
                                                     pg_temp.challenge('regress_seal'), pg_temp.code(e1.secret))),
          'F0000', 'verify_mfa with a mode-644 key file: F0000') FROM e1;
SELECT is(pg_temp.status_with_key('copy644', format('SELECT * FROM secpolicy.totp_enroll(%L)', c1.session_token)),
          'F0000', 'totp_enroll with a mode-644 key file: F0000') FROM c1;
SELECT is(pg_temp.status_with_key('short'), 'F0000', '63 hex characters: F0000');
SELECT is(pg_temp.status_with_key('long'), 'F0000', '65 hex characters: F0000');
SELECT is(pg_temp.status_with_key('nonhex'), 'F0000', '64 non-hex characters: F0000');
SELECT is(pg_temp.status_with_key('inner_space'), 'F0000', 'a space inside the key: F0000');
SELECT is(pg_temp.status_with_key('empty'), 'F0000', 'an empty file: F0000');
SELECT is(pg_temp.status_with_key('double'), 'F0000', '128 hex characters: F0000');
SELECT is(pg_temp.status_with_key(current_setting('data_directory')), 'F0000', 'a directory: F0000');
SELECT is(pg_temp.status_with_key(current_setting('data_directory') || '/no_such_key_file'), '58P01', 'a missing file: 58P01');
SELECT lives_ok($$SELECT set_config('secpolicy.key_file', pg_temp.get('key_a'), true)$$, 'back to the real key');
SELECT is(pg_temp.sqlstate_of(format('SELECT * FROM set_config(%L, %L, true), secpolicy.key_status()',
                                     'secpolicy.previous_key_file', pg_temp.get('file.copy644'))),
          'F0000', 'previous_key_file with mode 644: F0000');
SET LOCAL secpolicy.previous_key_file = '';

-- ------------------------------------------- rotation in one transaction -----
SELECT pg_temp.keyfile('key_b', encode(sha256(convert_to(random()::text || clock_timestamp()::text, 'UTF8')), 'hex') || '\n')
       IS NOT NULL AS ok \gset
SELECT is(secpolicy.reseal_secrets(), 0, 'reseal_secrets with only the current key: 0 changed');
SELECT is(a.details->>'resealed', '0', 'audit: secrets_resealed with the count')
  FROM secpolicy.audit_log a WHERE a.action = 'secrets_resealed' ORDER BY a.id DESC LIMIT 1;
SELECT set_config('secpolicy.key_file', pg_temp.get('file.key_b'), true) IS NOT NULL AS ok,
       set_config('secpolicy.previous_key_file', pg_temp.get('key_a'), true) IS NOT NULL AS ok2 \gset
SELECT pg_temp.put('id_b', key_id) IS NOT NULL AS ok FROM secpolicy.key_status() \gset
SELECT ok(pg_temp.get('id_b') ~ '^[0-9a-f]{16}$' AND pg_temp.get('id_b') <> pg_temp.get('id_a'), 'key B has its own id');
SELECT is(previous_key_id, pg_temp.get('id_a'), 'key_status shows key A as the previous key') FROM secpolicy.key_status();
SELECT is((secpolicy.totp_verify_sealed(pg_temp.sealed('regress_seal'), pg_temp.code(e1.secret), now(), -1, 1, 6, 30, 'sha1')).step,
          pg_temp.step(0), 'during the rotation, values sealed under A still open (previous key)') FROM e1;
SELECT is(secpolicy.reseal_secrets(), 2, 'reseal_secrets returns the number of credential rows resealed (confirmed + pending)');
SELECT is(a.details->>'resealed' || '/' || (a.details->>'key_id'), '2/' || pg_temp.get('id_b'), 'audit: secrets_resealed 2 under key B')
  FROM secpolicy.audit_log a WHERE a.action = 'secrets_resealed' ORDER BY a.id DESC LIMIT 1;
SELECT is(count(*), 0::bigint, 'afterwards every sealed value carries key B''s id')
  FROM secpolicy.totp_credentials c
 WHERE (c.sealed_secret IS NOT NULL AND encode(substring(c.sealed_secret FROM 2 FOR 8), 'hex') <> pg_temp.get('id_b'))
    OR (c.pending_secret IS NOT NULL AND encode(substring(c.pending_secret FROM 2 FOR 8), 'hex') <> pg_temp.get('id_b'));
SELECT isnt(encode(pg_temp.sealed('regress_seal'), 'hex'), pg_temp.get('orig'), 'the stored value changed');
SELECT is(secpolicy.reseal_secrets(), 0, 'a second reseal_secrets changes nothing');
SET LOCAL secpolicy.previous_key_file = '';
SELECT is((secpolicy.totp_verify_sealed(pg_temp.sealed('regress_seal'), pg_temp.code(e1.secret), now(), -1, 1, 6, 30, 'sha1')).step,
          pg_temp.step(0), 'previous key unset: the resealed value opens under key B alone') FROM e1;
UPDATE secpolicy.totp_credentials SET last_used_step = pg_temp.step(-5) WHERE user_id = pg_temp.uid('regress_seal');
SELECT is(r.status, 'ok', 'previous key unset: verify_mfa works') FROM e1,
       secpolicy.verify_mfa(pg_temp.challenge('regress_seal'), pg_temp.code(e1.secret)) r;
SELECT is(r.status, 'ok', 'previous key unset: the resealed pending enrolment confirms') FROM l2, e2,
       secpolicy.totp_confirm(l2.challenge_token, pg_temp.code(e2.secret)) r;
SELECT is(pg_temp.leaks(txt, raw), '{}'::text[], 'after the rotation: still nothing in clear') FROM needles;
SELECT set_config('secpolicy.key_file', pg_temp.get('key_a'), true) IS NOT NULL AS ok \gset
UPDATE secpolicy.totp_credentials SET last_used_step = pg_temp.step(-5) WHERE user_id = pg_temp.uid('regress_seal');
SELECT throws_ok(format('SELECT * FROM secpolicy.verify_mfa(%L, %L)', pg_temp.challenge('regress_seal'), pg_temp.code(e1.secret)),
                 '55000', NULL, 'only the old key A configured after resealing: verify_mfa raises 55000') FROM e1;
SELECT throws_ok('SELECT secpolicy.reseal_secrets()', '55000', NULL,
                 'and reseal_secrets cannot go back without key B as the previous key');
SELECT set_config('secpolicy.previous_key_file', pg_temp.get('file.key_b'), true) IS NOT NULL AS ok \gset
SELECT is(secpolicy.reseal_secrets(), 2, 'rotating back (A current, B previous) reseals both rows');
SELECT is(r.status, 'ok', 'and verify_mfa works under key A again') FROM e1,
       secpolicy.verify_mfa(pg_temp.challenge('regress_seal'), pg_temp.code(e1.secret)) r;
RESET secpolicy.key_file;
SET LOCAL secpolicy.previous_key_file = '';

-- ----------------------------------------------------------- privileges -----
SELECT ok(NOT has_table_privilege(r, 'secpolicy.totp_credentials', 'SELECT')
          AND NOT has_table_privilege(r, 'secpolicy.recovery_codes', 'SELECT')
          AND NOT has_table_privilege(r, 'secpolicy.mfa_challenges', 'SELECT')
          AND NOT has_column_privilege(r, 'secpolicy.totp_credentials', 'sealed_secret', 'SELECT'),
          r || ' cannot read sealed secrets, recovery code digests or challenges')
  FROM unnest(ARRAY['secpolicy_app', 'secpolicy_analyst', 'public']) r ORDER BY r;
SELECT ok(NOT has_table_privilege(r, 'secpolicy.totp_credentials', 'UPDATE')
          AND NOT has_table_privilege(r, 'secpolicy.totp_credentials', 'INSERT')
          AND NOT has_table_privilege(r, 'secpolicy.recovery_codes', 'INSERT'),
          r || ' cannot write them')
  FROM unnest(ARRAY['secpolicy_app', 'secpolicy_admin', 'secpolicy_analyst']) r ORDER BY r;
SELECT is(array_agg(f ORDER BY f), NULL,
          'no group role may execute the internal functions totp_new_secret, totp_verify_sealed, reseal, recovery_code')
  FROM unnest(ARRAY['secpolicy_app', 'secpolicy_admin', 'secpolicy_analyst', 'public']) r,
       unnest(ARRAY['secpolicy.totp_new_secret()',
                    'secpolicy.totp_verify_sealed(bytea, text, timestamptz, bigint, integer, integer, integer, text)',
                    'secpolicy.reseal(bytea)', 'secpolicy.recovery_code()']) f
 WHERE has_function_privilege(r, f, 'EXECUTE');
SELECT ok(has_function_privilege('secpolicy_admin', 'secpolicy.reseal_secrets()', 'EXECUTE')
          AND has_function_privilege('secpolicy_admin', 'secpolicy.key_status()', 'EXECUTE')
          AND has_function_privilege('secpolicy_admin', 'secpolicy.reset_mfa(text, text)', 'EXECUTE'),
          'secpolicy_admin may execute reseal_secrets, key_status and reset_mfa');
SELECT ok(NOT has_function_privilege('secpolicy_app', 'secpolicy.reseal_secrets()', 'EXECUTE')
          AND NOT has_function_privilege('secpolicy_app', 'secpolicy.key_status()', 'EXECUTE')
          AND NOT has_function_privilege('secpolicy_app', 'secpolicy.reset_mfa(text, text)', 'EXECUTE')
          AND NOT has_function_privilege('secpolicy_app', 'secpolicy.sealed_key_id(bytea)', 'EXECUTE'),
          'secpolicy_app may not');
-- the key settings: superuser only, even for secpolicy_admin
SET LOCAL ROLE secpolicy_admin;
DO $$
BEGIN
    BEGIN
        PERFORM current_setting('secpolicy.key_file');
        PERFORM pg_temp.put('admin_read', 'readable');
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_temp.put('admin_read', SQLSTATE);
    END;
    BEGIN
        PERFORM set_config('secpolicy.key_file', '/tmp/attacker_key', true);
        PERFORM pg_temp.put('admin_set', 'settable');
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_temp.put('admin_set', SQLSTATE);
    END;
    BEGIN
        PERFORM key_id FROM secpolicy.key_status();
        PERFORM pg_temp.put('admin_status', 'ok');
    EXCEPTION WHEN OTHERS THEN
        PERFORM pg_temp.put('admin_status', SQLSTATE);
    END;
END $$;
RESET ROLE;
SELECT is(pg_temp.get('admin_read'), '42501', 'secpolicy_admin cannot read secpolicy.key_file');
SELECT is(pg_temp.get('admin_set'), '42501', 'secpolicy_admin cannot set secpolicy.key_file');
SELECT is(pg_temp.get('admin_status'), 'ok', 'secpolicy_admin can call key_status() (ids only)');

-- ----------------------------------------------- known bugs (keep last) -----
-- A key file with 64 hex characters, 8 blanks and then anything else is
-- accepted: load_key reads only 72 bytes.
SELECT is(pg_temp.status_with_key('trailing'), 'F0000', '64 hex characters followed by garbage: F0000');
SELECT lives_ok($$SELECT set_config('secpolicy.key_file', pg_temp.get('key_a'), true)$$, 'back to the real key');
-- The key-file error says what is wrong (as raised; what a client finally
-- sees is checked in test/scenarios/key_rotation.sh).
DO $$
BEGIN
    PERFORM set_config('secpolicy.key_file', pg_temp.get('file.copy644'), true);
    PERFORM secpolicy.key_status();
EXCEPTION WHEN OTHERS THEN
    PERFORM pg_temp.put('perm_msg', SQLERRM);
END $$;
SELECT matches(pg_temp.get('perm_msg'), 'accessible to group or others',
               'the F0000 error, as raised, says the key file is accessible to group or others');
RESET secpolicy.key_file;

-- remove the key files (COPY TO PROGRAM is not transactional)
SELECT lives_ok(format('COPY (SELECT 1) TO PROGRAM %L',
                       'cat >/dev/null; rm -f ' || string_agg(v, ' ')), 'key files removed')
  FROM kv WHERE k LIKE 'file.%';

SELECT * FROM finish();
ROLLBACK;
