-- Protected columns: personal data of application tables encrypted by a
-- trigger, readable only through reveal() by readers who hold the column's
-- access, searchable through a blind index (the encryption is in C:
-- src/columns.c; the background worker that encrypts existing values in
-- src/protect_worker.c; the record of reveals in 94_disclosures.sql).
--
-- A protected column is named by its schema, table and column names (they
-- survive a dump and restore, and the ciphertext is bound to them), so the
-- event trigger at the end refuses to rename, move or retype one.

CREATE TABLE secpolicy.protected_columns (
    id bigserial PRIMARY KEY,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    access text NOT NULL CHECK (access ~ '^[a-z][a-z0-9_.:-]{0,62}$'),
    searchable boolean NOT NULL DEFAULT false,
    index_key bytea,
    state text NOT NULL DEFAULT 'encrypting' CHECK (state IN ('encrypting', 'resealing', 'protected')),
    key_id text,
    next_block bigint NOT NULL DEFAULT 0,
    values_written bigint NOT NULL DEFAULT 0,
    pass_started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_batch_at timestamptz,
    pass_finished_at timestamptz,
    protected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    protected_by text NOT NULL DEFAULT SESSION_USER,
    UNIQUE (table_schema, table_name, column_name),
    CHECK (searchable = (index_key IS NOT NULL))
);
COMMENT ON TABLE secpolicy.protected_columns IS
    'Columns of application tables whose values are encrypted (protect_column()), and the progress of the pass that encrypts or reseals their stored values.';
COMMENT ON COLUMN secpolicy.protected_columns.index_key IS
    'The key of the blind index: 32 random bytes sealed under the sealing key (searchable columns only).';
COMMENT ON COLUMN secpolicy.protected_columns.state IS
    'encrypting (values stored before protection are being encrypted), resealing (after a key rotation) or protected.';
COMMENT ON COLUMN secpolicy.protected_columns.key_id IS
    'The sealing key the current pass encrypts under (when protected: the key every value is under).';
COMMENT ON COLUMN secpolicy.protected_columns.next_block IS
    'Where the pass resumes: the first block of the table not yet processed.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.protected_columns', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.protected_columns_id_seq', '');
GRANT SELECT (id, table_schema, table_name, column_name, access, searchable, state, key_id, next_block,
              values_written, pass_started_at, last_batch_at, pass_finished_at, protected_at, protected_by)
    ON secpolicy.protected_columns TO secpolicy_admin;

CREATE TABLE secpolicy.reveal_grants (
    role_name text NOT NULL,
    access text NOT NULL CHECK (access ~ '^[a-z][a-z0-9_.:-]{0,62}$'),
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    granted_by text NOT NULL DEFAULT SESSION_USER,
    reason text,
    PRIMARY KEY (role_name, access)
);
COMMENT ON TABLE secpolicy.reveal_grants IS
    'Database roles that may reveal the columns protected with an access (grant_reveal()); their members may too.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.reveal_grants', '');
GRANT SELECT ON secpolicy.reveal_grants TO secpolicy_admin;

-- ------------------------------------------------------------------ C ----

-- Backends keep what they read of the two tables above (src/columns.c);
-- a change makes every backend forget it.
CREATE FUNCTION secpolicy.register_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'secpolicy_register_changed'
    LANGUAGE C;
COMMENT ON FUNCTION secpolicy.register_changed() IS
    'Trigger: a change of protected_columns or reveal_grants makes every backend forget what it read of them.';
REVOKE ALL ON FUNCTION secpolicy.register_changed() FROM PUBLIC;
CREATE TRIGGER protected_columns_changed
    AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF table_schema, table_name, column_name, access, searchable, index_key
    ON secpolicy.protected_columns FOR EACH STATEMENT EXECUTE FUNCTION secpolicy.register_changed();
CREATE TRIGGER reveal_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON secpolicy.reveal_grants FOR EACH STATEMENT EXECUTE FUNCTION secpolicy.register_changed();

CREATE FUNCTION secpolicy.protect_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'secpolicy_protect_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION secpolicy.protect_trigger() IS
    'Trigger (zz_secpolicy_protect, made by protect_column()): encrypts every value written in clear to the protected columns named by its arguments, keeps their blind indexes.';
REVOKE ALL ON FUNCTION secpolicy.protect_trigger() FROM PUBLIC;

-- Not SECURITY DEFINER: it decides by the caller's role (and session); the
-- tables it reads are read through internal SECURITY DEFINER functions.
CREATE FUNCTION secpolicy.reveal(tbl regclass, col name, value text, row_key text DEFAULT NULL) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_reveal'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION secpolicy.reveal(regclass, name, text, text) IS
    'The plaintext of a protected value when the session proven in this transaction, or the database role, holds the column''s access; NULL otherwise. Every call is recorded in disclosures. With row_key, a value bound to another row raises XX001.';
REVOKE ALL ON FUNCTION secpolicy.reveal(regclass, name, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.reveal(regclass, name, text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.blind_index(tbl regclass, col name, value text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'secpolicy_blind_index'
    LANGUAGE C STRICT STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION secpolicy.blind_index(regclass, name, text) IS
    'The blind index of a value of a searchable protected column: WHERE <col>_bidx = blind_index(tbl, col, value) finds its rows through an ordinary index.';
REVOKE ALL ON FUNCTION secpolicy.blind_index(regclass, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.blind_index(regclass, name, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.protected_key_id(value text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_protected_key_id'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION secpolicy.protected_key_id(text) IS
    'Identifier (hex) of the sealing key a protected value is encrypted under; NULL for a value in clear.';
REVOKE ALL ON FUNCTION secpolicy.protected_key_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.protected_key_id(text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.needs_encryption(value text, key_id text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_needs_encryption'
    LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION secpolicy.needs_encryption(text, text) IS
    'Internal: is a value of a protected column in clear, or encrypted under another key than key_id?';
REVOKE ALL ON FUNCTION secpolicy.needs_encryption(text, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.open_value(tbl regclass, col name, value text, row_key text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_open_value'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.open_value(regclass, name, text, text) IS
    'Internal (unprotect_column): the plaintext of a protected value of a row, with no access check.';
REVOKE ALL ON FUNCTION secpolicy.open_value(regclass, name, text, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.new_index_key() RETURNS bytea
    AS 'MODULE_PATHNAME', 'secpolicy_new_index_key'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.new_index_key() IS
    'Internal: a random blind index key, sealed under the current sealing key.';
REVOKE ALL ON FUNCTION secpolicy.new_index_key() FROM PUBLIC;

CREATE FUNCTION secpolicy.set_reseal_target(tbl regclass, col name) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_set_reseal_target'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.set_reseal_target(regclass, name) IS
    'Internal (protect_batch): until the transaction ends, the trigger reseals unchanged values of this column under an old key; NULLs clear it.';
REVOKE ALL ON FUNCTION secpolicy.set_reseal_target(regclass, name) FROM PUBLIC;

CREATE FUNCTION secpolicy.start_protection_worker(owner oid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_start_protection_worker'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.start_protection_worker(oid) IS
    'Internal: start the background worker that encrypts stored values, connected as owner; false when no worker slot is free.';
REVOKE ALL ON FUNCTION secpolicy.start_protection_worker(oid) FROM PUBLIC;

-- ------------------------------------------------- lookups for the C code --

CREATE FUNCTION secpolicy.column_access(table_schema text, table_name text, column_name text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.access FROM secpolicy.protected_columns c
     WHERE c.table_schema = $1 AND c.table_name = $2 AND c.column_name = $3;
$$;
COMMENT ON FUNCTION secpolicy.column_access(text, text, text) IS
    'Internal: the access a column is protected with (NULL: not protected).';
REVOKE ALL ON FUNCTION secpolicy.column_access(text, text, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.column_index_key(table_schema text, table_name text, column_name text) RETURNS bytea
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.index_key FROM secpolicy.protected_columns c
     WHERE c.table_schema = $1 AND c.table_name = $2 AND c.column_name = $3;
$$;
COMMENT ON FUNCTION secpolicy.column_index_key(text, text, text) IS
    'Internal: the sealed blind index key of a protected column (NULL: not searchable).';
REVOKE ALL ON FUNCTION secpolicy.column_index_key(text, text, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.reveal_roles(access text) RETURNS oid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(r.oid) FROM secpolicy.reveal_grants g
      JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) g.role_name
     WHERE g.access = $1;
$$;
COMMENT ON FUNCTION secpolicy.reveal_roles(text) IS
    'Internal: the existing roles granted an access with grant_reveal().';
REVOKE ALL ON FUNCTION secpolicy.reveal_roles(text) FROM PUBLIC;

-- Internal: the text of the row key of alias `t`: t.pk::text, or
-- ROW(t.a, t.b)::text for a composite primary key (what the trigger binds).
CREATE FUNCTION secpolicy.row_key_expr(tbl regclass, alias text DEFAULT 't') RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN count(*) = 1 THEN format('%s.%I::text', $2, min(a.attname))
                ELSE format('ROW(%s)::text', string_agg(format('%s.%I', $2, a.attname), ', ' ORDER BY k.n)) END
      FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = $1 AND i.indisprimary
    HAVING count(*) > 0;
$$;
COMMENT ON FUNCTION secpolicy.row_key_expr(regclass, text) IS
    'Internal: the SQL expression of a row''s key (its primary key as text) for a table alias.';
REVOKE ALL ON FUNCTION secpolicy.row_key_expr(regclass, text) FROM PUBLIC;

-- Internal: the table of a registered column, or NULL when it is gone.
CREATE FUNCTION secpolicy.protected_table(c secpolicy.protected_columns) RETURNS regclass
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name));
$$;
COMMENT ON FUNCTION secpolicy.protected_table(secpolicy.protected_columns) IS
    'Internal: the table of a protected column (NULL when it no longer exists).';
REVOKE ALL ON FUNCTION secpolicy.protected_table(secpolicy.protected_columns) FROM PUBLIC;

-- Internal: the arguments the trigger of a table should have, as
-- pg_trigger.tgargs stores them (each followed by a zero byte).
CREATE FUNCTION secpolicy.protect_trigger_args(tbl regclass) RETURNS bytea
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(convert_to(c.column_name, current_setting('server_encoding')) || '\x00'::bytea
                      || convert_to(CASE WHEN c.searchable THEN 'searchable' ELSE 'plain' END,
                                    current_setting('server_encoding')) || '\x00'::bytea,
                      ''::bytea ORDER BY c.id)
      FROM secpolicy.protected_columns c
     WHERE secpolicy.protected_table(c) = $1;
$$;
COMMENT ON FUNCTION secpolicy.protect_trigger_args(regclass) IS
    'Internal: the arguments (as tgargs) of the zz_secpolicy_protect trigger a table should have.';
REVOKE ALL ON FUNCTION secpolicy.protect_trigger_args(regclass) FROM PUBLIC;

-- Internal: (re)create the table's trigger with one pair of arguments per
-- protected column (or drop it when none is left).  Named zz_... so that it
-- fires after the table's other BEFORE triggers (in name order), which see
-- the plaintext.
CREATE FUNCTION secpolicy.install_protect_trigger(tbl regclass) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    args text;
BEGIN
    SELECT string_agg(format('%L, %L', c.column_name, CASE WHEN c.searchable THEN 'searchable' ELSE 'plain' END),
                      ', ' ORDER BY c.id)
      INTO args
      FROM secpolicy.protected_columns c
     WHERE secpolicy.protected_table(c) = tbl;
    IF EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = tbl AND t.tgname = 'zz_secpolicy_protect') THEN
        EXECUTE format('DROP TRIGGER zz_secpolicy_protect ON %s', tbl);
    END IF;
    IF args IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER zz_secpolicy_protect BEFORE INSERT OR UPDATE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION secpolicy.protect_trigger(%s)', tbl, args);
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.install_protect_trigger(regclass) IS
    'Internal: (re)create the zz_secpolicy_protect trigger of a table from its protected columns.';
REVOKE ALL ON FUNCTION secpolicy.install_protect_trigger(regclass) FROM PUBLIC;

-- ------------------------------------------------------------ the views ---

-- Internal: (re)define a revealed view of a table: every column of the
-- table, the protected ones through reveal() with their row key (and their
-- own type and collation), but the blind indexes.
-- security_invoker, so that the reader's own privileges and row-level
-- security apply to the table, and reveal() sees the reader.
CREATE FUNCTION secpolicy.define_reveal_view(tbl regclass, view_schema text, view_name text) RETURNS regclass
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text;
    rk text := secpolicy.row_key_expr(tbl, 't');
    owner name := (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = tbl);
    v regclass;
BEGIN
    SELECT string_agg(CASE WHEN p.id IS NULL THEN format('t.%I', a.attname)
                           ELSE format('secpolicy.reveal(%L::regclass, %L::name, t.%I, %s)::%s COLLATE %I.%I AS %I',
                                       tbl::text, a.attname, a.attname, rk, format_type(a.atttypid, a.atttypmod),
                                       cn.nspname, co.collname, a.attname) END,
                      ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a
      LEFT JOIN pg_collation co ON co.oid = a.attcollation
      LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
      LEFT JOIN secpolicy.protected_columns p
        ON secpolicy.protected_table(p) = tbl AND p.column_name = a.attname::text
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
       -- not the blind indexes (unprotect_column drops them)
       AND NOT EXISTS (SELECT 1 FROM secpolicy.protected_columns b
                        WHERE secpolicy.protected_table(b) = tbl AND b.searchable
                          AND b.column_name || '_bidx' = a.attname::text);
    EXECUTE format('CREATE OR REPLACE VIEW %I.%I WITH (security_invoker = true) AS SELECT %s FROM %s t',
                   view_schema, view_name, cols, tbl);
    v := format('%I.%I', view_schema, view_name)::regclass;
    EXECUTE format('COMMENT ON VIEW %s IS %L', v,
                   'secpolicy: revealed view of ' || tbl::text
                   || ' (create_reveal_view); protected columns show reveal(), NULL to readers without the access.');
    EXECUTE format('ALTER VIEW %s OWNER TO %I', v, owner);
    RETURN v;
END
$$;
COMMENT ON FUNCTION secpolicy.define_reveal_view(regclass, text, text) IS
    'Internal: (re)define the revealed view of a table.';
REVOKE ALL ON FUNCTION secpolicy.define_reveal_view(regclass, text, text) FROM PUBLIC;

-- Internal: bring the revealed views of a table up to date with its protected columns.
CREATE FUNCTION secpolicy.refresh_reveal_views(tbl regclass) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
    n integer := 0;
BEGIN
    FOR v IN
        SELECT DISTINCT n.nspname, c.relname
          FROM pg_depend d
          JOIN pg_rewrite r ON r.oid = d.objid
          JOIN pg_class c ON c.oid = r.ev_class
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl
           AND c.oid <> tbl AND c.relkind = 'v'
           AND obj_description(c.oid, 'pg_class') LIKE 'secpolicy: revealed view of %'
    LOOP
        PERFORM secpolicy.define_reveal_view(tbl, v.nspname, v.relname);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.refresh_reveal_views(regclass) IS
    'Internal: redefine the revealed views of a table (after protect_column or unprotect_column).';
REVOKE ALL ON FUNCTION secpolicy.refresh_reveal_views(regclass) FROM PUBLIC;

CREATE FUNCTION secpolicy.create_reveal_view(tbl regclass, view_name text DEFAULT NULL) RETURNS regclass
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parts text[];
    vschema text;
    vname text;
    v regclass;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'create_reveal_view needs a table' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM secpolicy.protected_columns c WHERE secpolicy.protected_table(c) = tbl) THEN
        RAISE EXCEPTION 'table % has no protected column', tbl USING ERRCODE = '55000',
            HINT = 'Protect a column first with secpolicy.protect_column().';
    END IF;
    SELECT n.nspname, c.relname || '_revealed' INTO vschema, vname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF view_name IS NOT NULL THEN
        parts := parse_ident(view_name);
        IF cardinality(parts) = 1 THEN
            vname := parts[1];
        ELSIF cardinality(parts) = 2 THEN
            vschema := parts[1];
            vname := parts[2];
        ELSE
            RAISE EXCEPTION 'invalid view name "%"', view_name USING ERRCODE = '42602';
        END IF;
    END IF;
    v := secpolicy.define_reveal_view(tbl, vschema, vname);
    PERFORM secpolicy.audit('reveal_view_created', NULL, NULL, NULL,
                            jsonb_build_object('table', tbl::text, 'view', v::text));
    RETURN v;
END
$$;
COMMENT ON FUNCTION secpolicy.create_reveal_view(regclass, text) IS
    'Creates (or replaces) a security_invoker view of a table that shows its protected columns through reveal(): plaintext to readers with the access, NULL to others. Kept up to date by protect_column and unprotect_column.';
REVOKE ALL ON FUNCTION secpolicy.create_reveal_view(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.create_reveal_view(regclass, text) TO secpolicy_admin;

-- --------------------------------------------------- the encryption pass --

-- Start the background worker that encrypts stored values, unless one runs
-- for this database or nothing is left to do.  Returns whether one runs.
CREATE FUNCTION secpolicy.resume_protection() RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM secpolicy.protected_columns c WHERE c.state <> 'protected') THEN
        RETURN false;
    END IF;
    PERFORM pg_stat_clear_snapshot();
    IF EXISTS (SELECT 1 FROM pg_stat_activity a
                WHERE a.backend_type = 'secpolicy encryption'
                  AND a.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())) THEN
        RETURN true;
    END IF;
    RETURN secpolicy.start_protection_worker((SELECT e.extowner FROM pg_extension e WHERE e.extname = 'secpolicy'));
END
$$;
COMMENT ON FUNCTION secpolicy.resume_protection() IS
    'Starts the background worker that encrypts (or reseals) stored values of protected columns, unless one runs or nothing is left; true when one runs. maintain() calls it.';
REVOKE ALL ON FUNCTION secpolicy.resume_protection() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.resume_protection() TO secpolicy_admin;

-- One batch of the pass over a protected column: the rows of the next
-- blocks (about batch_rows rows) whose value is in clear or under an old
-- key are rewritten through the trigger (UPDATE ... SET col = col), and the
-- pass moves on.  A pass that reaches the end of the table checks that no
-- value was left behind (written while the trigger was disabled, or moved
-- by CLUSTER or VACUUM FULL) and then marks the column protected, or starts
-- again.  Each batch commits with its caller: the worker runs one per
-- transaction.  Returns how many values it rewrote.
CREATE FUNCTION secpolicy.protect_batch(tbl regclass, col name, batch_rows integer DEFAULT 10000)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p secpolicy.protected_columns;
    cur text := (SELECT k.key_id FROM secpolicy.key_status() k);
    nblocks bigint;
    per_block float8;
    span bigint;
    n integer;
    left_behind boolean;
BEGIN
    IF tbl IS NULL OR col IS NULL OR batch_rows IS NULL OR batch_rows < 1 THEN
        RAISE EXCEPTION 'protect_batch needs a table, a column and a positive batch size' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO p FROM secpolicy.protected_columns c
     WHERE secpolicy.protected_table(c) = tbl AND c.column_name = col::text FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table % is not protected', col, tbl USING ERRCODE = '42704';
    END IF;
    IF p.state = 'protected' THEN
        RETURN 0;
    END IF;
    IF cur IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = tbl AND t.tgname = 'zz_secpolicy_protect'
                      AND t.tgenabled <> 'D') THEN
        RAISE EXCEPTION 'the trigger zz_secpolicy_protect of % is missing or disabled', tbl USING ERRCODE = '55000',
            HINT = 'ALTER TABLE ... ENABLE TRIGGER zz_secpolicy_protect; the values are encrypted by it.';
    END IF;
    IF p.key_id IS DISTINCT FROM cur THEN
        -- the sealing key changed during the pass: start again under the new one
        p.key_id := cur;
        p.next_block := 0;
    END IF;
    nblocks := pg_relation_size(tbl) / current_setting('block_size')::bigint;
    IF p.next_block >= nblocks THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t WHERE secpolicy.needs_encryption(t.%I, $1))', tbl, col)
           INTO left_behind USING cur;
        IF left_behind THEN
            UPDATE secpolicy.protected_columns c
               SET key_id = cur, next_block = 0, last_batch_at = now() WHERE c.id = p.id;
        ELSE
            UPDATE secpolicy.protected_columns c
               SET state = 'protected', key_id = cur, next_block = 0, last_batch_at = now(), pass_finished_at = now()
             WHERE c.id = p.id;
            PERFORM secpolicy.audit(CASE p.state WHEN 'encrypting' THEN 'column_encrypted' ELSE 'column_resealed' END,
                                    NULL, NULL, NULL,
                                    jsonb_build_object('table', tbl::text, 'column', col, 'key_id', cur,
                                                       'values_written', p.values_written));
        END IF;
        RETURN 0;
    END IF;
    SELECT CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 50 END
      INTO per_block FROM pg_class c WHERE c.oid = tbl;
    span := greatest(1, ceil(batch_rows / per_block))::bigint;
    PERFORM secpolicy.set_reseal_target(tbl, col);
    EXECUTE format('UPDATE %s t SET %I = t.%I WHERE t.ctid >= $1 AND t.ctid < $2 AND secpolicy.needs_encryption(t.%I, $3)',
                   tbl, col, col, col)
       USING format('(%s,0)', p.next_block)::tid, format('(%s,0)', least(p.next_block + span, 4294967295))::tid, cur;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM secpolicy.set_reseal_target(NULL, NULL);
    UPDATE secpolicy.protected_columns c
       SET key_id = cur, next_block = p.next_block + span, values_written = c.values_written + n,
           last_batch_at = now()
     WHERE c.id = p.id;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.protect_batch(regclass, name, integer) IS
    'Encrypts (or reseals) the stored values of the next batch of rows of a protected column; returns how many it rewrote. The background worker calls it; call it yourself where no worker can run.';
REVOKE ALL ON FUNCTION secpolicy.protect_batch(regclass, name, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.protect_batch(regclass, name, integer) TO secpolicy_admin;

-- Internal: what the worker runs in each of its transactions; false when no
-- column has work left.
CREATE FUNCTION secpolicy.protection_step(batch_rows integer DEFAULT 10000) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p secpolicy.protected_columns;
BEGIN
    SELECT * INTO p FROM secpolicy.protected_columns c
     WHERE c.state <> 'protected' AND secpolicy.protected_table(c) IS NOT NULL
     ORDER BY c.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM secpolicy.protect_batch(secpolicy.protected_table(p), p.column_name::name, batch_rows);
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.protection_step(integer) IS
    'Internal (the background worker): one batch of the first column with work left; false when there is none.';
REVOKE ALL ON FUNCTION secpolicy.protection_step(integer) FROM PUBLIC;

-- --------------------------------------------------------- administration -

CREATE FUNCTION secpolicy.protect_column(tbl regclass, col name, access text, searchable boolean DEFAULT false)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel record;
    att record;
    pk text[];
    bad text;
    bidx text;
BEGIN
    IF tbl IS NULL OR col IS NULL OR protect_column.access IS NULL OR protect_column.searchable IS NULL THEN
        RAISE EXCEPTION 'protect_column needs a table, a column, an access and whether it is searchable'
            USING ERRCODE = '22004';
    END IF;
    IF protect_column.access !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid access name' USING ERRCODE = '22023',
            DETAIL = 'Access names are 1 to 63 characters: a lower-case letter, then letters, digits, _ . : -';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname, c.relname INTO rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid USING ERRCODE = '42P01';
    END IF;
    IF rel.nspname IN ('pg_catalog', 'information_schema', 'secpolicy') OR rel.nspname LIKE 'pg\_toast%' THEN
        RAISE EXCEPTION 'cannot protect columns of %', tbl USING ERRCODE = '42501',
            DETAIL = 'System and secpolicy tables are not application tables.';
    END IF;
    IF rel.relkind <> 'r' THEN
        RAISE EXCEPTION '% is not an ordinary table', tbl USING ERRCODE = '42809',
            DETAIL = 'Columns of ordinary tables can be protected (not of views, partitioned or foreign tables).';
    END IF;
    IF rel.relpersistence = 't' THEN
        RAISE EXCEPTION 'cannot protect columns of the temporary table %', tbl USING ERRCODE = '0A000';
    END IF;
    SELECT a.attnum, a.atttypid, a.atttypmod INTO att
      FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', col, tbl USING ERRCODE = '42703';
    END IF;
    IF NOT (att.atttypid = 'text'::regtype OR (att.atttypid = 'varchar'::regtype AND att.atttypmod = -1)) THEN
        RAISE EXCEPTION 'column "%" of % is of type %', col, tbl, format_type(att.atttypid, att.atttypmod)
            USING ERRCODE = '42804',
                  DETAIL = 'Only text columns (and varchar without a length) can be protected: they hold the ciphertext.';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY k.n),
           string_agg(format('%I (%s)', a.attname, format_type(a.atttypid, a.atttypmod)), ', ')
               FILTER (WHERE (CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END) NOT IN
                       ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype,
                        'text'::regtype, 'varchar'::regtype, 'uuid'::regtype))
      INTO pk, bad
      FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      JOIN pg_type ty ON ty.oid = a.atttypid
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF pk IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', tbl USING ERRCODE = '55000',
            DETAIL = 'The values of a protected column are bound to their row''s primary key.';
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'the primary key of % has a column of a type that cannot bind values: %', tbl, bad
            USING ERRCODE = '0A000',
                  DETAIL = 'Primary key columns must be smallint, integer, bigint, numeric, text, varchar or uuid (their text is the same in every database).';
    END IF;
    IF EXISTS (SELECT 1 FROM secpolicy.protected_columns c
                WHERE c.table_schema = rel.nspname AND c.table_name = rel.relname AND c.column_name = col::text) THEN
        RAISE EXCEPTION 'column "%" of % is already protected', col, tbl USING ERRCODE = '42710';
    END IF;
    IF col::text = ANY (pk) THEN
        RAISE EXCEPTION 'column "%" of % is part of its primary key', col, tbl USING ERRCODE = '55000',
            DETAIL = 'The primary key binds the protected values of its row; it stays in clear.';
    END IF;
    -- what would see ciphertext instead of the plaintext it was made for
    SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO bad
      FROM pg_depend d
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl AND d.refobjsubid = att.attnum
       AND (d.classid IN ('pg_class'::regclass, 'pg_constraint'::regclass)
            OR (d.classid = 'pg_attrdef'::regclass
                AND d.objid NOT IN (SELECT ad.oid FROM pg_attrdef ad WHERE ad.adrelid = tbl AND ad.adnum = att.attnum)));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'column "%" of % is used by %', col, tbl, bad USING ERRCODE = '55000',
            DETAIL = 'Indexes, constraints and generated columns would see ciphertext.',
            HINT = 'Drop them first; a searchable column''s blind index (<column>_bidx) can carry a unique index instead.';
    END IF;
    IF protect_column.searchable THEN
        bidx := col::text || '_bidx';
        IF octet_length(bidx) > 63 THEN
            RAISE EXCEPTION 'the name of the blind index column "%" is too long', bidx USING ERRCODE = '42622';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = bidx::name
                      AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid <> 'bytea'::regtype) THEN
            RAISE EXCEPTION 'column "%" of % exists and is not of type bytea', bidx, tbl USING ERRCODE = '42701';
        END IF;
    END IF;
    IF (SELECT k.key_id FROM secpolicy.key_status() k) IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file (see README, "The sealing key").';
    END IF;

    INSERT INTO secpolicy.protected_columns (table_schema, table_name, column_name, access, searchable, index_key, key_id)
    VALUES (rel.nspname, rel.relname, col::text, protect_column.access, protect_column.searchable,
            CASE WHEN protect_column.searchable THEN secpolicy.new_index_key() END,
            (SELECT k.key_id FROM secpolicy.key_status() k));
    IF protect_column.searchable THEN
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = bidx::name
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I bytea', tbl, bidx);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid = tbl AND a.attname = bidx::name) THEN
            EXECUTE format('CREATE INDEX ON %s (%I)', tbl, bidx);
        END IF;
    END IF;
    PERFORM secpolicy.install_protect_trigger(tbl);
    PERFORM secpolicy.refresh_reveal_views(tbl);
    PERFORM secpolicy.audit('column_protected', NULL, NULL, NULL,
                            jsonb_build_object('table', tbl::text, 'column', col, 'access', protect_column.access,
                                               'searchable', protect_column.searchable));
    RETURN secpolicy.resume_protection();
END
$$;
COMMENT ON FUNCTION secpolicy.protect_column(regclass, name, text, boolean) IS
    'Protects a text column: every value written in clear is encrypted by a trigger, the values already stored by a background worker in batches (see protection_status); reveal() shows them to holders of the access. Searchable columns get a blind index in <col>_bidx. Returns whether the worker runs.';
REVOKE ALL ON FUNCTION secpolicy.protect_column(regclass, name, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.protect_column(regclass, name, text, boolean) TO secpolicy_admin;

CREATE FUNCTION secpolicy.unprotect_column(tbl regclass, col name, reason text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    why text := secpolicy.require_reason(unprotect_column.reason);
    p secpolicy.protected_columns;
    n bigint;
BEGIN
    IF tbl IS NULL OR col IS NULL THEN
        RAISE EXCEPTION 'unprotect_column needs a table and a column' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO p FROM secpolicy.protected_columns c
     WHERE secpolicy.protected_table(c) = tbl AND c.column_name = col::text FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table % is not protected', col, tbl USING ERRCODE = '42704';
    END IF;
    DELETE FROM secpolicy.protected_columns c WHERE c.id = p.id;
    PERFORM secpolicy.install_protect_trigger(tbl);
    EXECUTE format('UPDATE %s t SET %I = secpolicy.open_value(%L::regclass, %L::name, t.%I, %s) WHERE left(t.%I, 5) = %L',
                   tbl, col, tbl::text, col, col, secpolicy.row_key_expr(tbl, 't'), col, '$sp2$');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF p.searchable AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = tbl
                                   AND a.attname = (col::text || '_bidx')::name AND NOT a.attisdropped) THEN
        EXECUTE format('ALTER TABLE %s DROP COLUMN %I', tbl, col::text || '_bidx');
    END IF;
    PERFORM secpolicy.refresh_reveal_views(tbl);
    PERFORM secpolicy.audit('column_unprotected', NULL, NULL, why,
                            jsonb_build_object('table', tbl::text, 'column', col, 'access', p.access,
                                               'values_decrypted', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.unprotect_column(regclass, name, text) IS
    'Stops protecting a column: its values are decrypted back in place (in one transaction), its blind index column dropped; returns how many values were decrypted.';
REVOKE ALL ON FUNCTION secpolicy.unprotect_column(regclass, name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.unprotect_column(regclass, name, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.reseal_columns() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur text := (SELECT k.key_id FROM secpolicy.key_status() k);
    n integer;
BEGIN
    IF cur IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file to the new key and secpolicy.previous_key_file to the old one.';
    END IF;
    -- the blind index keys: resealed now (the blind indexes stay as they are)
    UPDATE secpolicy.protected_columns c SET index_key = secpolicy.reseal(c.index_key)
     WHERE c.index_key IS NOT NULL AND secpolicy.sealed_key_id(c.index_key) IS DISTINCT FROM cur;
    -- the values: a pass over every column, by the worker
    UPDATE secpolicy.protected_columns c
       SET state = CASE WHEN c.state = 'encrypting' THEN 'encrypting' ELSE 'resealing' END,
           key_id = cur, next_block = 0, values_written = 0, pass_started_at = now(),
           last_batch_at = NULL, pass_finished_at = NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM secpolicy.audit('columns_resealed', NULL, NULL, NULL, jsonb_build_object('key_id', cur, 'columns', n));
    PERFORM secpolicy.resume_protection();
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.reseal_columns() IS
    'Key rotation: re-encrypts every protected column under the current key (secpolicy.key_file), online, in batches, by the background worker; returns how many columns it covers. Keep secpolicy.previous_key_file until protection_status shows them protected.';
REVOKE ALL ON FUNCTION secpolicy.reseal_columns() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.reseal_columns() TO secpolicy_admin;

CREATE FUNCTION secpolicy.grant_reveal(role regrole, access text, reason text DEFAULT NULL) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rname text := (SELECT r.rolname FROM pg_roles r WHERE r.oid = grant_reveal.role);
BEGIN
    IF grant_reveal.role IS NULL THEN
        RAISE EXCEPTION 'grant_reveal needs a role' USING ERRCODE = '22004';
    END IF;
    IF grant_reveal.access IS NULL OR grant_reveal.access !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid access name' USING ERRCODE = '22023',
            DETAIL = 'Access names are 1 to 63 characters: a lower-case letter, then letters, digits, _ . : -';
    END IF;
    INSERT INTO secpolicy.reveal_grants (role_name, access, reason)
    VALUES (rname, grant_reveal.access, grant_reveal.reason)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- what calling reveal() (through a revealed view) takes
    IF rname NOT IN ('secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA secpolicy TO %I', rname);
        EXECUTE format('GRANT EXECUTE ON FUNCTION secpolicy.reveal(regclass, name, text, text) TO %I', rname);
    END IF;
    PERFORM secpolicy.audit('reveal_granted', NULL, NULL, grant_reveal.reason,
                            jsonb_build_object('role', rname, 'access', grant_reveal.access));
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.grant_reveal(regrole, text, text) IS
    'Lets a database role (and its members) reveal the columns protected with an access; also grants it what calling reveal() takes. False when it already could.';
REVOKE ALL ON FUNCTION secpolicy.grant_reveal(regrole, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.grant_reveal(regrole, text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.revoke_reveal(role regrole, access text, reason text DEFAULT NULL) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rname text := (SELECT r.rolname FROM pg_roles r WHERE r.oid = revoke_reveal.role);
BEGIN
    DELETE FROM secpolicy.reveal_grants g WHERE g.role_name = rname AND g.access = revoke_reveal.access;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF rname NOT IN ('secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst')
       AND NOT EXISTS (SELECT 1 FROM secpolicy.reveal_grants g WHERE g.role_name = rname) THEN
        EXECUTE format('REVOKE EXECUTE ON FUNCTION secpolicy.reveal(regclass, name, text, text) FROM %I', rname);
        EXECUTE format('REVOKE USAGE ON SCHEMA secpolicy FROM %I', rname);
    END IF;
    PERFORM secpolicy.audit('reveal_revoked', NULL, NULL, revoke_reveal.reason,
                            jsonb_build_object('role', rname, 'access', revoke_reveal.access));
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.revoke_reveal(regrole, text, text) IS
    'Takes back grant_reveal(); false when the role did not hold it.';
REVOKE ALL ON FUNCTION secpolicy.revoke_reveal(regrole, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.revoke_reveal(regrole, text, text) TO secpolicy_admin;

CREATE VIEW secpolicy.protection_status AS
    SELECT c.table_schema, c.table_name, c.column_name, c.access, c.searchable, c.state, c.key_id,
           coalesce((SELECT t.tgenabled <> 'D' FROM pg_catalog.pg_trigger t
                      WHERE t.tgrelid = secpolicy.protected_table(c) AND t.tgname = 'zz_secpolicy_protect'), false)
               AS trigger_enabled,
           c.next_block AS blocks_done,
           pg_catalog.pg_relation_size(secpolicy.protected_table(c))
               / pg_catalog.current_setting('block_size')::bigint AS blocks_total,
           CASE WHEN c.state = 'protected' THEN 100.0
                ELSE round(100.0 * least(c.next_block, greatest(1, pg_catalog.pg_relation_size(secpolicy.protected_table(c))
                                                                     / pg_catalog.current_setting('block_size')::bigint))
                           / greatest(1, pg_catalog.pg_relation_size(secpolicy.protected_table(c))
                                         / pg_catalog.current_setting('block_size')::bigint), 1) END AS progress_pct,
           c.values_written, c.pass_started_at, c.last_batch_at, c.pass_finished_at, c.protected_at, c.protected_by,
           (SELECT a.pid FROM pg_catalog.pg_stat_activity a
             WHERE a.backend_type = 'secpolicy encryption'
               AND a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
             LIMIT 1) AS worker_pid
      FROM secpolicy.protected_columns c;
COMMENT ON VIEW secpolicy.protection_status IS
    'Per protected column: its access, whether its trigger is enabled, and the progress of the pass that encrypts (or reseals) its stored values.';
GRANT SELECT ON secpolicy.protection_status TO secpolicy_admin;

-- ------------------------------------------------------- DDL on the tables

-- Protected values are bound to their schema, table and column names: a
-- rename, a move or a change of type is refused while a column is protected.
-- A dropped table or column leaves the register, and the trigger of a table
-- whose protected columns changed is remade (only where it exists: a restore
-- creates it last, from the dump).
CREATE FUNCTION secpolicy.protected_ddl() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record;
    bad text;
    t regclass;
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        IF NOT EXISTS (SELECT 1 FROM secpolicy.protected_columns) THEN
            RETURN;
        END IF;
        FOR o IN SELECT * FROM pg_event_trigger_dropped_objects() d WHERE d.object_type IN ('table', 'table column') LOOP
            IF o.object_type = 'table' THEN
                DELETE FROM secpolicy.protected_columns c
                 WHERE c.table_schema = o.address_names[1] AND c.table_name = o.address_names[2];
            ELSIF o.original AND EXISTS (SELECT 1 FROM secpolicy.protected_columns c
                                          WHERE c.table_schema = o.address_names[1] AND c.table_name = o.address_names[2]
                                            AND c.searchable AND c.column_name || '_bidx' = o.address_names[3]) THEN
                RAISE EXCEPTION 'cannot drop the blind index column %', o.object_identity USING ERRCODE = '55000',
                    HINT = 'It belongs to a protected column: unprotect_column() drops it.';
            ELSE
                DELETE FROM secpolicy.protected_columns c
                 WHERE c.table_schema = o.address_names[1] AND c.table_name = o.address_names[2]
                   AND c.column_name = o.address_names[3];
            END IF;
        END LOOP;
        -- a protected table keeps its primary key (it binds the values)
        SELECT string_agg(DISTINCT format('%I.%I', c.table_schema, c.table_name), ', ') INTO bad
          FROM pg_event_trigger_dropped_objects() d
          JOIN secpolicy.protected_columns c
            ON c.table_schema = d.address_names[1] AND c.table_name = d.address_names[2]
         WHERE d.object_type IN ('table constraint', 'index')
           AND secpolicy.protected_table(c) IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = secpolicy.protected_table(c) AND i.indisprimary);
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'cannot drop the primary key of a table with protected columns' USING ERRCODE = '55000',
                DETAIL = format('Protected values of %s are bound to their row''s primary key.', bad),
                HINT = 'Unprotect its columns first (secpolicy.unprotect_column).';
        END IF;
        RETURN;
    END IF;
    SELECT string_agg(format('%I.%I.%I', c.table_schema, c.table_name, c.column_name), ', ') INTO bad
      FROM secpolicy.protected_columns c
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = secpolicy.protected_table(c) AND a.attname = c.column_name::name
                          AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.atttypid IN ('text'::regtype, 'varchar'::regtype) AND a.atttypmod = -1);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'cannot rename, move or change the type of a protected table or column' USING ERRCODE = '55000',
            DETAIL = format('Protected values are bound to the names of %s.', bad),
            HINT = 'Unprotect the column first (secpolicy.unprotect_column), then protect it again.';
    END IF;
    -- the trigger of a table whose protected columns changed (a dropped one)
    FOR t IN SELECT DISTINCT d.objid::regclass
               FROM pg_event_trigger_ddl_commands() d
               JOIN pg_trigger g ON g.tgrelid = d.objid AND g.tgname = 'zz_secpolicy_protect'
              WHERE d.classid = 'pg_class'::regclass
                AND g.tgargs IS DISTINCT FROM secpolicy.protect_trigger_args(d.objid::regclass) LOOP
        PERFORM secpolicy.install_protect_trigger(t);
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.protected_ddl() IS
    'Event trigger: refuses to rename, move or retype a protected table or column; forgets dropped ones.';
REVOKE ALL ON FUNCTION secpolicy.protected_ddl() FROM PUBLIC;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'secpolicy_protected_ddl') THEN
        CREATE EVENT TRIGGER secpolicy_protected_ddl ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA')
            EXECUTE FUNCTION secpolicy.protected_ddl();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'secpolicy_protected_drop') THEN
        CREATE EVENT TRIGGER secpolicy_protected_drop ON sql_drop
            WHEN TAG IN ('DROP TABLE', 'ALTER TABLE', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION secpolicy.protected_ddl();
    END IF;
END
$$;
