-- SQL-level fuzzer of secpolicy: the runner and the generators.
--
-- Installed by scripts/fuzz into each database it fuzzes (schema fuzz, next
-- to the extension), followed by test/fuzz/targets.sql (what is fuzzed, with
-- which generators, and which SQLSTATEs and statuses each target documents)
-- and test/fuzz/known.sql (findings being fixed).  fuzz.setup() makes the
-- accounts the generators know; fuzz.refresh(), every 64 cases, puts them
-- and the policy back and renews the pools of live tokens and secrets.
--
-- One case is one top-level statement, SELECT fuzz.one(seed, i), so that each
-- runs in its own transaction (the flows are meant for autocommit) under its
-- own statement_timeout.  fuzz.one seeds PostgreSQL's random() from (seed, i),
-- picks a target, renders a call with generated arguments as SQL text (every
-- argument is an SQL expression: the statement that ran is its own
-- reproducer), runs it as the target's role inside an exception block, and
-- books the outcome: calls per target and SQLSTATE, and findings (an
-- undocumented SQLSTATE or status, a hang, a slow call, a generator bug),
-- each with its statement after the policy settings it ran under.
-- A crash shows as a lost connection, which scripts/fuzz detects; with
-- fuzz.trace on, each statement is sent to the client as a NOTICE before it
-- runs, so the last one names the crashing statement.
--
-- Settings read (SET by scripts/fuzz): fuzz.trace (on/off), fuzz.heavy
-- (on: argon2 costs up to the 1 GiB / 16 passes bound, values of 256 MB and
-- more), fuzz.slow_ms (a case slower than this is reported as slow).
--
-- Generators return SQL expressions built from built-in functions only
-- (literals, repeat(), convert_from(), decode()), so that a reproducer runs
-- in a database with nothing but the extension.  Text that is not printable
-- ASCII is written as its bytes in the database encoding:
-- convert_from('\x..', 'SQL_ASCII') carries invalid UTF-8 into a SQL_ASCII
-- database.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS fuzz CASCADE;
RESET client_min_messages;
CREATE SCHEMA fuzz;
REVOKE ALL ON SCHEMA fuzz FROM PUBLIC;

-- ------------------------------------------------------------ tables -----

-- What is fuzzed (filled by targets.sql).  A target is a function call
-- (fn: secpolicy.name; args: 'generator:type' per argument) or a statement
-- template (format() with one %N$s per argument).  covers: the function
-- (name(argument types)) it exercises: every C function of schema secpolicy
-- must be covered (fuzz.check_targets).  sqlstates: the ones the
-- documentation gives for it; proposed: ones it raises for a reason the
-- documentation does not give yet (not a failure, listed in the summary).
-- result: a query over the call (%s) whose text[] answer must lie within
-- statuses.
CREATE TABLE fuzz.targets (
    name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('c', 'flow', 'trigger', 'admin', 'policy', 'log')),
    covers text,                             -- NULL: no function of its own (policy, log, injected)
    fn text,
    args text[] NOT NULL DEFAULT '{}',
    template text,
    role text NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'app', 'admin')),
    sqlstates text[] NOT NULL DEFAULT '{}',
    proposed text[] NOT NULL DEFAULT '{}',
    result text,
    statuses text[],
    undo boolean NOT NULL DEFAULT false,    -- roll the statement back after it succeeded
    weight integer NOT NULL DEFAULT 10,
    documented text,                         -- where the documentation says so
    CHECK ((fn IS NULL) <> (template IS NULL))
);

-- Accounts the generators know the passwords and secrets of.
CREATE TABLE fuzz.accounts (
    uid bigint PRIMARY KEY,
    username text NOT NULL,
    password text NOT NULL,
    state text NOT NULL,                     -- normal, enrol, must_change, expired, disabled, reset
    enrolled boolean NOT NULL
);

-- Live values for the generators: tokens, secrets, hashes, sealed values.
CREATE TABLE fuzz.pool (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    val text NOT NULL,
    uid bigint,
    extra text
);
CREATE INDEX ON fuzz.pool (kind, id);

-- Calls per target and outcome, per run.
CREATE TABLE fuzz.stats (
    target text NOT NULL,
    outcome text NOT NULL,                   -- ok, or the SQLSTATE
    calls bigint NOT NULL DEFAULT 0,
    total_ms double precision NOT NULL DEFAULT 0,
    max_ms double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (target, outcome)
);

-- Findings, one row per distinct (target, category, SQLSTATE, message shape),
-- with the shortest statement that produced it.
CREATE TABLE fuzz.findings (
    id bigserial PRIMARY KEY,
    target text NOT NULL,
    category text NOT NULL,                  -- undocumented_sqlstate, undocumented_status, known, hang, slow,
                                             -- generator_error, proposed_sqlstate
    sqlstate text NOT NULL DEFAULT '',
    shape text NOT NULL,
    message text,
    statement text NOT NULL,
    seed bigint,
    case_no bigint,
    hits bigint NOT NULL DEFAULT 1,
    max_ms double precision,
    UNIQUE (target, category, sqlstate, shape)
);

-- Run state (key/value).
CREATE TABLE fuzz.state (k text PRIMARY KEY, v text);

-- Findings already known and being fixed (filled by test/fuzz/known.sql):
-- regular expressions on the target, the SQLSTATE and the message, and
-- optionally the database encoding.  They are reported, and fail no run.
CREATE TABLE fuzz.known (
    target text NOT NULL,
    sqlstate text NOT NULL,
    message text NOT NULL DEFAULT '',
    encoding text,
    why text NOT NULL
);

-- Scratch application tables guarded by password_policy_trigger: one as the
-- README shows it, one with the password column only, and misconfigured ones.
CREATE TABLE fuzz.legacy (id integer PRIMARY KEY, login text, password text, pw_history text[]);
CREATE TRIGGER legacy_password BEFORE INSERT OR UPDATE ON fuzz.legacy
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('password', 'login', 'pw_history');
-- A table with a protected (and searchable) column, for the protected-column targets.
CREATE TABLE fuzz.people (id integer PRIMARY KEY, email text, note text);
INSERT INTO fuzz.people SELECT g, 'person' || g || '@example.com', 'note ' || g FROM generate_series(1, 8) g;
SELECT secpolicy.protect_column('fuzz.people', 'email', 'fuzz.read', true) IS NOT NULL AS protected;
-- The admin targets read stored values from it (scripts/fuzz creates fuzz_admin).
GRANT USAGE ON SCHEMA fuzz TO fuzz_admin;
GRANT SELECT ON fuzz.people TO fuzz_admin;
CREATE TABLE fuzz.legacy_bare (id integer PRIMARY KEY, password varchar(200));
CREATE TRIGGER legacy_bare_password BEFORE INSERT OR UPDATE ON fuzz.legacy_bare
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('password');
CREATE TABLE fuzz.legacy_misconfigured (id integer PRIMARY KEY, login text, password varchar(64),
                                        history integer[], pw text, pw_history text[]);
CREATE TRIGGER a_no_arguments BEFORE INSERT ON fuzz.legacy_misconfigured
    FOR EACH ROW WHEN (NEW.id % 6 = 0) EXECUTE FUNCTION secpolicy.password_policy_trigger();
CREATE TRIGGER b_unknown_column BEFORE INSERT ON fuzz.legacy_misconfigured
    FOR EACH ROW WHEN (NEW.id % 6 = 1) EXECUTE FUNCTION secpolicy.password_policy_trigger('no_such_column');
CREATE TRIGGER c_narrow_column BEFORE INSERT ON fuzz.legacy_misconfigured
    FOR EACH ROW WHEN (NEW.id % 6 = 2) EXECUTE FUNCTION secpolicy.password_policy_trigger('password');
CREATE TRIGGER d_history_not_text BEFORE INSERT ON fuzz.legacy_misconfigured
    FOR EACH ROW WHEN (NEW.id % 6 = 3) EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'history');
CREATE TRIGGER e_after AFTER INSERT ON fuzz.legacy_misconfigured
    FOR EACH ROW WHEN (NEW.id % 6 = 4) EXECUTE FUNCTION secpolicy.password_policy_trigger('pw');
CREATE TRIGGER f_four_arguments BEFORE INSERT ON fuzz.legacy_misconfigured
    FOR EACH ROW WHEN (NEW.id % 6 = 5) EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'pw_history', 'x');

-- ------------------------------------------------------------ random -----

-- Seed random() for case i of run `seed`: a case's choices depend on (seed, i) only.
CREATE FUNCTION fuzz.seed_case(seed bigint, i bigint) RETURNS void LANGUAGE sql AS $f$
    SELECT setseed(hashtextextended(seed::text || ':' || i::text, 7)::float8 / 9223372036854775808.0);
$f$;
-- 0 .. k-1
CREATE FUNCTION fuzz.n(k integer) RETURNS integer LANGUAGE sql VOLATILE AS
$f$ SELECT floor(random() * greatest(k, 1))::integer $f$;
CREATE FUNCTION fuzz.chance(p double precision) RETURNS boolean LANGUAGE sql VOLATILE AS
$f$ SELECT random() < p $f$;
CREATE FUNCTION fuzz.pick(a anyarray) RETURNS anyelement LANGUAGE sql VOLATILE AS
$f$ SELECT a[array_lower(a, 1) + floor(random() * cardinality(a))::integer] $f$;
-- a length, usually small: 0 .. max with a bias to short values
CREATE FUNCTION fuzz.len(max integer) RETURNS integer LANGUAGE sql VOLATILE AS
$f$ SELECT floor(power(random(), 3) * (max + 1))::integer $f$;

CREATE FUNCTION fuzz.heavy() RETURNS boolean LANGUAGE sql STABLE AS
$f$ SELECT coalesce(current_setting('fuzz.heavy', true), 'off') = 'on' $f$;
CREATE FUNCTION fuzz.utf8() RETURNS boolean LANGUAGE sql STABLE AS
$f$ SELECT getdatabaseencoding() = 'UTF8' $f$;

-- ------------------------------------------------- rendering values -----

-- An SQL expression for a text value: a literal when it is printable ASCII,
-- else its bytes in the database encoding.
CREATE FUNCTION fuzz.lit(v text) RETURNS text LANGUAGE sql STABLE AS $f$
    SELECT CASE
        WHEN v IS NULL THEN 'NULL'
        WHEN octet_length(v) = length(v) AND v !~ '[^ -~]' THEN quote_literal(v)
        ELSE format('convert_from(%L, %L)', '\x' || encode(convert_to(v, getdatabaseencoding()), 'hex'),
                    getdatabaseencoding())
    END;
$f$;
CREATE FUNCTION fuzz.bytes(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT CASE WHEN b IS NULL THEN 'NULL' ELSE format('%L::bytea', '\x' || encode(b, 'hex')) END;
$f$;
-- The text with these bytes (in the database encoding; the caller makes them valid in it).
CREATE FUNCTION fuzz.from_bytes(b bytea) RETURNS text LANGUAGE sql STABLE AS
$f$ SELECT convert_from(b, getdatabaseencoding()) $f$;

-- ------------------------------------------------------- characters -----

-- Characters that NFKC expands or changes, long, and combining marks of
-- several classes (the canonical reordering of a long run is quadratic).
CREATE FUNCTION fuzz.nfkc_chars() RETURNS integer[] LANGUAGE sql IMMUTABLE AS $f$
    SELECT ARRAY[x'FDFA', x'FDFB', x'3392', x'33FF', x'FB03', x'FB01', x'2177', x'3250', x'32CC',
                 x'1F19C', x'FF21', x'FF41', x'FF10', x'FF19', x'00BD', x'2474', x'1D7CE', x'0660',
                 x'0669', x'2460', x'33C6', x'FE35', x'3000', x'00A0', x'AC00', x'1100', x'1161',
                 x'11A8', x'212B', x'2126', x'1E9B', x'0344', x'0F77', x'FDFC', x'FE18']::integer[];
$f$;
CREATE FUNCTION fuzz.combining_chars() RETURNS integer[] LANGUAGE sql IMMUTABLE AS $f$
    SELECT ARRAY[x'0301', x'0316', x'0334', x'05B0', x'0345', x'0F71', x'0F72', x'093C', x'1DFD',
                 x'20D2', x'302A', x'0E38', x'0F74', x'1D165', x'1D16D', x'0323', x'0358']::integer[];
$f$;

-- One random character (as text) of a class, valid in the database encoding.
-- Classes: ascii, digit, base32, control, high (any non-ASCII the encoding has),
-- nfkc, combining, space (Unicode spaces).
CREATE FUNCTION fuzz.rand_char(class text) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    cp integer;
BEGIN
    CASE class
    WHEN 'ascii' THEN RETURN chr(32 + fuzz.n(95));
    WHEN 'digit' THEN RETURN chr(48 + fuzz.n(10));
    WHEN 'base32' THEN RETURN substr('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcdefghijklmnopqrstuvwxyz', 1 + fuzz.n(58), 1);
    WHEN 'control' THEN RETURN chr(fuzz.pick(ARRAY[1, 7, 8, 9, 10, 11, 12, 13, 27, 31, 127]));
    ELSE
        IF getdatabaseencoding() = 'UTF8' THEN
            IF class = 'nfkc' THEN
                RETURN chr(fuzz.pick(fuzz.nfkc_chars()));
            ELSIF class = 'combining' THEN
                RETURN chr(fuzz.pick(fuzz.combining_chars()));
            ELSIF class = 'space' THEN
                RETURN chr(fuzz.pick(ARRAY[x'00A0', x'2000', x'2003', x'200B', x'2028', x'2029', x'3000',
                                           x'FEFF', x'180E', x'202F']::integer[]));
            END IF;
            cp := fuzz.pick(ARRAY[
                128 + fuzz.n(128), 256 + fuzz.n(512), x'0370'::integer + fuzz.n(400),
                x'0600'::integer + fuzz.n(256), x'0900'::integer + fuzz.n(128), x'3040'::integer + fuzz.n(96),
                x'4E00'::integer + fuzz.n(20000), x'AC00'::integer + fuzz.n(11172), x'E000'::integer + fuzz.n(6400),
                x'FF01'::integer + fuzz.n(94), x'1F300'::integer + fuzz.n(768), x'1D400'::integer + fuzz.n(1024),
                x'10000'::integer + fuzz.n(4096), x'FFFE'::integer, x'FFFF'::integer, x'10FFFF'::integer,
                x'2028'::integer, x'0300'::integer + fuzz.n(112)]);
            IF cp BETWEEN x'D800'::integer AND x'DFFF'::integer THEN
                cp := x'FFFD'::integer;
            END IF;
            RETURN chr(cp);
        ELSIF getdatabaseencoding() IN ('SQL_ASCII', 'LATIN1') THEN
            RETURN fuzz.from_bytes(set_byte('\x00'::bytea, 0, 128 + fuzz.n(128)));
        ELSE
            RETURN chr(32 + fuzz.n(95));
        END IF;
    END CASE;
END
$f$;

-- Bytes that are not valid UTF-8 (only a SQL_ASCII database can hold them).
CREATE FUNCTION fuzz.invalid_utf8() RETURNS text LANGUAGE sql VOLATILE AS $f$
    SELECT fuzz.from_bytes(decode(fuzz.pick(ARRAY['ff', 'fe', '80', 'bf', 'c080', 'c1bf', 'e282', 'eda080',
                                                   'edbfbf', 'f4908080', 'f8888080', 'fc8080808080', 'c3', 'e0808f',
                                                   'f08f8080', 'c328', 'a0a1', 'e28228', 'f0288cbc']), 'hex'));
$f$;

-- A random string of up to maxlen characters in one "alphabet".
CREATE FUNCTION fuzz.rand_text(maxlen integer, alphabet text DEFAULT NULL) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    a text := coalesce(alphabet, fuzz.pick(ARRAY['ascii', 'ascii', 'digit', 'base32', 'high', 'mixed', 'nfkc',
                                                 'combining', 'control', 'space', 'invalid']));
    n integer := fuzz.len(maxlen);
    out text := '';
BEGIN
    FOR k IN 1 .. n LOOP
        IF a = 'mixed' THEN
            out := out || fuzz.rand_char(fuzz.pick(ARRAY['ascii', 'high', 'nfkc', 'combining', 'digit', 'control']));
        ELSIF a = 'invalid' THEN
            IF getdatabaseencoding() = 'SQL_ASCII' AND fuzz.chance(0.3) THEN
                out := out || fuzz.invalid_utf8();
            ELSE
                out := out || fuzz.rand_char('high');
            END IF;
        ELSE
            out := out || fuzz.rand_char(a);
        END IF;
    END LOOP;
    RETURN out;
END
$f$;

-- An expression for a text of exactly `len` bytes (close to it for
-- multi-byte units), repeating a unit: the edge lengths around the bounds.
CREATE FUNCTION fuzz.sized(len bigint, unit text DEFAULT NULL) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    u text := coalesce(unit, fuzz.pick(ARRAY['a', '1', ' ', 'Aa1!', fuzz.rand_char('ascii'),
                                             fuzz.rand_char('high'), fuzz.rand_char('nfkc'),
                                             fuzz.rand_char('combining'), fuzz.rand_char('digit')]));
    b integer := octet_length(u);
    k bigint := len / b;
    r bigint := len - k * b;
BEGIN
    IF len = 0 THEN
        RETURN '''''';
    END IF;
    RETURN format('repeat(%s, %s)', fuzz.lit(u), k) || CASE WHEN r > 0 THEN format(' || repeat(''a'', %s)', r) ELSE '' END;
END
$f$;

-- An edge length: 0, 1, around 255, 1024, 4096 (the bounds in the code),
-- 1 MB; tens of MB now and then; 256 MB and more (beyond what a pg_wchar
-- conversion can allocate) only when heavy.
CREATE FUNCTION fuzz.edge_len() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    IF fuzz.chance(0.9) THEN
        RETURN fuzz.pick(ARRAY[0, 1, 2, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 43, 46, 47, 48, 63, 64, 65,
                               127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 4095, 4096,
                               4097, 8191, 8192, 8193, 65536]);
    ELSIF fuzz.chance(0.85) THEN
        RETURN fuzz.pick(ARRAY[1048575, 1048576, 1048577]);
    ELSIF NOT fuzz.heavy() OR fuzz.chance(0.8) THEN
        RETURN fuzz.pick(ARRAY[16777216, 33554432]);
    ELSE
        RETURN fuzz.pick(ARRAY[268435457, 300000000]);
    END IF;
END
$f$;

-- --------------------------------------------------------- context -----

-- The account the last generator of a case picked (a password or code
-- generator that follows picks that account's).
CREATE FUNCTION fuzz.ctx_set(uid bigint) RETURNS void LANGUAGE sql AS
$f$ SELECT set_config('fuzz.ctx_uid', coalesce(uid::text, ''), true) $f$;
CREATE FUNCTION fuzz.ctx() RETURNS bigint LANGUAGE sql STABLE AS
$f$ SELECT nullif(current_setting('fuzz.ctx_uid', true), '')::bigint $f$;

-- A pool row of a kind (random), or NULL.
CREATE FUNCTION fuzz.pool_pick(k text) RETURNS fuzz.pool LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    n integer := (SELECT count(*) FROM fuzz.pool WHERE kind = k);
    r fuzz.pool;
BEGIN
    SELECT * INTO r FROM fuzz.pool WHERE kind = k ORDER BY id OFFSET fuzz.n(n) LIMIT 1;
    RETURN r;
END
$f$;

-- ------------------------------------------------------- generators -----

-- A PHC string: well-formed argon2id, with parameters at and beyond the
-- bounds (m <= 1 GiB, t <= 16, p <= 16), truncated, with bad base64, other
-- algorithms.  Costs that make libsodium work hard (beyond 64 MiB x 2
-- passes) are kept only when heavy, and then in one PHC string of twenty
-- (a 1 GiB, 16-pass verification takes tens of seconds).
CREATE FUNCTION fuzz.gen_phc() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    m text := fuzz.pick(ARRAY['8', '8', '16', '64', '256', '1024', '4096', '65536', '1048576', '1048577', '7', '0',
                              '4294967295', '4294967296', '100000000', '100000001', '99999999999', '', '-8',
                              '+8', '08', ' 8', '18446744073709551617']);
    t text := fuzz.pick(ARRAY['1', '1', '2', '3', '16', '17', '0', '4294967296', '', '-1', '01', '100000001']);
    p text := fuzz.pick(ARRAY['1', '1', '2', '4', '16', '17', '0', '255', '', '-1', '16777215']);
    v text := fuzz.pick(ARRAY['19', '19', '19', '19', '16', '20', '', '19x', '0019']);
    alg text := fuzz.pick(ARRAY['$argon2id$', '$argon2id$', '$argon2id$', '$argon2id$', '$argon2i$',
                                '$argon2d$', '$ARGON2ID$', '$argon2id', 'argon2id$', '$scrypt$', '$2b$']);
    salt text := rtrim(encode(decode(md5(random()::text), 'hex'), 'base64'), '=');
    hash text := rtrim(encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'), '=');
    mi numeric;
    ti numeric;
    s text;
BEGIN
    IF fuzz.chance(0.25) THEN
        -- a real hash (of a known account or the dummy), often mutated below
        s := (fuzz.pool_pick('hash')).val;
    ELSIF fuzz.chance(0.4) THEN
        -- well-formed, at a cost of its own: libsodium computes it
        alg := '$argon2id$';
        v := '19';
        p := fuzz.pick(ARRAY['1', '1', '2', '4', '16']);
        m := fuzz.pick(ARRAY['8', '64', '1024', '8192', '65536', '262144', '1048576']);
        t := fuzz.pick(ARRAY['1', '1', '2', '3', '8', '16']);
    END IF;
    IF s IS NULL THEN
        -- bound the work: only heavy runs verify at more than 64 MiB x 2 passes
        IF m ~ '^[0-9]+$' AND t ~ '^[0-9]+$' AND length(m) < 12 AND length(t) < 12 THEN
            mi := m::numeric;
            ti := t::numeric;
            IF mi BETWEEN 8 AND 1048576 AND ti BETWEEN 1 AND 16 AND mi * ti > 131072
               AND NOT (fuzz.heavy() AND fuzz.chance(0.05)) THEN
                m := fuzz.pick(ARRAY['8', '64', '1024', '65536']);
                t := fuzz.pick(ARRAY['1', '2']);
            END IF;
        END IF;
        IF fuzz.chance(0.1) THEN
            salt := fuzz.pick(ARRAY['', 'AA', 'c2FsdA', salt || '==', replace(salt, 'A', '!'), replace(salt, 'A', '-'),
                                    repeat('A', 86), fuzz.rand_text(30)]);
        END IF;
        IF fuzz.chance(0.1) THEN
            hash := fuzz.pick(ARRAY['', 'AA', hash || '=', replace(hash, 'B', '_'), repeat('B', 80), left(hash, 10),
                                    fuzz.rand_text(60)]);
        END IF;
        s := alg || 'v=' || v || '$m=' || m || ',t=' || t || ',p=' || p || '$' || salt || '$' || hash;
    END IF;
    -- mutations
    CASE fuzz.n(12)
    WHEN 0 THEN s := left(s, fuzz.n(length(s) + 1));                           -- truncated
    WHEN 1 THEN s := s || fuzz.pick(ARRAY['$', '$$', ',x=1', ' ', chr(10), 'A', repeat('A', 60)]);
    WHEN 2 THEN s := overlay(s placing fuzz.rand_char('ascii') from 1 + fuzz.n(length(s)) for 1);
    WHEN 3 THEN s := overlay(s placing fuzz.rand_text(3) from 1 + fuzz.n(length(s)) for 1);
    WHEN 4 THEN s := rpad(s, fuzz.pick(ARRAY[126, 127, 128, 129, 200]), 'A');  -- around crypto_pwhash_STRBYTES
    WHEN 5 THEN s := replace(s, ',', fuzz.pick(ARRAY[';', ',,', '', ' ,']));
    ELSE NULL;
    END CASE;
    RETURN fuzz.lit(s);
END
$f$;

-- A password: a known account's (as typed or in another Unicode spelling),
-- strong random ones, weak and blocklisted ones, edge lengths, NFKC
-- expansions around the 4096-byte bound, combining runs, invalid UTF-8.
CREATE FUNCTION fuzz.gen_password() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    a fuzz.accounts;
    k integer;
BEGIN
    IF fuzz.chance(0.04) THEN
        RETURN 'NULL';
    END IF;
    SELECT * INTO a FROM fuzz.accounts WHERE uid = fuzz.ctx();
    IF a.uid IS NOT NULL AND fuzz.chance(0.45) THEN
        IF fuzz.utf8() AND fuzz.chance(0.15) THEN
            -- the full-width spelling of the ASCII characters: the same password in NFKC
            RETURN fuzz.lit(translate(a.password,
                '!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~',
                '！＃＄％＆（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［］＾＿ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～'));
        END IF;
        RETURN fuzz.lit(a.password);
    END IF;
    CASE fuzz.n(14)
    WHEN 0, 1 THEN RETURN fuzz.lit('Fz-' || substr(md5(random()::text), 1, 12) || '-Q7!');   -- strong
    WHEN 2 THEN RETURN fuzz.lit(fuzz.pick(ARRAY['', ' ', 'password', 'Password123!', 'Tr0ub4dor&3', '123456',
                                                 'P@ssw0rd2024!', 'qwertyuiopASDF1!', 'Summer2024!!']));
    WHEN 3, 4 THEN RETURN fuzz.lit(fuzz.rand_text(40));
    WHEN 5 THEN RETURN fuzz.sized(fuzz.edge_len());
    WHEN 6 THEN
        -- U+FDFA expands to 33 bytes: 124 of them are 4092 bytes in NFKC, 125 are 4125
        IF fuzz.utf8() THEN
            k := fuzz.pick(ARRAY[1, 30, 123, 124, 125, 126, 200, 341, 342, 1400]);
            RETURN format('''Aa1!'' || repeat(%s, %s)', fuzz.lit(chr(x'FDFA'::integer)), k);
        END IF;
        RETURN fuzz.lit(fuzz.rand_text(20, 'high'));
    WHEN 7 THEN
        -- a long run of combining marks of mixed classes on one base
        IF fuzz.utf8() THEN
            RETURN format('''Xx9!a'' || repeat(%s, %s)',
                          fuzz.lit(fuzz.rand_char('combining') || fuzz.rand_char('combining') || fuzz.rand_char('combining')),
                          fuzz.pick(ARRAY[10, 100, 170, 171, 341, 500, 1400]));
        END IF;
        RETURN fuzz.lit(fuzz.rand_text(20, 'control'));
    WHEN 8 THEN RETURN fuzz.lit('Aa1!' || fuzz.rand_text(16, 'nfkc'));
    WHEN 9 THEN RETURN fuzz.lit('Aa1!' || fuzz.rand_text(30, 'invalid'));
    WHEN 10 THEN RETURN fuzz.gen_phc();                                          -- a hash as a "password"
    WHEN 11 THEN RETURN fuzz.lit(coalesce((SELECT x.username FROM fuzz.accounts x ORDER BY uid OFFSET fuzz.n(12) LIMIT 1), 'x') || 'Aa1!');
    ELSE RETURN fuzz.lit(fuzz.rand_text(12, 'mixed') || 'Aa1!');
    END CASE;
END
$f$;

-- A username: the fuzz accounts (also in other cases), fixed strange names
-- used over and over (so that their failure counters reach the limit),
-- random ones, edge lengths, invalid UTF-8.
CREATE FUNCTION fuzz.gen_username() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    a fuzz.accounts;
BEGIN
    PERFORM fuzz.ctx_set(NULL);
    IF fuzz.chance(0.04) THEN
        RETURN 'NULL';
    END IF;
    IF fuzz.chance(0.5) THEN
        SELECT * INTO a FROM fuzz.accounts ORDER BY uid OFFSET fuzz.n((SELECT count(*)::integer FROM fuzz.accounts)) LIMIT 1;
        IF a.uid IS NOT NULL THEN
            PERFORM fuzz.ctx_set(a.uid);
            RETURN fuzz.lit(CASE fuzz.n(4) WHEN 0 THEN upper(a.username) WHEN 1 THEN initcap(a.username)
                                           ELSE a.username END);
        END IF;
    END IF;
    IF fuzz.chance(0.5) THEN
        RETURN fuzz.lit((fuzz.pool_pick('name')).val);
    END IF;
    CASE fuzz.n(5)
    WHEN 0 THEN RETURN fuzz.sized(fuzz.edge_len());
    WHEN 1 THEN RETURN fuzz.lit('');
    ELSE RETURN fuzz.lit(fuzz.rand_text(40));
    END CASE;
END
$f$;

-- A token: live session, challenge and reset tokens (as they are, one
-- character changed, cut, extended), the right prefixes with wrong bodies,
-- lengths around the 128-character bound, junk.
CREATE FUNCTION fuzz.gen_token(kinds text[] DEFAULT ARRAY['session', 'verify', 'enroll', 'reset']) RETURNS text
    LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    p fuzz.pool;
    t text;
BEGIN
    PERFORM fuzz.ctx_set(NULL);
    IF fuzz.chance(0.04) THEN
        RETURN 'NULL';
    END IF;
    IF fuzz.chance(0.6) THEN
        p := fuzz.pool_pick(fuzz.pick(kinds));
        IF p.id IS NULL THEN
            p := fuzz.pool_pick(fuzz.pick(ARRAY['session', 'verify', 'enroll', 'reset']));
        END IF;
        t := p.val;
        PERFORM fuzz.ctx_set(p.uid);
        IF t IS NOT NULL AND fuzz.chance(0.35) THEN
            CASE fuzz.n(6)
            WHEN 0 THEN t := overlay(t placing fuzz.rand_char('base32') from 5 + fuzz.n(length(t) - 4) for 1);
            WHEN 1 THEN t := left(t, fuzz.n(length(t)));
            WHEN 2 THEN t := t || fuzz.pick(ARRAY[' ', '=', 'A', chr(10), repeat('A', 81), repeat('A', 82)]);
            WHEN 3 THEN t := upper(t);
            WHEN 4 THEN t := ' ' || t;
            ELSE t := fuzz.pick(ARRAY['sps', 'spc', 'spr', 'xxx']) || substr(t, 4);
            END CASE;
        END IF;
        IF t IS NOT NULL THEN
            RETURN fuzz.lit(t);
        END IF;
    END IF;
    CASE fuzz.n(6)
    WHEN 0, 1 THEN
        RETURN fuzz.lit(fuzz.pick(ARRAY['sps_', 'spc_', 'spr_', 'sps', 'SPS_', '']) ||
                        rtrim(translate(encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'),
                                        '+/', '-_'), '='));
    WHEN 2 THEN RETURN fuzz.lit(fuzz.pick(ARRAY['sps_', 'spc_', 'spr_']) || repeat('A', fuzz.pick(ARRAY[0, 42, 43, 44, 123, 124, 125])));
    WHEN 3 THEN RETURN fuzz.sized(fuzz.edge_len());
    ELSE RETURN fuzz.lit(fuzz.pick(ARRAY['sps_', 'spc_', 'spr_', '']) || fuzz.rand_text(50));
    END CASE;
END
$f$;

-- A base32 TOTP secret: valid (lengths 1 .. 200 characters, lower case,
-- spaces, padding), the pool's, invalid characters, empty, all spaces,
-- beyond 128 bytes, huge.
CREATE FUNCTION fuzz.gen_secret() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    s text;
BEGIN
    IF fuzz.chance(0.03) THEN
        RETURN 'NULL';
    END IF;
    CASE fuzz.n(10)
    WHEN 0, 1, 2 THEN
        s := (fuzz.pool_pick('secret')).val;
        RETURN fuzz.lit(coalesce(s, 'JBSWY3DPEHPK3PXP'));
    WHEN 3, 4 THEN
        s := fuzz.rand_text(fuzz.pick(ARRAY[8, 32, 64, 200, 206, 220]), 'base32');
        IF fuzz.chance(0.2) THEN
            s := s || repeat('=', fuzz.n(8));
        END IF;
        IF fuzz.chance(0.2) AND length(s) > 2 THEN
            s := overlay(s placing ' ' from 1 + fuzz.n(length(s)) for 0);
        END IF;
        RETURN fuzz.lit(s);
    WHEN 5 THEN RETURN fuzz.lit(fuzz.pick(ARRAY['', ' ', '    ', '=', '========', 'A', 'AA', 'AAA', 'AAAAAAAA',
                                                 'JBSWY3DPEHPK3PX', 'JBSWY3DPEHPK3PX1', '0O1l8',
                                                 repeat('A', 204), repeat('A', 205), repeat('A', 206), repeat('A', 208),
                                                 repeat('7', 206), repeat(' ', 300) || 'AA']));
    WHEN 6 THEN RETURN fuzz.sized(fuzz.edge_len(), fuzz.pick(ARRAY['A', '7', ' ', 'A=', 'a', '1']));
    WHEN 7 THEN RETURN fuzz.lit(fuzz.rand_text(16, 'base32') || fuzz.rand_char(fuzz.pick(ARRAY['ascii', 'high', 'control'])) || fuzz.rand_text(16, 'base32'));
    ELSE RETURN fuzz.lit(fuzz.rand_text(40));
    END CASE;
END
$f$;

-- A second-factor code: the current TOTP code of the picked account's
-- secret (or a neighbour step), recovery codes, full-width and other
-- Unicode digits, spaces and hyphens, wrong lengths, huge.
CREATE FUNCTION fuzz.gen_code() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    p fuzz.pool;
    c text;
BEGIN
    IF fuzz.chance(0.04) THEN
        RETURN 'NULL';
    END IF;
    IF fuzz.chance(0.5) THEN
        SELECT * INTO p FROM fuzz.pool WHERE kind = 'secret' AND uid = fuzz.ctx() ORDER BY id DESC LIMIT 1;
        IF p.id IS NULL THEN
            p := fuzz.pool_pick('secret');
        END IF;
        IF p.id IS NOT NULL THEN
            c := secpolicy.totp_code(p.val, now() + make_interval(secs => 30 * fuzz.pick(ARRAY[0, 0, 0, -1, 1, -2, 2])));
            CASE fuzz.n(8)
            WHEN 0 THEN c := left(c, 3) || ' ' || right(c, 3);
            WHEN 1 THEN c := left(c, 3) || '-' || right(c, 3);
            WHEN 2 THEN IF fuzz.utf8() THEN c := translate(c, '0123456789', '０１２３４５６７８９'); END IF;
            WHEN 3 THEN IF fuzz.utf8() THEN c := translate(c, '0123456789', '٠١٢٣٤٥٦٧٨٩'); END IF;
            WHEN 4 THEN c := ' ' || c || chr(9);
            ELSE NULL;
            END CASE;
            RETURN fuzz.lit(c);
        END IF;
    END IF;
    CASE fuzz.n(8)
    WHEN 0 THEN
        c := (SELECT val FROM fuzz.pool WHERE kind = 'recovery' AND uid = fuzz.ctx() ORDER BY id DESC LIMIT 1);
        RETURN fuzz.lit(coalesce(CASE fuzz.n(3) WHEN 0 THEN upper(c) WHEN 1 THEN replace(c, '-', ' ') ELSE c END,
                                 (fuzz.pool_pick('recovery')).val, 'abcdef-ghijkl-mnopqr-stuvwx'));
    WHEN 1 THEN RETURN fuzz.lit(fuzz.rand_text(fuzz.pick(ARRAY[5, 6, 7, 8, 9]), 'digit'));
    WHEN 2 THEN RETURN fuzz.lit(fuzz.pick(ARRAY['', ' ', '-', '000000', '999999', '00000000', '0', '1234567',
                                                 '12345678', '123456789', '12 34 56', '12-34-56', '+12345', '-12345',
                                                 '1e5', '１２３４５６', '¹²³⁴⁵⁶', '①②③④⑤⑥', '𝟏𝟐𝟑𝟒𝟓𝟔']));
    WHEN 3 THEN RETURN fuzz.sized(fuzz.edge_len(), fuzz.pick(ARRAY['1', ' ', '-', '12', 'a', fuzz.rand_char('digit')]));
    WHEN 4 THEN RETURN fuzz.sized(fuzz.pick(ARRAY[256, 257, 258, 1024, 1048576]), fuzz.pick(ARRAY['１', fuzz.rand_char('nfkc'), fuzz.rand_char('space')]));
    ELSE RETURN fuzz.lit(fuzz.rand_text(30));
    END CASE;
END
$f$;

-- A time: now, the edges of TOTP's range (1970, infinities, the largest
-- timestamptz, 2038 and 2106 for 32-bit time), random ones.
CREATE FUNCTION fuzz.gen_time() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    CASE fuzz.n(5)
    WHEN 0, 1 THEN RETURN fuzz.pick(ARRAY['now()', 'now()', 'NULL', 'now() + interval ''30 seconds''']);
    WHEN 2 THEN RETURN fuzz.pick(ARRAY['''infinity''::timestamptz', '''-infinity''::timestamptz',
                                       '''1970-01-01 00:00:00+00''::timestamptz', '''1969-12-31 23:59:59.999999+00''::timestamptz',
                                       '''1970-01-01 00:00:00.000001+00''::timestamptz', '''0001-01-01 00:00:00+00''::timestamptz',
                                       '''4713-11-24 00:00:00+00 BC''::timestamptz', '''294276-12-31 23:59:59.999999+00''::timestamptz',
                                       '''294276-12-31 23:59:00+00''::timestamptz', '''2038-01-19 03:14:07+00''::timestamptz',
                                       '''2038-01-19 03:14:08+00''::timestamptz', '''2106-02-07 06:28:16+00''::timestamptz',
                                       '''9999-12-31 23:59:59+00''::timestamptz', '''100000-01-01 00:00:00+00''::timestamptz']);
    WHEN 3 THEN RETURN format('to_timestamp(%s)', (random() * 9.2e12)::bigint);
    ELSE RETURN format('to_timestamp(%s)', (random() * 4e9)::bigint);
    END CASE;
END
$f$;

-- Integers at the edges (the caller's list of interesting ones, and the type's).
CREATE FUNCTION fuzz.gen_int(interesting bigint[], big boolean DEFAULT false) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    IF fuzz.chance(0.03) THEN
        RETURN 'NULL';
    END IF;
    IF fuzz.chance(0.6) THEN
        RETURN fuzz.pick(interesting)::text;
    END IF;
    IF big THEN
        RETURN fuzz.pick(ARRAY['0', '-1', '1', '9223372036854775807', '(-9223372036854775807 - 1)', '2147483648',
                               '-2147483649', (random() * 1e18)::bigint::text, (-random() * 1e18)::bigint::text]);
    END IF;
    RETURN fuzz.pick(ARRAY['0', '-1', '1', '2147483647', '(-2147483647 - 1)', '65535', '65536', '-65536',
                           (random() * 2e9)::bigint::text, (-random() * 2e9)::bigint::text]);
END
$f$;

-- A TOTP algorithm name.
CREATE FUNCTION fuzz.gen_algorithm() RETURNS text LANGUAGE sql VOLATILE AS $f$
    SELECT CASE WHEN fuzz.chance(0.8) THEN fuzz.lit(fuzz.pick(ARRAY['sha1', 'sha1', 'sha256', 'sha512', 'SHA1', 'Sha256', 'SHA512']))
                ELSE fuzz.lit(fuzz.pick(ARRAY['', 'md5', 'sha3', 'sha1 ', 'sha-1', 'sha384', 'sha5120', 'sha', 'NULL']))
           END;
$f$;

-- A client address.
CREATE FUNCTION fuzz.gen_inet() RETURNS text LANGUAGE sql VOLATILE AS $f$
    SELECT fuzz.pick(ARRAY['NULL', '''203.0.113.7''::inet', '''::1''::inet', '''0.0.0.0''::inet', '''10.0.0.0/8''::inet',
                           '''ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff''::inet', '''::ffff:192.0.2.1''::inet',
                           format('''%s.%s.%s.%s''::inet', fuzz.n(256), fuzz.n(256), fuzz.n(256), fuzz.n(256))]);
$f$;

-- A sealed value: the pool's (as is, a byte flipped, cut, extended), the
-- version-1.0 length (68 bytes, no version byte), around the overhead
-- (49 bytes), another version byte, random bytes, huge.
CREATE FUNCTION fuzz.gen_sealed() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    b bytea;
    n integer;
BEGIN
    IF fuzz.chance(0.03) THEN
        RETURN 'NULL';
    END IF;
    IF fuzz.chance(0.6) THEN
        b := decode((fuzz.pool_pick('secret')).extra, 'hex');
    END IF;
    IF b IS NULL THEN
        n := fuzz.pick(ARRAY[0, 1, 8, 9, 33, 48, 49, 50, 67, 68, 69, 89, 200, 1000]);
        b := decode(left(repeat(md5(random()::text), n / 16 + 1), 2 * n), 'hex');
        IF n > 0 AND fuzz.chance(0.5) THEN
            b := set_byte(b, 0, 1);
        END IF;
        RETURN fuzz.bytes(b);
    END IF;
    CASE fuzz.n(8)
    WHEN 0 THEN b := set_byte(b, fuzz.n(length(b)), fuzz.n(256));
    WHEN 1 THEN b := substr(b, 1, fuzz.n(length(b)));
    WHEN 2 THEN b := b || decode(md5(random()::text), 'hex');
    WHEN 3 THEN b := set_byte(b, 0, fuzz.pick(ARRAY[0, 2, 255]));
    WHEN 4 THEN b := substr(b, 2);                                   -- drop the version byte
    WHEN 5 THEN RETURN format('decode(repeat(''01'', %s), ''hex'')', fuzz.pick(ARRAY[49, 68, 1048576, 16777216]));
    ELSE NULL;
    END CASE;
    RETURN fuzz.bytes(b);
END
$f$;

-- A key of the guess ledger.
CREATE FUNCTION fuzz.gen_ledger_key() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    CASE fuzz.n(5)
    WHEN 0 THEN RETURN fuzz.lit('u:' || coalesce((SELECT uid FROM fuzz.accounts ORDER BY uid OFFSET fuzz.n(12) LIMIT 1), 1));
    WHEN 1 THEN RETURN fuzz.lit('n:' || fuzz.rand_text(20));
    WHEN 2 THEN RETURN fuzz.lit('r:' || fuzz.n(1000));
    WHEN 3 THEN RETURN fuzz.sized(fuzz.edge_len());
    ELSE RETURN fuzz.lit(fuzz.rand_text(30));
    END CASE;
END
$f$;

-- A value written to a password column: plaintext (as gen_password) or a
-- PHC string.
CREATE FUNCTION fuzz.gen_pwvalue() RETURNS text LANGUAGE sql VOLATILE AS
$f$ SELECT CASE WHEN fuzz.chance(0.3) THEN fuzz.gen_phc() ELSE fuzz.gen_password() END $f$;

-- A text[] written by hand to a history column.
CREATE FUNCTION fuzz.gen_history() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    CASE fuzz.n(6)
    WHEN 0 THEN RETURN 'NULL';
    WHEN 1 THEN RETURN '''{}''::text[]';
    WHEN 2 THEN RETURN format('ARRAY[%s, NULL, %s]::text[]', fuzz.gen_phc(), fuzz.gen_phc());
    WHEN 3 THEN RETURN '''{{a,b},{c,d}}''::text[]';
    WHEN 4 THEN RETURN format('array_fill(%s::text, ARRAY[%s])', fuzz.gen_phc(), fuzz.pick(ARRAY[1, 30, 1000]));
    ELSE RETURN format('ARRAY[%s]::text[]', fuzz.gen_password());
    END CASE;
END
$f$;

-- The id of a known account (or another bigint).
CREATE FUNCTION fuzz.gen_uid() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    u bigint;
BEGIN
    IF fuzz.chance(0.8) THEN
        SELECT uid INTO u FROM fuzz.accounts ORDER BY uid OFFSET fuzz.n((SELECT count(*)::integer FROM fuzz.accounts)) LIMIT 1;
        PERFORM fuzz.ctx_set(u);
        RETURN coalesce(u::text, '1');
    END IF;
    PERFORM fuzz.ctx_set(NULL);
    RETURN fuzz.gen_int(ARRAY[0, -1, 999999], true);
END
$f$;

-- "column = value" for an UPDATE of secpolicy.policy: extreme values of its
-- settings (within and beyond their CHECK constraints).  Hash costs are
-- raised far only when heavy (the dummy hash is recomputed at once).
CREATE FUNCTION fuzz.gen_policy_assignment() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    col text := fuzz.pick(ARRAY['session_idle_timeout', 'session_max_lifetime', 'max_password_age',
                                'password_expiry_warning', 'reset_token_lifetime', 'mfa_challenge_lifetime',
                                'mfa_enrollment_lifetime', 'session_touch_interval', 'min_length', 'max_length',
                                'max_failed_attempts', 'history_depth', 'totp_window', 'totp_digits', 'totp_period',
                                'totp_algorithm', 'totp_issuer', 'recovery_code_count', 'max_sessions_per_user',
                                'require_mfa', 'hash_opslimit', 'hash_memlimit', 'check_blocklist', 'require_symbol',
                                'attempt_retention', 'pseudonymise_after', 'detection_window']);
BEGIN
    IF col IN ('session_idle_timeout', 'session_max_lifetime', 'max_password_age', 'password_expiry_warning',
               'reset_token_lifetime', 'mfa_challenge_lifetime', 'mfa_enrollment_lifetime', 'session_touch_interval',
               'attempt_retention', 'pseudonymise_after', 'detection_window') THEN
        RETURN format('%I = %L::interval', col,
                      fuzz.pick(ARRAY['1 microsecond', '1 second', '0', '-1 second', '1 minute', '15 minutes', '7 days',
                                      '100 years', '100000 years', '178000000 years', '2147483647 days',
                                      '2562047788 hours', '1 mon -29 days', '1 year -365 days 1 second', '1 day -86399 seconds']));
    ELSIF col IN ('min_length', 'max_length', 'max_failed_attempts', 'history_depth', 'totp_window', 'totp_digits',
                  'totp_period', 'recovery_code_count', 'max_sessions_per_user') THEN
        RETURN format('%I = %s', col, fuzz.pick(ARRAY['NULL', '0', '1', '2', '5', '6', '8', '10', '11', '15', '20', '24',
                                                       '25', '100', '101', '300', '1024', '1025', '2147483647', '-1']));
    ELSIF col = 'hash_opslimit' THEN
        RETURN format('hash_opslimit = %s', CASE WHEN fuzz.heavy() THEN fuzz.pick(ARRAY['1', '2', '16', '17', '0'])
                                                 ELSE fuzz.pick(ARRAY['1', '2', '17', '0']) END);
    ELSIF col = 'hash_memlimit' THEN
        RETURN format('hash_memlimit = %s', CASE WHEN fuzz.heavy() THEN fuzz.pick(ARRAY['8192', '8191', '1073741824', '1073741825'])
                                                 ELSE fuzz.pick(ARRAY['8192', '8191', '1048576', '1073741825']) END);
    ELSIF col IN ('totp_algorithm', 'totp_issuer') THEN
        RETURN format('%I = %s', col, CASE WHEN fuzz.chance(0.5) THEN fuzz.gen_algorithm() ELSE fuzz.lit(fuzz.rand_text(20)) END);
    ELSE
        RETURN format('%I = %s', col, fuzz.pick(ARRAY['true', 'false']));
    END IF;
END
$f$;

-- A top-level statement for the log redaction's tokenizer (run by
-- scripts/fuzz through psql's \gexec): calls of the extension's functions
-- written with every quoting and comment form, then mutated.  The words are
-- those of harmless statements only (no DDL but the password of a role
-- without login), and none opens a transaction: the next case would run in it.
CREATE FUNCTION fuzz.gen_statement_text() RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    lits text[] := ARRAY['''bob''', '''Pa''''ss''', 'E''a\''b''', '$$x$$', '$q$ $$ $q$', 'U&''d\0061t''', 'X''1F''',
                         'N''nat''', '''a''' || chr(10) || '''b''', '''unterminated', 'E''\\''', '$x$ no end',
                         '''' || repeat('x', 300) || '''', '/* c */ ''c''', '-- c' || chr(10) || '''d''', '$1', 'NULL'];
    names text[] := ARRAY['secpolicy.login', '"secpolicy"."login"', 'secpolicy . /* x */ login', 'login',
                          'secpolicy.verify_mfa', 'secpolicy.hash_password', 'SECPOLICY.LOGIN', '"login"',
                          'secpolicy.totp_match', 'secpolicy.session_touch', 'secpolicy.nosuch', 'pg_catalog.lower'];
    s text;
    cut integer;
BEGIN
    s := format(fuzz.pick(ARRAY[
        'SELECT * FROM %1$s(%2$s, %3$s)',
        'SELECT %1$s(%2$s, %3$s); SELECT 1',
        'SELECT 1; SELECT %1$s(%2$s, %3$s)',
        'EXPLAIN (COSTS OFF) SELECT %1$s(%2$s, %3$s)',
        'DO $d$ BEGIN PERFORM %1$s(%2$s, %3$s); END $d$',
        'DO LANGUAGE plpgsql $d$ DECLARE x text := %2$s; BEGIN PERFORM %1$s(x, %3$s); END $d$',
        'PREPARE fz%4$s(text, text) AS SELECT %1$s($1, $2)',
        'EXECUTE fz%4$s(%2$s, %3$s)',
        'EXECUTE/**/fz%4$s(%2$s, %3$s)',
        'DEALLOCATE fz%4$s',
        'SELECT /* %1$s( */ 1, %2$s',
        'SELECT %2$s AS "%1$s(", %3$s',
        'ALTER ROLE fuzz_nobody PASSWORD %2$s',
        'WITH x AS (SELECT %1$s(%2$s, %3$s)) SELECT 1',
        'SELECT (%1$s)(%2$s)',
        'SELECT %1$s(%2$s, %3$s',
        'SET secpolicy.redact_functions = %2$s',
        'SET secpolicy.redact_tables = %3$s',
        '/* /* nested */ %1$s( */ SELECT %2$s']),
        fuzz.pick(names), fuzz.pick(lits), fuzz.pick(lits), fuzz.n(5));
    -- mutate: insert or delete a character that matters to a tokenizer, or cut
    FOR k IN 1 .. fuzz.n(4) LOOP
        cut := 1 + fuzz.n(length(s));
        CASE fuzz.n(4)
        WHEN 0 THEN s := overlay(s placing fuzz.pick(ARRAY['''', '"', '$', ';', '(', ')', '/*', '*/', '--', chr(10),
                                                            '\', 'E''', '$$', '$a$', 'U&', ' ']) from cut for 0);
        WHEN 1 THEN s := overlay(s placing '' from cut for 1);
        WHEN 2 THEN s := left(s, cut);
        ELSE s := overlay(s placing fuzz.rand_text(4) from cut for 0);
        END CASE;
    END LOOP;
    RETURN s;
END
$f$;

-- The SQL expression generated for an argument kind.
CREATE FUNCTION fuzz.gen(kind text) RETURNS text LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
    CASE kind
    WHEN 'password' THEN RETURN fuzz.gen_password();
    WHEN 'username' THEN RETURN fuzz.gen_username();
    WHEN 'pwvalue' THEN RETURN fuzz.gen_pwvalue();
    WHEN 'phc' THEN RETURN fuzz.gen_phc();
    WHEN 'token' THEN RETURN fuzz.gen_token();
    WHEN 'session' THEN RETURN fuzz.gen_token(ARRAY['session', 'session', 'session', 'verify']);
    WHEN 'challenge' THEN RETURN fuzz.gen_token(ARRAY['verify', 'verify', 'verify', 'enroll', 'session']);
    WHEN 'enrolment' THEN RETURN fuzz.gen_token(ARRAY['enroll', 'enroll', 'session', 'verify']);
    WHEN 'reset' THEN RETURN fuzz.gen_token(ARRAY['reset', 'reset', 'reset', 'session']);
    WHEN 'secret' THEN RETURN fuzz.gen_secret();
    WHEN 'code' THEN RETURN fuzz.gen_code();
    WHEN 'time' THEN RETURN fuzz.gen_time();
    WHEN 'digits' THEN RETURN fuzz.gen_int(ARRAY[6, 6, 6, 7, 8, 5, 9, 0]);
    WHEN 'period' THEN RETURN fuzz.gen_int(ARRAY[30, 30, 30, 15, 60, 1, 3600, 3601, 0]);
    WHEN 'window' THEN RETURN fuzz.gen_int(ARRAY[1, 1, 0, 2, 10, 11]);
    WHEN 'step' THEN RETURN fuzz.gen_int(ARRAY[-1, -1, 0, 59000000, 100000000000], true);
    WHEN 'limit' THEN RETURN fuzz.gen_int(ARRAY[5, 5, 1, 0, 100]);
    WHEN 'count' THEN RETURN fuzz.gen_int(ARRAY[0, 0, 1, 4, 5, 6]);
    WHEN 'algorithm' THEN RETURN fuzz.gen_algorithm();
    WHEN 'inet' THEN RETURN fuzz.gen_inet();
    WHEN 'sealed' THEN RETURN fuzz.gen_sealed();
    WHEN 'uid' THEN RETURN fuzz.gen_uid();
    WHEN 'bigint' THEN RETURN fuzz.gen_int(ARRAY[0, 1, -1, 42], true);
    WHEN 'ledger_key' THEN RETURN fuzz.gen_ledger_key();
    WHEN 'mode' THEN RETURN fuzz.lit(fuzz.pick(ARRAY['plaintext', 'temporary', 'rehash', 'import', 'import', '', 'PLAINTEXT', 'x']));
    WHEN 'prefix' THEN RETURN fuzz.lit(fuzz.pick(ARRAY['sps', 'spc', 'spr', 'a', 'abcdefghijklmnop', 'abcdefghijklmnopq',
                                                       '', 'SPS', 'sp_s', 'sp s', fuzz.rand_text(8)]));
    WHEN 'label' THEN RETURN fuzz.lit(fuzz.rand_text(30));
    WHEN 'free' THEN RETURN CASE WHEN fuzz.chance(0.2) THEN fuzz.sized(fuzz.edge_len()) ELSE fuzz.lit(fuzz.rand_text(60)) END;
    WHEN 'bool' THEN RETURN fuzz.pick(ARRAY['true', 'false', 'NULL']);
    WHEN 'history' THEN RETURN fuzz.gen_history();
    WHEN 'row_id' THEN RETURN (1 + fuzz.n(8))::text;
    WHEN 'policy' THEN RETURN fuzz.gen_policy_assignment();
    WHEN 'reason' THEN RETURN fuzz.lit(fuzz.pick(ARRAY['fuzz', '', ' ', NULL]));
    WHEN 'ptable' THEN RETURN fuzz.lit(fuzz.pick(ARRAY['fuzz.people', 'fuzz.people', 'fuzz.people', 'fuzz.legacy',
                                                        'secpolicy.users', 'pg_class']));
    WHEN 'pcol' THEN RETURN fuzz.lit(fuzz.pick(ARRAY['email', 'email', 'email', 'note', 'id', 'nope', '']));
    WHEN 'ciphertext' THEN
        -- a stored value of a row, the same moved to another row, or a mangled one
        RETURN CASE fuzz.n(4)
            WHEN 0 THEN format('(SELECT email FROM fuzz.people WHERE id = %s)', 1 + fuzz.n(8))
            WHEN 1 THEN format('(SELECT overlay(email placing %s from %s) FROM fuzz.people WHERE id = %s)',
                               fuzz.lit(fuzz.pick(ARRAY['A', '_', '-', '='])), 6 + fuzz.n(80), 1 + fuzz.n(8))
            WHEN 2 THEN '''$sp2$''' || ' || ' || fuzz.lit(fuzz.rand_text(100))
            ELSE fuzz.gen('free') END;
    WHEN 'role_oid' THEN
        -- the fuzz victims, no role, a group role, out-of-range-ish OIDs (never
        -- a role a connection of the harness runs as)
        RETURN fuzz.pick(ARRAY['(SELECT oid FROM pg_roles WHERE rolname = ''fuzz_victim1'')',
                               '(SELECT oid FROM pg_roles WHERE rolname = ''fuzz_victim2'')',
                               '(SELECT oid FROM pg_roles WHERE rolname = ''fuzz_victim3'')',
                               '''secpolicy_analyst''::regrole::oid', '0', '4294967295', '123456789', 'NULL']);
    WHEN 'role_name' THEN
        RETURN CASE WHEN fuzz.n(4) = 0 THEN fuzz.gen('free')
                    ELSE fuzz.lit(fuzz.pick(ARRAY['fuzz_victim1', 'fuzz_victim2', 'fuzz_victim3', 'FUZZ_VICTIM1',
                                                  'no_such_role', '', 'secpolicy_analyst', 'postgres', NULL])) END;
    WHEN 'hash_work' THEN RETURN fuzz.lit(fuzz.pick(ARRAY['1', '2', '64', '512', '16384', '0', '16385', '-1', 'x', '']));
    WHEN 'name_list' THEN
        -- values of secpolicy.redact_functions / redact_tables (identifier lists)
        RETURN CASE fuzz.n(4)
            WHEN 0 THEN fuzz.lit(fuzz.pick(ARRAY['', 'login', 'app.sign_in, legacy', '"Weird, Name", x', ',,,', '"', '"a""b"',
                                                 'public.accounts', '  spaced  ,  list ', 'a.b.c.d', 'UPPER', '"unterminated']))
            WHEN 1 THEN fuzz.sized(fuzz.edge_len(), fuzz.pick(ARRAY['a,', ',', '"', 'x.', ' ']))
            ELSE fuzz.lit(fuzz.rand_text(40)) END;
    ELSE RAISE EXCEPTION 'fuzz: no generator "%"', kind;
    END CASE;
END
$f$;

-- ------------------------------------------------------------- setup -----

-- The accounts, the policy the run starts from, and the pools.  Each
-- account has a state that exercises a path of the flows.
CREATE FUNCTION fuzz.setup() RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    utf8 boolean := fuzz.utf8();
    names text[];
    states text[] := ARRAY['normal', 'normal', 'enrol', 'must_change', 'expired', 'disabled', 'reset',
                           'normal', 'enrol', 'normal', 'normal', 'normal'];
    enrolled boolean[] := ARRAY[true, true, false, true, false, true, true, true, false, false, true, false];
    pw text;
    uid bigint;
    st text;
    msg text;
BEGIN
    names := ARRAY['alice.fuzz@example.com', 'Bob.Fuzz', 'carol.fuzz', 'dave.fuzz', 'erin.fuzz', 'frank.fuzz',
                   'grace.fuzz', 'colon:name.fuzz', 'heidi fuzz', repeat('l', 250) || '.fuzz',
                   CASE WHEN utf8 THEN 'Ünïcødé.fuzz' ELSE 'unicode.fuzz' END,
                   CASE WHEN utf8 THEN 'ﬁnance.ﬀuzz' WHEN getdatabaseencoding() = 'SQL_ASCII'
                        THEN 'bytes-' || fuzz.from_bytes('\xfffec3'::bytea) || '.fuzz'
                        ELSE 'caf' || chr(233) || '.fuzz' END];
    UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
    INSERT INTO fuzz.state VALUES ('baseline_policy', (SELECT to_jsonb(p) FROM secpolicy.policy p)::text)
        ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
    FOR i IN 1 .. array_length(names, 1) LOOP
        pw := 'Fz-Known-' || i || '-Pass!' || CASE WHEN utf8 AND i % 3 = 0 THEN 'Wörd²' ELSE 'Word' END;
        BEGIN
            uid := secpolicy.create_user(names[i], pw);
        EXCEPTION WHEN OTHERS THEN
            -- create_user refused a name the table takes (invalid UTF-8 in a
            -- SQL_ASCII database): a finding; the account is made directly
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            PERFORM fuzz.report('create_user', 'undocumented_sqlstate', st, msg,
                                format('SELECT secpolicy.create_user(%s, %L)', fuzz.lit(names[i]), pw), NULL, 0, 0);
            INSERT INTO secpolicy.users (username, password_hash) VALUES (names[i], pw) RETURNING id INTO uid;
        END;
        INSERT INTO fuzz.accounts VALUES (uid, names[i], pw, states[i], enrolled[i]);
    END LOOP;
    -- fixed strange names, reused so that their failure counters reach the limit
    INSERT INTO fuzz.pool (kind, val)
    SELECT 'name', n FROM unnest(ARRAY['nobody.fuzz', 'NoBody.Fuzz', ' nobody.fuzz', 'nobody.fuzz ', 'ghost',
                                       repeat('g', 256), repeat('g', 257), 'a:b', 'x' || chr(9) || 'y',
                                       CASE WHEN utf8 THEN 'ﬁnance.ﬀuzz' ELSE 'plain' END,
                                       CASE WHEN utf8 THEN 'ＡＬＩＣＥ.ｆｕｚｚ＠ｅｘａｍｐｌｅ.ｃｏｍ' ELSE 'ALICE' END,
                                       CASE WHEN utf8 THEN 'e' || chr(x'0301'::integer) || 'clair' ELSE 'eclair' END,
                                       CASE WHEN utf8 THEN chr(x'FDFA'::integer) ELSE 'fdfa' END]) n;
    IF getdatabaseencoding() = 'SQL_ASCII' THEN
        INSERT INTO fuzz.pool (kind, val)
        SELECT 'name', fuzz.from_bytes(b) FROM unnest(ARRAY['\xff'::bytea, '\xc328', '\xeda080', '\x80616263',
                                                            '\xe282', '\xf4908080']) b;
    ELSIF getdatabaseencoding() = 'LATIN1' THEN
        INSERT INTO fuzz.pool (kind, val)
        SELECT 'name', fuzz.from_bytes(b) FROM unnest(ARRAY['\xe9'::bytea, '\xfffe', '\xa078']) b;
    END IF;
    PERFORM fuzz.refresh();
END
$f$;

-- Put the accounts back in their states with their passwords and fresh
-- second factors, restore the policy, and renew the pools of tokens,
-- secrets, hashes and recovery codes.  Runs every 64 cases.
CREATE FUNCTION fuzz.refresh() RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    a fuzz.accounts;
    s record;
    t text;
    base secpolicy.policy;
BEGIN
    -- the policy of the run (a policy case may have changed any setting)
    base := jsonb_populate_record(NULL::secpolicy.policy, (SELECT v::jsonb FROM fuzz.state WHERE k = 'baseline_policy'));
    UPDATE secpolicy.policy p
       SET (min_length, max_length, require_upper, require_lower, require_digit, require_symbol, check_username,
            check_blocklist, history_depth, max_password_age, password_expiry_warning, max_failed_attempts,
            require_mfa, session_idle_timeout, session_max_lifetime, reset_token_lifetime, hash_opslimit,
            hash_memlimit, mfa_challenge_lifetime, mfa_enrollment_lifetime, totp_issuer, totp_algorithm,
            totp_digits, totp_period, totp_window, recovery_code_count, session_touch_interval,
            max_sessions_per_user, attempt_retention, pseudonymise_after, detection_window)
         = (base.min_length, base.max_length, base.require_upper, base.require_lower, base.require_digit,
            base.require_symbol, base.check_username, base.check_blocklist, base.history_depth, base.max_password_age,
            base.password_expiry_warning, base.max_failed_attempts, base.require_mfa, base.session_idle_timeout,
            base.session_max_lifetime, base.reset_token_lifetime, base.hash_opslimit, base.hash_memlimit,
            base.mfa_challenge_lifetime, base.mfa_enrollment_lifetime, base.totp_issuer, base.totp_algorithm,
            base.totp_digits, base.totp_period, base.totp_window, base.recovery_code_count,
            base.session_touch_interval, base.max_sessions_per_user, base.attempt_retention, base.pseudonymise_after,
            base.detection_window)
     WHERE (p.min_length, p.max_length, p.require_upper, p.require_lower, p.require_digit, p.require_symbol,
            p.check_username, p.check_blocklist, p.history_depth, p.max_password_age, p.password_expiry_warning,
            p.max_failed_attempts, p.require_mfa, p.session_idle_timeout, p.session_max_lifetime,
            p.reset_token_lifetime, p.hash_opslimit, p.hash_memlimit, p.mfa_challenge_lifetime,
            p.mfa_enrollment_lifetime, p.totp_issuer, p.totp_algorithm, p.totp_digits, p.totp_period,
            p.totp_window, p.recovery_code_count, p.session_touch_interval, p.max_sessions_per_user,
            p.attempt_retention, p.pseudonymise_after, p.detection_window)
           IS DISTINCT FROM
           (base.min_length, base.max_length, base.require_upper, base.require_lower, base.require_digit,
            base.require_symbol, base.check_username, base.check_blocklist, base.history_depth, base.max_password_age,
            base.password_expiry_warning, base.max_failed_attempts, base.require_mfa, base.session_idle_timeout,
            base.session_max_lifetime, base.reset_token_lifetime, base.hash_opslimit, base.hash_memlimit,
            base.mfa_challenge_lifetime, base.mfa_enrollment_lifetime, base.totp_issuer, base.totp_algorithm,
            base.totp_digits, base.totp_period, base.totp_window, base.recovery_code_count,
            base.session_touch_interval, base.max_sessions_per_user, base.attempt_retention, base.pseudonymise_after,
            base.detection_window);

    DELETE FROM fuzz.pool WHERE kind <> 'name';
    FOR a IN SELECT * FROM fuzz.accounts ORDER BY uid LOOP
        PERFORM secpolicy.write_password(a.uid, a.password, 'temporary');
        UPDATE secpolicy.users u
           SET must_change_password = a.state = 'must_change', password_expired = a.state = 'expired',
               failed_attempts = 0, reset_required = a.state = 'reset', locked_at = NULL,
               disabled_at = CASE WHEN a.state = 'disabled' THEN now() END,
               disabled_reason = CASE WHEN a.state = 'disabled' THEN 'fuzz' END
         WHERE u.id = a.uid;
        PERFORM secpolicy.guess_clear('u:' || a.uid);
        DELETE FROM secpolicy.sessions x WHERE x.user_id = a.uid;
        DELETE FROM secpolicy.mfa_challenges x WHERE x.user_id = a.uid;
        DELETE FROM secpolicy.password_resets x WHERE x.user_id = a.uid;
        DELETE FROM secpolicy.totp_credentials c WHERE c.user_id = a.uid;
        DELETE FROM secpolicy.recovery_codes r WHERE r.user_id = a.uid;
        IF a.enrolled THEN
            s := secpolicy.totp_new_secret();
            INSERT INTO secpolicy.totp_credentials (user_id, sealed_secret, algorithm, digits, period, confirmed_at)
            VALUES (a.uid, s.sealed, 'sha1', 6, 30, now());
            INSERT INTO fuzz.pool (kind, val, uid, extra) VALUES ('secret', s.secret, a.uid, encode(s.sealed, 'hex'));
            FOR k IN 1 .. 2 LOOP
                t := secpolicy.recovery_code();
                INSERT INTO secpolicy.recovery_codes (user_id, code_digest)
                VALUES (a.uid, secpolicy.token_digest(replace(t, '-', '')));
                INSERT INTO fuzz.pool (kind, val, uid) VALUES ('recovery', t, a.uid);
            END LOOP;
        END IF;
        INSERT INTO fuzz.pool (kind, val, uid)
        VALUES ('session', secpolicy.start_session(a.uid, '203.0.113.9', 'fuzz', a.enrolled), a.uid),
               ('session', secpolicy.start_session(a.uid, NULL, NULL, false), a.uid),
               (CASE WHEN a.enrolled THEN 'verify' ELSE 'enroll' END,
                secpolicy.issue_challenge(a.uid, CASE WHEN a.enrolled THEN 'verify' ELSE 'enroll' END, NULL, NULL), a.uid);
        t := secpolicy.request_password_reset(a.username);
        IF t IS NOT NULL THEN
            INSERT INTO fuzz.pool (kind, val, uid) VALUES ('reset', t, a.uid);
        END IF;
    END LOOP;
    INSERT INTO fuzz.pool (kind, val, uid)
    SELECT 'hash', u.password_hash, u.id FROM secpolicy.users u JOIN fuzz.accounts acc ON acc.uid = u.id;
    INSERT INTO fuzz.pool (kind, val) SELECT 'hash', d.hash FROM secpolicy.dummy_hash d;
    -- a secret of another algorithm and period, for the building blocks
    s := secpolicy.totp_new_secret();
    INSERT INTO fuzz.pool (kind, val, extra) VALUES ('secret', s.secret, encode(s.sealed, 'hex'));
    -- the application table of password_policy_trigger: eight rows
    INSERT INTO fuzz.legacy (id, login, password)
    SELECT i, 'legacy' || i, NULL FROM generate_series(1, 8) i ON CONFLICT (id) DO NOTHING;
    -- keep the tables of the extension from growing without bound
    DELETE FROM secpolicy.sessions x WHERE x.ended_at < now() - interval '1 minute';
    DELETE FROM secpolicy.mfa_challenges x WHERE x.used_at IS NOT NULL OR x.expires_at < now();
END
$f$;

-- --------------------------------------------------------- the runner -----

-- Count an outcome.
CREATE FUNCTION fuzz.book(target text, outcome text, ms double precision) RETURNS void LANGUAGE sql AS $f$
    INSERT INTO fuzz.stats AS s (target, outcome, calls, total_ms, max_ms) VALUES (target, outcome, 1, ms, ms)
    ON CONFLICT (target, outcome) DO UPDATE
       SET calls = s.calls + 1, total_ms = s.total_ms + EXCLUDED.total_ms, max_ms = greatest(s.max_ms, EXCLUDED.max_ms);
$f$;

-- The settings of the policy row that differ from the run's baseline, as
-- the UPDATE that sets them ('' when none): part of a finding's reproducer.
CREATE FUNCTION fuzz.policy_context() RETURNS text LANGUAGE sql STABLE AS $f$
    SELECT coalesce('UPDATE secpolicy.policy SET ' ||
                    string_agg(format('%I = %L', c.key, c.value #>> '{}'), ', ' ORDER BY c.key) || '; ', '')
      FROM jsonb_each((SELECT to_jsonb(p) FROM secpolicy.policy p)) c
      JOIN jsonb_each((SELECT v::jsonb FROM fuzz.state WHERE k = 'baseline_policy')) b USING (key)
     WHERE c.value IS DISTINCT FROM b.value AND c.key NOT IN ('updated_at', 'updated_by', 'rules_changed_at', 'preset');
$f$;

-- Record a finding (once per shape; the shortest reproducer is kept).  The
-- reproducer is the statement, after the policy settings it ran under.  An
-- undocumented SQLSTATE or status that fuzz.known lists is a known finding.
CREATE FUNCTION fuzz.report(_target text, _category text, _sqlstate text, _message text, _stmt text,
                            _seed bigint, _i bigint, _ms double precision) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    cat text := _category;
    repro text := fuzz.policy_context() || _stmt;
BEGIN
    IF cat IN ('undocumented_sqlstate', 'undocumented_status') AND EXISTS (
           SELECT 1 FROM fuzz.known k
            WHERE _target ~ k.target AND coalesce(_sqlstate, '') ~ k.sqlstate AND coalesce(_message, '') ~ k.message
              AND (k.encoding IS NULL OR k.encoding = getdatabaseencoding())) THEN
        cat := 'known';
    END IF;
    INSERT INTO fuzz.findings AS f (target, category, sqlstate, shape, message, statement, seed, case_no, max_ms)
    VALUES (_target, cat, coalesce(_sqlstate, ''),
            left(regexp_replace(coalesce(_message, ''), '[0-9]+', 'N', 'g'), 120), left(_message, 500), repro, _seed, _i, _ms)
    ON CONFLICT (target, category, sqlstate, shape) DO UPDATE
       SET hits = f.hits + 1, max_ms = greatest(f.max_ms, EXCLUDED.max_ms),
           statement = CASE WHEN length(EXCLUDED.statement) < length(f.statement) THEN EXCLUDED.statement ELSE f.statement END,
           seed = CASE WHEN length(EXCLUDED.statement) < length(f.statement) THEN EXCLUDED.seed ELSE f.seed END,
           case_no = CASE WHEN length(EXCLUDED.statement) < length(f.statement) THEN EXCLUDED.case_no ELSE f.case_no END;
END
$f$;

-- The target of case i: every target once in turn first, then by weight.
CREATE FUNCTION fuzz.target_of(i bigint) RETURNS fuzz.targets LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    n integer := (SELECT count(*) FROM fuzz.targets WHERE kind <> 'log');
    t fuzz.targets;
    w integer;
BEGIN
    IF i <= n THEN
        SELECT * INTO t FROM fuzz.targets WHERE kind <> 'log' ORDER BY name OFFSET i - 1 LIMIT 1;
        RETURN t;
    END IF;
    w := fuzz.n((SELECT sum(weight)::integer FROM fuzz.targets));
    SELECT * INTO t FROM fuzz.targets z WHERE z.name = (
        SELECT y.name FROM (SELECT x.name, sum(x.weight) OVER (ORDER BY x.name) AS upto
                              FROM fuzz.targets x WHERE x.weight > 0) y
         WHERE y.upto > w ORDER BY y.upto LIMIT 1);
    RETURN t;
END
$f$;

-- The statement of a target with freshly generated arguments, and the
-- arguments alone (to tell a generator's error from the target's).
CREATE FUNCTION fuzz.render(t fuzz.targets, OUT stmt text, OUT args_only text) LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
    exprs text[] := '{}';
    typed text[] := '{}';
    g text;
    e text;
BEGIN
    PERFORM fuzz.ctx_set(NULL);
    FOREACH g IN ARRAY t.args LOOP
        e := fuzz.gen(split_part(g, ':', 1));
        IF split_part(g, ':', 2) <> '' THEN
            e := '(' || e || ')::' || split_part(g, ':', 2);
        END IF;
        exprs := exprs || e;
    END LOOP;
    IF t.fn IS NOT NULL THEN
        stmt := format(coalesce(t.result, 'SELECT array_agg(left(r::text, 100)) FROM %s AS r'),
                       format('%s(%s)', t.fn, array_to_string(exprs, ', ')));
    ELSE
        stmt := format(t.template, VARIADIC exprs);
    END IF;
    args_only := CASE WHEN cardinality(exprs) = 0 THEN 'SELECT 1'
                      ELSE 'SELECT ' || array_to_string(exprs, ', ') END;
    IF t.kind = 'policy' THEN
        args_only := 'SELECT 1';
    END IF;
END
$f$;

-- Case i of run `seed`: one call with generated input.  Returns a line for
-- the driver: "fuzzcase i target outcome".
CREATE FUNCTION fuzz.one(seed bigint, i bigint) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    t fuzz.targets;
    r record;
    answer text[];
    st text;
    msg text;
    detail text;
    t0 timestamptz;
    ms double precision;
    args_ms double precision;
    slow double precision := coalesce(nullif(current_setting('fuzz.slow_ms', true), ''), '2000')::double precision;
    bad text;
BEGIN
    PERFORM fuzz.seed_case(seed, i);
    -- every 64 cases, and three cases after a policy case raised the hash
    -- cost beyond 64 MiB x 2 passes (every login would take seconds)
    IF i % 64 = 1 OR i > coalesce((SELECT v::bigint FROM fuzz.state WHERE k = 'costly_policy_until'), i) THEN
        PERFORM fuzz.refresh();
        DELETE FROM fuzz.state WHERE k = 'costly_policy_until';
    END IF;
    t := fuzz.target_of(i);
    BEGIN
        r := fuzz.render(t);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_CONTEXT;
        PERFORM fuzz.report(t.name, 'generator_error', st, msg || ' / ' || detail, '(rendering failed)', seed, i, 0);
        PERFORM fuzz.book(t.name, 'generator_error', 0);
        RETURN 'fuzzcase ' || i || ' ' || t.name || ' generator_error';
    END;
    IF coalesce(current_setting('fuzz.trace', true), 'off') = 'on' THEN
        RAISE NOTICE 'fuzz % %: %', i, t.name, r.stmt;
    END IF;

    t0 := clock_timestamp();
    BEGIN
        IF t.role <> 'owner' THEN
            PERFORM set_config('role', 'fuzz_' || t.role, true);
        END IF;
        IF t.fn IS NOT NULL THEN
            EXECUTE r.stmt INTO answer;
        ELSE
            EXECUTE r.stmt;
        END IF;
        IF t.role <> 'owner' THEN
            PERFORM set_config('role', 'none', true);
        END IF;
        IF t.undo THEN
            RAISE EXCEPTION USING ERRCODE = 'FZ000';
        END IF;
        st := 'ok';
    EXCEPTION
        WHEN query_canceled THEN
            st := '57014';
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
            IF st = 'FZ000' THEN
                st := 'ok';
            END IF;
    END;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    PERFORM set_config('role', 'none', true);

    IF st = 'ok' THEN
        IF t.statuses IS NOT NULL THEN
            SELECT string_agg(DISTINCT coalesce(x, 'NULL'), ',') INTO bad
              FROM unnest(answer) x WHERE x IS NULL OR x <> ALL (t.statuses);
            IF bad IS NOT NULL THEN
                PERFORM fuzz.report(t.name, 'undocumented_status', '', bad, r.stmt, seed, i, ms);
            END IF;
        END IF;
    ELSIF st = '57014' THEN
        -- how late the cancel came tells a computation that ignores it
        PERFORM fuzz.report(t.name, 'hang', st, format('%s after %s ms (statement_timeout %s)', msg, round(ms::numeric),
                                                       current_setting('statement_timeout')), r.stmt, seed, i, ms);
    ELSIF st <> ALL (t.sqlstates || t.proposed) THEN
        -- the generator's own expressions may be at fault: run them alone
        BEGIN
            EXECUTE r.args_only;
            PERFORM fuzz.report(t.name, 'undocumented_sqlstate', st, msg, r.stmt, seed, i, ms);
        EXCEPTION WHEN OTHERS THEN
            PERFORM fuzz.report(t.name, 'generator_error', st, msg, r.stmt, seed, i, ms);
        END;
    ELSIF st = ANY (t.proposed) THEN
        PERFORM fuzz.report(t.name, 'proposed_sqlstate', st, msg, r.stmt, seed, i, ms);
    END IF;
    IF ms > slow AND st <> '57014' THEN
        -- the time the arguments take to build (a 32 MB repeat()) is not the target's
        t0 := clock_timestamp();
        BEGIN
            EXECUTE r.args_only;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
        args_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        IF ms - args_ms > slow THEN
            PERFORM fuzz.report(t.name, 'slow', st, format('%s ms (%s ms of it building the arguments)',
                                                           round(ms::numeric), round(args_ms::numeric)),
                                r.stmt, seed, i, ms - args_ms);
        END IF;
    END IF;
    IF t.kind = 'policy' AND st = 'ok' AND EXISTS (SELECT 1 FROM secpolicy.policy p
                                                    WHERE p.hash_memlimit::numeric * p.hash_opslimit > 134217728) THEN
        INSERT INTO fuzz.state VALUES ('costly_policy_until', (i + 3)::text) ON CONFLICT (k) DO NOTHING;
    END IF;
    PERFORM fuzz.book(t.name, st, ms);
    RETURN 'fuzzcase ' || i || ' ' || t.name || ' ' || st;
END
$f$;

-- Case i as a top-level statement for the log redaction (scripts/fuzz runs
-- it with \gexec); counted here, its outcome is not.
CREATE FUNCTION fuzz.statement_text(seed bigint, i bigint) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    s text;
BEGIN
    PERFORM fuzz.seed_case(seed, i);
    s := fuzz.gen_statement_text();
    PERFORM fuzz.book('log hook: top-level statement text', 'sent', 0);
    IF coalesce(current_setting('fuzz.trace', true), 'off') = 'on' THEN
        RAISE NOTICE 'fuzz % log hook: top-level statement text: %', i, s;
    END IF;
    RETURN s;
END
$f$;

-- ------------------------------------------------------- checks, summary -----

-- What the targets miss or name wrongly: every C function of schema
-- secpolicy must be covered by a target (with its generators and its
-- documented SQLSTATEs), and every function a target covers must exist.
CREATE FUNCTION fuzz.check_targets() RETURNS SETOF text LANGUAGE sql STABLE AS $f$
    WITH fns AS (
        SELECT p.proname || '(' || oidvectortypes(p.proargtypes) || ')' AS sig, l.lanname
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
         WHERE n.nspname = 'secpolicy')
    SELECT 'no fuzz target for C function secpolicy.' || f.sig
      FROM fns f WHERE f.lanname = 'c' AND NOT EXISTS (SELECT 1 FROM fuzz.targets t WHERE t.covers = f.sig)
    UNION ALL
    SELECT format('target "%s" covers secpolicy.%s, which does not exist', t.name, t.covers)
      FROM fuzz.targets t WHERE t.covers IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fns f WHERE f.sig = t.covers)
    ORDER BY 1;
$f$;

-- The summary of a run in this database: calls per target and outcome, and the findings.
CREATE FUNCTION fuzz.summary() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
BEGIN
    RETURN NEXT format('database %s (%s): %s calls', current_database(), getdatabaseencoding(),
                       (SELECT coalesce(sum(calls), 0) FROM fuzz.stats));
    FOR r IN
        SELECT t.name, coalesce(sum(s.calls), 0) AS calls,
               coalesce(string_agg(s.outcome || ' ' || s.calls, ', ' ORDER BY s.outcome), 'never called') AS outcomes,
               coalesce(round(max(s.max_ms)::numeric, 1), 0) AS max_ms
          FROM fuzz.targets t LEFT JOIN fuzz.stats s ON s.target = t.name
         GROUP BY t.name ORDER BY t.name
    LOOP
        RETURN NEXT format('  %-58s %7s calls  max %8s ms  %s', r.name, r.calls, r.max_ms, r.outcomes);
    END LOOP;
END
$f$;
