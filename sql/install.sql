-- Installing the extension: schema, roles, policy row, privileges of PUBLIC.
CREATE EXTENSION secpolicy;

SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'secpolicy';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'secpolicy\_%' ORDER BY rolname;
SELECT preset, min_length, max_length, require_upper, require_lower, require_digit, require_symbol,
       history_depth, max_password_age, max_failed_attempts, require_mfa,
       session_idle_timeout, session_max_lifetime, hash_opslimit, hash_memlimit
  FROM secpolicy.policy;

-- PUBLIC can execute nothing and read nothing in the schema
SELECT p.oid::regprocedure AS function_executable_by_public
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'secpolicy' AND has_function_privilege('public', p.oid, 'EXECUTE');
SELECT c.relname AS relation_readable_by_public
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'secpolicy' AND c.relkind IN ('r', 'p', 'v', 'm')
   AND has_table_privilege('public', c.oid, 'SELECT');

-- every SECURITY DEFINER function pins search_path
SELECT p.oid::regprocedure AS definer_without_pinned_search_path
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'secpolicy' AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);
