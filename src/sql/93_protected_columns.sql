-- Protected columns: personal data of application tables encrypted by a
-- trigger, readable only through reveal() by readers who hold the column's
-- access, searchable through a blind index.  This part: the register, the C
-- functions, protect_column and unprotect_column, the guard on DDL.  The
-- encryption is in C (src/columns.c); the pass over stored values in
-- 93_protection_pass.sql (its worker: src/protect_worker.c); revealed views
-- and reveal grants in 93_reveal.sql; the record of reveals in
-- 94_disclosures.sql.
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
