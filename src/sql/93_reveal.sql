-- Reading protected columns: the revealed views, and database roles that may
-- reveal an access (reveal() itself is in C: src/columns.c; the columns in
-- 93_protected_columns.sql).

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
