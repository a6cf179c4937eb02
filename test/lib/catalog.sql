-- The catalog of the secpolicy extension in the current database, as sorted
-- text lines: every member object and everything that defines it (function
-- definitions, tables with their columns, defaults, constraints, indexes,
-- triggers, row-level security policies, views, types, sequences, grants,
-- comments, and the tables registered for pg_dump).  Two databases whose
-- outputs are equal have the same extension catalog; the upgrade test
-- compares a database updated from an older version with a fresh install.
-- Object identifiers, storage and data are left out.
\set QUIET on
\pset format unaligned
\pset tuples_only on
WITH ext AS (
    SELECT e.oid, e.extconfig, e.extcondition FROM pg_extension e WHERE e.extname = 'secpolicy'
), members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), rels AS (
    SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
), acl(oid, kind, txt) AS (
    -- privileges, in a canonical order
    SELECT c.oid, 'rel', (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a) FROM rels c
)
SELECT line FROM (
    SELECT 'member: ' || pg_describe_object(m.classid, m.objid, m.objsubid) FROM members m
    UNION ALL
    SELECT 'function: ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
           || E'\n  acl: ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a), '-')
           || E'\n  comment: ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
      FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
    UNION ALL
    SELECT format('relation: %s kind=%s persistence=%s options=%s rls=%s/%s partkey=%s bound=%s acl=%s comment=%s',
                  c.oid::regclass, c.relkind, c.relpersistence, coalesce(c.reloptions::text, '-'),
                  c.relrowsecurity, c.relforcerowsecurity,
                  coalesce(pg_get_partkeydef(c.oid), '-'), coalesce(pg_get_expr(c.relpartbound, c.oid), '-'),
                  coalesce(acl.txt, '-'), coalesce(obj_description(c.oid, 'pg_class'), '-'))
      FROM rels c LEFT JOIN acl ON acl.oid = c.oid
    UNION ALL
    SELECT format('column: %s #%s %s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%s',
                  c.oid::regclass,
                  row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  coalesce(pg_get_expr(d.adbin, d.adrelid), '-'), a.attidentity, a.attgenerated,
                  coalesce((SELECT co.collname FROM pg_collation co WHERE co.oid = a.attcollation), '-'),
                  coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x), '-'),
                  coalesce(col_description(c.oid, a.attnum), '-'))
      FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    UNION ALL
    SELECT format('constraint: %s %s %s local=%s inherited=%s deferrable=%s/%s comment=%s',
                  c.oid::regclass, co.conname, pg_get_constraintdef(co.oid), co.conislocal, co.coninhcount,
                  co.condeferrable, co.condeferred, coalesce(obj_description(co.oid, 'pg_constraint'), '-'))
      FROM rels c JOIN pg_constraint co ON co.conrelid = c.oid
    UNION ALL
    SELECT format('index: %s comment=%s', pg_get_indexdef(i.indexrelid),
                  coalesce(obj_description(i.indexrelid, 'pg_class'), '-'))
      FROM rels c JOIN pg_index i ON i.indrelid = c.oid
    UNION ALL
    SELECT format('trigger: %s enabled=%s comment=%s', pg_get_triggerdef(t.oid), t.tgenabled,
                  coalesce(obj_description(t.oid, 'pg_trigger'), '-'))
      FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT format('policy: %s %s %s %s roles=%s using=%s check=%s', c.oid::regclass, po.polname, po.polcmd,
                  po.polpermissive, (SELECT string_agg(r::regrole::text, ',' ORDER BY r::regrole::text) FROM unnest(po.polroles) r),
                  coalesce(pg_get_expr(po.polqual, po.polrelid), '-'),
                  coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '-'))
      FROM rels c JOIN pg_policy po ON po.polrelid = c.oid
    UNION ALL
    SELECT format('view: %s%s%s', c.oid::regclass, E'\n', pg_get_viewdef(c.oid, true))
      FROM rels c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence: %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
                  c.oid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                  s.seqcache, s.seqcycle,
                  coalesce((SELECT d.refobjid::regclass || '.' || a.attname FROM pg_depend d
                              JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass), '-'))
      FROM rels c JOIN pg_sequence s ON s.seqrelid = c.oid
    UNION ALL
    SELECT format('type: %s type=%s relkind=%s comment=%s', t.oid::regtype, t.typtype,
                  coalesce((SELECT r.relkind::text FROM pg_class r WHERE r.oid = t.typrelid), '-'),
                  coalesce(obj_description(t.oid, 'pg_type'), '-'))
      FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
    UNION ALL
    SELECT format('dumped: %s where %s', cfg::regclass, coalesce(cond, '-'))
      FROM ext, unnest(ext.extconfig, ext.extcondition) u(cfg, cond)
    UNION ALL
    SELECT format('schema: %s acl=%s comment=%s', n.nspname,
                  coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(n.nspacl) a), '-'),
                  coalesce(obj_description(n.oid, 'pg_namespace'), '-'))
      FROM pg_namespace n WHERE n.nspname = 'secpolicy'
    UNION ALL
    SELECT format('extension: version=%s relocatable=%s schema=%s', e.extversion, e.extrelocatable,
                  e.extnamespace::regnamespace)
      FROM pg_extension e WHERE e.extname = 'secpolicy'
) x(line)
ORDER BY line COLLATE "C";
