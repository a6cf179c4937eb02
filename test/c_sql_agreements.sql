-- pgTAP: the agreements between the C code and the SQL of the extension,
-- derived from the catalog rather than remembered.
--   - every function of the extension with a password, code, token or secret
--     input parameter is in the log redaction's list (redacted_functions());
--   - every name in that list is a function of the extension (no stale name);
--   - every column (and index) that the C code reads by name exists in the
--     extension's tables with the type the C code expects (catalog_reads()).
BEGIN;
\ir lib/helpers.psql
SELECT plan(5);

SELECT is((SELECT string_agg(DISTINCT p.proname, ',' ORDER BY p.proname) FROM pg_proc p
            WHERE p.pronamespace = 'secpolicy'::regnamespace
              AND EXISTS (SELECT 1 FROM unnest(p.proargnames, p.proargmodes) x(a, m)
                           WHERE a ~ '(password|code|token|secret)' AND coalesce(m, 'i') IN ('i', 'b', 'v'))
              AND p.proname <> ALL (secpolicy.redacted_functions())),
          NULL, 'every function with a password, code, token or secret parameter is redacted in the log');
SELECT is((SELECT string_agg(f, ',') FROM unnest(secpolicy.redacted_functions()) f
            WHERE NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'secpolicy'::regnamespace AND p.proname = f)),
          NULL, 'every name of the redaction list is a function of the extension');
SELECT cmp_ok((SELECT count(*) FROM secpolicy.catalog_reads()), '>=', 20::bigint, 'catalog_reads() lists what C reads');
SELECT is((SELECT string_agg(r.relation || '.' || coalesce(r.column_name, '') || ' ' || r.type, ', ')
             FROM secpolicy.catalog_reads() r
            WHERE r.column_name IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                               WHERE a.attrelid = to_regclass('secpolicy.' || r.relation)
                                 AND a.attname = r.column_name AND NOT a.attisdropped
                                 AND format_type(a.atttypid, a.atttypmod) = r.type)),
          NULL, 'every column the C code reads by name exists with the type it expects');
SELECT is((SELECT string_agg(r.relation, ', ') FROM secpolicy.catalog_reads() r
            WHERE r.column_name IS NULL
              AND NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                               WHERE i.indexrelid = to_regclass('secpolicy.' || r.relation)
                                 AND i.indisunique AND i.indnatts = 1 AND a.attname = 'token_digest')),
          NULL, 'the index session_touch probes is the unique index on the token digest');

SELECT * FROM finish();
ROLLBACK;
