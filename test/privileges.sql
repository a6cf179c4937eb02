-- pgTAP: security invariants 2 and 3.
--   Through SET ROLE to members of secpolicy_app, secpolicy_analyst and
--   secpolicy_admin: the app reads no hash, secret, session, reset token or
--   log and writes no table, yet can call the flows; the analyst can call the
--   report functions (disclosures_of and incident_affected_subjects among
--   them) and read the report views (disclosures among them), nothing else
--   (no flow, no table); the app may call reveal() and blind_index(), not the
--   administration or internals of protected columns; the admin reads no
--   password hash, token digest or blind index key and writes no table directly.  PUBLIC has no EXECUTE on any function, no
--   privilege on any relation and no USAGE on the schema; a role outside the
--   groups can call nothing.  Every SECURITY DEFINER function pins
--   search_path = pg_catalog, pg_temp, and hostile functions, operators and
--   temporary tables in the caller's search_path change no answer of the flows.
BEGIN;
\ir lib/helpers.psql
SELECT plan(87);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET require_mfa = false;

CREATE ROLE regress_pw_app IN ROLE secpolicy_app;
CREATE ROLE regress_pw_analyst IN ROLE secpolicy_analyst;
CREATE ROLE regress_pw_admin IN ROLE secpolicy_admin;
CREATE ROLE regress_pw_nobody;

-- run a statement as a role: '00000' or the SQLSTATE it raised
-- run a query as a role: its first value as text, or 'ERROR <SQLSTATE>'
CREATE FUNCTION pg_temp.value_as(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    BEGIN
        EXECUTE q INTO v;
    EXCEPTION WHEN OTHERS THEN
        v := 'ERROR ' || SQLSTATE;
    END;
    RESET ROLE;
    RETURN v;
END
$$;

SELECT secpolicy.create_user('quinn', 'Bunting-Pass-01x') AS quinn \gset
SELECT secpolicy.create_user('rhea', 'Shrike-Pass-01x') AS rhea \gset

-- the application role: reads
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT password_hash FROM secpolicy.users'), '42501', 'app: users.password_hash is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT id, username FROM secpolicy.users'), '42501', 'app: users is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.totp_credentials'), '42501', 'app: totp_credentials is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.recovery_codes'), '42501', 'app: recovery_codes is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.sessions'), '42501', 'app: sessions is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.password_resets'), '42501', 'app: password_resets is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.password_history'), '42501', 'app: password_history is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.mfa_challenges'), '42501', 'app: mfa_challenges is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.dummy_hash'), '42501', 'app: dummy_hash is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.login_attempts'), '42501', 'app: login_attempts is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.audit_log'), '42501', 'app: audit_log is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT * FROM secpolicy.unknown_user_failures'), '42501', 'app: unknown_user_failures is unreadable');

-- the application role: writes
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$INSERT INTO secpolicy.users (username, password_hash) VALUES ('mallory', 'Mallory-Pass-01x')$$),
          '42501', 'app: cannot INSERT into users');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'UPDATE secpolicy.users SET failed_attempts = 0'), '42501', 'app: cannot UPDATE users');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'UPDATE secpolicy.policy SET max_failed_attempts = 100'), '42501', 'app: cannot UPDATE the policy');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'DELETE FROM secpolicy.sessions'), '42501', 'app: cannot DELETE sessions');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$UPDATE secpolicy.password_resets SET expires_at = now() + interval '1 year'$$), '42501',
          'app: cannot UPDATE password_resets');
SELECT is(pg_temp.sqlstate_as('regress_pw_app',
          $$INSERT INTO secpolicy.audit_log (logged_at, actor, action, prev_hash, row_hash) VALUES (now(), 'x', 'x', '\x', '\x')$$),
          '42501', 'app: cannot INSERT into audit_log');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$INSERT INTO secpolicy.login_attempts (success, outcome) VALUES (true, 'ok')$$), '42501',
          'app: cannot INSERT into login_attempts');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$DELETE FROM secpolicy.password_blocklist$$), '42501', 'app: cannot edit the blocklist');
SELECT is((SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'secpolicy' AND c.relkind IN ('r', 'p')
              AND has_table_privilege('secpolicy_app', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),
          NULL, 'app: no write privilege on any table');
SELECT is((SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'secpolicy' AND c.relkind IN ('r', 'p')
              AND (has_table_privilege('secpolicy_app', c.oid, 'SELECT')
                   OR has_any_column_privilege('secpolicy_app', c.oid, 'SELECT'))),
          'policy', 'app: the policy is the only table it can read');
SELECT is((SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'secpolicy' AND c.relkind = 'S'
              AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('secpolicy_app', c.oid, 'USAGE, SELECT, UPDATE') END),
          NULL, 'app: no privilege on any sequence');

-- the application role: the flows work
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT status FROM secpolicy.login('quinn', 'Bunting-Pass-01x')$$), 'ok', 'app: login');
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT status FROM secpolicy.login('quinn', 'Bunting-Pass-02x')$$), 'invalid_credentials',
          'app: login with a wrong password');
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT status FROM secpolicy.change_password('quinn', 'Bunting-Pass-01x', 'Bunting-Pass-02x')$$), 'ok',
          'app: change_password');
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT status FROM secpolicy.reset_password(secpolicy.request_password_reset('quinn'), 'Bunting-Pass-03x')$$),
          'ok', 'app: request_password_reset and reset_password');
SELECT pg_temp.value_as('regress_pw_app', $$SELECT session_token FROM secpolicy.login('quinn', 'Bunting-Pass-03x')$$) AS app_tok \gset
SELECT is(pg_temp.value_as('regress_pw_app', format('SELECT status FROM secpolicy.session_touch(%L)', :'app_tok'))
          || '/' || pg_temp.value_as('regress_pw_app', format('SELECT secpolicy.logout(%L)::text', :'app_tok')),
          'active/true', 'app: session_touch and logout');
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT secpolicy.verify_password('x', secpolicy.hash_password('Bunting-Pass-04x'))::text$$), 'false',
          'app: hash_password and verify_password');
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT secpolicy.password_violations('zqxvw')::text$$), '{too_short,missing_upper,missing_digit,missing_symbol}',
          'app: password_violations');
SELECT is(pg_temp.value_as('regress_pw_app', $$SELECT max_failed_attempts::text FROM secpolicy.policy$$), '5', 'app: can read the policy');

-- the application role: nothing internal or administrative
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$SELECT secpolicy.create_user('mallory', 'Mallory-Pass-01x')$$), '42501', 'app: cannot create_user');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$SELECT secpolicy.unlock_user('quinn')$$), '42501', 'app: cannot unlock_user');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', format('SELECT secpolicy.write_password(%s, %L, %L)', :quinn, 'Mallory-Pass-01x', 'plaintext')),
          '42501', 'app: cannot call write_password');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', format('SELECT secpolicy.register_failure(%s)', :quinn)), '42501', 'app: cannot call register_failure');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', format('SELECT secpolicy.complete_login(%s, NULL, NULL, true)', :quinn)), '42501',
          'app: cannot call complete_login');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$SELECT secpolicy.audit('x', NULL, NULL)$$), '42501', 'app: cannot write audit rows');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', 'SELECT secpolicy.hash_stats()'), '42501', 'app: cannot call hash_stats');
SELECT is(pg_temp.sqlstate_as('regress_pw_app', $$SELECT secpolicy.apply_preset('nist')$$), '42501', 'app: cannot change the policy through apply_preset');
SELECT is((SELECT string_agg(f, ',') FROM unnest(ARRAY[
              'secpolicy.write_password(bigint,text,text)', 'secpolicy.register_failure(bigint)',
              'secpolicy.unknown_user_attempt(text,text)', 'secpolicy.complete_login(bigint,inet,text,boolean)',
              'secpolicy.start_session(bigint,inet,text,boolean)', 'secpolicy.end_sessions(bigint,text,bigint)',
              'secpolicy.record_attempt(bigint,text,inet,text,boolean,text,text,bigint)', 'secpolicy.try_set_password(bigint,text)',
              'secpolicy.set_password_or_raise(bigint,text,text)', 'secpolicy.user_id_of(text)', 'secpolicy.random_token(text)',
              'secpolicy.token_digest(text)', 'secpolicy.refresh_dummy_hash()', 'secpolicy.audit(text,bigint,text,text,jsonb)',
              'secpolicy.create_user(text,text,boolean)', 'secpolicy.disable_user(text,text)', 'secpolicy.admin_set_password(text,text,text)',
              'secpolicy.import_password_hash(text,text,text)', 'secpolicy.hash_stats()',
              'secpolicy.guess_check(text,integer,integer,text)', 'secpolicy.guess_end(text)', 'secpolicy.guess_clear(text)',
              'secpolicy.may_guess(bigint,integer,boolean)', 'secpolicy.lock_account(bigint)', 'secpolicy.authenticate(text,text,inet,text,text)',
              'secpolicy.login(bigint,text,text,inet,text)', 'secpolicy.session_touch(bigint,text)',
              'secpolicy.reset_password(bigint,text,text)', 'secpolicy.clear_guesses(bigint,text[])', 'secpolicy.distribute(integer)',
              'secpolicy.citus_prepare_node()',
              'secpolicy.protect_column(regclass,name,text,boolean)', 'secpolicy.unprotect_column(regclass,name,text)',
              'secpolicy.grant_reveal(regrole,text,text)', 'secpolicy.reseal_columns()', 'secpolicy.protect_batch(regclass,name,integer)',
              'secpolicy.open_value(regclass,name,text,text)', 'secpolicy.record_disclosure(text,bigint,bigint,text,text,text,boolean,text[],timestamptz)',
              'secpolicy.set_reseal_target(regclass,name)', 'secpolicy.new_index_key()', 'secpolicy.start_protection_worker(oid)',
              'secpolicy.column_index_key(text,text,text)', 'secpolicy.disclosures_of(regclass,text)']) f
            WHERE has_function_privilege('secpolicy_app', f::regprocedure, 'EXECUTE')),
          NULL, 'app: no EXECUTE on internal or admin functions');
SELECT is((SELECT array_agg(f ORDER BY f) FROM unnest(ARRAY['secpolicy.reveal(regclass,name,text,text)',
              'secpolicy.blind_index(regclass,name,text)']) f
            WHERE has_function_privilege('secpolicy_app', f::regprocedure, 'EXECUTE')),
          ARRAY['secpolicy.blind_index(regclass,name,text)', 'secpolicy.reveal(regclass,name,text,text)'],
          'app: may reveal protected values and search blind indexes');

-- the analyst role
SELECT is((SELECT string_agg(f, ',') FROM unnest(ARRAY[
              'secpolicy.login(text,text,inet,text)', 'secpolicy.verify_mfa(text,text,inet)', 'secpolicy.totp_enroll(text)',
              'secpolicy.totp_confirm(text,text)', 'secpolicy.change_password(text,text,text,inet,text,text)',
              'secpolicy.request_password_reset(text,inet)', 'secpolicy.reset_password(text,text)', 'secpolicy.session_touch(text)',
              'secpolicy.logout(text)', 'secpolicy.list_sessions(text)', 'secpolicy.end_other_sessions(text)',
              'secpolicy.hash_password(text)', 'secpolicy.verify_password(text,text)', 'secpolicy.password_needs_rehash(text)',
              'secpolicy.password_violations(text,text)', 'secpolicy.create_user(text,text,boolean)', 'secpolicy.disable_user(text,text)',
              'secpolicy.unlock_user(text,text)', 'secpolicy.write_password(bigint,text,text)']) f
            WHERE has_function_privilege('secpolicy_analyst', f::regprocedure, 'EXECUTE')),
          NULL, 'analyst: no EXECUTE on any flow, building block or admin function');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', $$SELECT secpolicy.login('quinn', 'Bunting-Pass-03x')$$), '42501', 'analyst: cannot call login');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', $$SELECT secpolicy.change_password('quinn', 'Bunting-Pass-03x', 'Bunting-Pass-05x')$$), '42501',
          'analyst: cannot call change_password');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', $$SELECT secpolicy.request_password_reset('quinn')$$), '42501', 'analyst: cannot request a reset');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', $$SELECT secpolicy.session_touch('sps_x')$$), '42501', 'analyst: cannot call session_touch');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', $$SELECT secpolicy.verify_password('x', 'y')$$), '42501', 'analyst: cannot call verify_password');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', 'SELECT username FROM secpolicy.users'), '42501', 'analyst: cannot read users');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', 'SELECT * FROM secpolicy.login_attempts'), '42501', 'analyst: cannot read the raw attempt log');
SELECT is(pg_temp.sqlstate_as('regress_pw_analyst', 'SELECT * FROM secpolicy.sessions'), '42501', 'analyst: cannot read sessions');
SELECT is((SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'secpolicy' AND c.relkind IN ('r', 'p')
              AND (has_table_privilege('secpolicy_analyst', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
                   OR has_any_column_privilege('secpolicy_analyst', c.oid, 'SELECT, INSERT, UPDATE'))),
          NULL, 'analyst: no privilege on any table');

SELECT is((SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
            WHERE p.pronamespace = 'secpolicy'::regnamespace AND has_function_privilege('secpolicy_analyst', p.oid, 'EXECUTE')),
          ARRAY['attack_patterns', 'compliance_report', 'disclosures_of', 'failed_login_report', 'failed_logins_by_source_report',
                'failed_logins_by_user_report', 'failure_span', 'incident_affected_subjects', 'rollup_spraying_sources',
                'rollup_touched_names', 'rollup_touched_sources', 'rollup_windows_fresh', 'verify_audit_chain'],
          'analyst: EXECUTE on the report functions only');
SELECT is((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
            WHERE c.relnamespace = 'secpolicy'::regnamespace
              AND (has_table_privilege('secpolicy_analyst', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                   OR has_any_column_privilege('secpolicy_analyst', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))),
          ARRAY['access_review', 'account_status', 'compliance', 'credentials_due_rotation', 'disclosures', 'failed_logins_by_source',
                'failed_logins_by_user', 'failed_logins_daily', 'incident_report', 'incidents_due', 'protection_status', 'role_status', 'rollup_status'],
          'analyst: SELECT on the report views only');

-- the admin role
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT password_hash FROM secpolicy.users'), '42501', 'admin: users.password_hash is unreadable');
SELECT is(pg_temp.value_as('regress_pw_admin', $$SELECT username FROM secpolicy.users WHERE username = 'quinn'$$), 'quinn', 'admin: usernames are readable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT token_digest FROM secpolicy.sessions'), '42501', 'admin: session token digests are unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT token_digest FROM secpolicy.password_resets'), '42501', 'admin: reset token digests are unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT password_hash FROM secpolicy.password_history'), '42501', 'admin: the history is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT sealed_secret FROM secpolicy.totp_credentials'), '42501', 'admin: TOTP secrets are unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT code_digest FROM secpolicy.recovery_codes'), '42501', 'admin: recovery code digests are unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT hash FROM secpolicy.dummy_hash'), '42501', 'admin: the dummy hash is unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'SELECT index_key FROM secpolicy.protected_columns'), '42501',
          'admin: the sealed blind index keys are unreadable');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', $$UPDATE secpolicy.users SET password_hash = 'Admin-Chosen-01x'$$), '42501',
          'admin: cannot write password hashes directly');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', 'UPDATE secpolicy.users SET failed_attempts = 0'), '42501', 'admin: cannot write users directly');
SELECT is(pg_temp.value_as('regress_pw_admin', $$SELECT secpolicy.create_user('sven', 'Wagtail-Pass-01x') > 0$$), 'true', 'admin: create_user');
SELECT is(pg_temp.sqlstate_as('regress_pw_admin', $$SELECT secpolicy.login('quinn', 'Bunting-Pass-03x')$$), '42501', 'admin: login is for the app role');

-- PUBLIC and outsiders
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ',') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'secpolicy' AND has_function_privilege('public', p.oid, 'EXECUTE')),
          NULL, 'PUBLIC: no EXECUTE on any function');
SELECT is((SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'secpolicy' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND (has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                   OR has_any_column_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))),
          NULL, 'PUBLIC: no privilege on any table or view');
SELECT is((SELECT string_agg(c.relname, ',') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'secpolicy' AND c.relkind = 'S'
              AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('public', c.oid, 'USAGE, SELECT, UPDATE') END),
          NULL, 'PUBLIC: no privilege on any sequence');
SELECT is(has_schema_privilege('public', 'secpolicy', 'USAGE'), false, 'PUBLIC: no USAGE on the schema');
SELECT is(pg_temp.sqlstate_as('regress_pw_nobody', $$SELECT secpolicy.login('quinn', 'Bunting-Pass-03x')$$), '42501', 'outsider: cannot call login');
SELECT is(pg_temp.sqlstate_as('regress_pw_nobody', $$SELECT secpolicy.verify_password('x', 'y')$$), '42501', 'outsider: cannot call verify_password');
SELECT is(pg_temp.sqlstate_as('regress_pw_nobody', 'SELECT * FROM secpolicy.policy'), '42501', 'outsider: cannot read the policy');

-- SECURITY DEFINER functions pin search_path
SELECT ok((SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'secpolicy' AND p.prosecdef) >= 40,
          'the flows are SECURITY DEFINER functions');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ',') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'secpolicy' AND p.prosecdef
              AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
          NULL, 'every SECURITY DEFINER function has proconfig search_path=pg_catalog, pg_temp');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ',') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_language l ON l.oid = p.prolang
            WHERE n.nspname = 'secpolicy' AND l.lanname IN ('sql', 'plpgsql')
              AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
          NULL, 'every SQL or PL/pgSQL function pins search_path too');

-- hostile objects in the caller's search_path
SELECT secpolicy.create_user('tess', 'Dunnock-Pass-01x') AS tess \gset
SELECT count(secpolicy.login('rhea', 'Wrong-' || g)) AS locked FROM generate_series(1, 5) g \gset
CREATE SCHEMA regress_hostile;
CREATE TABLE regress_hostile.calls (fn text);
CREATE FUNCTION regress_hostile.lower(text) RETURNS text LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('lower'); SELECT 'tess'::text $$;
CREATE FUNCTION regress_hostile."left"(text, integer) RETURNS text LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('left'); SELECT 'tess'::text $$;
CREATE FUNCTION regress_hostile.length(text) RETURNS integer LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('length'); SELECT 0 $$;
CREATE FUNCTION regress_hostile.now() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('now'); SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION regress_hostile.verify_password(text, text) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('verify_password'); SELECT true $$;
CREATE FUNCTION regress_hostile.eq_text(text, text) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('=text'); SELECT true $$;
CREATE FUNCTION regress_hostile.eq_bytea(bytea, bytea) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('=bytea'); SELECT true $$;
CREATE FUNCTION regress_hostile.eq_int8(bigint, bigint) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('=bigint'); SELECT true $$;
CREATE FUNCTION regress_hostile.ge_int4(integer, integer) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('>=integer'); SELECT false $$;
CREATE FUNCTION regress_hostile.lt_int4(integer, integer) RETURNS boolean LANGUAGE sql VOLATILE AS $$
    INSERT INTO regress_hostile.calls VALUES ('<integer'); SELECT true $$;
CREATE OPERATOR regress_hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_hostile.eq_text);
CREATE OPERATOR regress_hostile.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = regress_hostile.eq_bytea);
CREATE OPERATOR regress_hostile.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_hostile.eq_int8);
CREATE OPERATOR regress_hostile.>= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = regress_hostile.ge_int4);
CREATE OPERATOR regress_hostile.< (LEFTARG = integer, RIGHTARG = integer, FUNCTION = regress_hostile.lt_int4);
CREATE TEMP TABLE users (id bigint, username text, password_hash text, failed_attempts integer, reset_required boolean);
INSERT INTO pg_temp.users VALUES (:tess, 'tess', secpolicy.hash_password('Hostile-Pass-01x'), 0, false);
CREATE TEMP TABLE policy AS SELECT * FROM secpolicy.policy;
UPDATE pg_temp.policy SET max_failed_attempts = 100, min_length = 1, require_upper = false;
CREATE TEMP TABLE dummy_hash (singleton boolean, hash text);
INSERT INTO pg_temp.dummy_hash VALUES (true, secpolicy.hash_password('Hostile-Pass-01x'));
SELECT current_setting('search_path') AS saved_path \gset
SELECT pg_catalog.set_config('search_path', 'regress_hostile, pg_temp, pg_catalog, public', true) IS NOT NULL AS hostile_on \gset
CREATE TEMP TABLE hostile_out AS
          SELECT 1 AS n, (secpolicy.login('tess', 'Dunnock-Pass-01x')).status AS v
UNION ALL SELECT 2, (secpolicy.login('tess', 'Hostile-Pass-01x')).status
UNION ALL SELECT 3, (secpolicy.login('nobody-here', 'Hostile-Pass-01x')).status
UNION ALL SELECT 4, (secpolicy.login('rhea', 'Shrike-Pass-01x')).status
UNION ALL SELECT 5, (secpolicy.session_touch('sps_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).status
UNION ALL SELECT 6, secpolicy.password_violations('zqxvw')::text
UNION ALL SELECT 7, (secpolicy.change_password('tess', 'Hostile-Pass-01x', 'Dunnock-Pass-02x')).status
UNION ALL SELECT 8, (secpolicy.reset_password('spr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'Dunnock-Pass-02x')).status
UNION ALL SELECT 9, (secpolicy.change_password('tess', 'Dunnock-Pass-01x', 'Dunnock-Pass-02x')).status
UNION ALL SELECT 10, lower('CONTROL')
UNION ALL SELECT 11, (SELECT username FROM users);
SELECT pg_catalog.set_config('search_path', :'saved_path', true) IS NOT NULL AS hostile_off \gset
SELECT is((SELECT v FROM hostile_out WHERE n = 1), 'ok', 'hostile search_path: the right password still logs in');
SELECT is((SELECT v FROM hostile_out WHERE n = 2), 'invalid_credentials', 'hostile search_path: the temp users table is not read');
SELECT is((SELECT v FROM hostile_out WHERE n = 3), 'invalid_credentials', 'hostile search_path: an unknown user stays unknown');
SELECT is((SELECT v FROM hostile_out WHERE n = 4), 'reset_required', 'hostile search_path: a locked account stays locked');
SELECT is((SELECT v FROM hostile_out WHERE n = 5), 'unknown', 'hostile search_path: a made-up session token is unknown');
SELECT is((SELECT v FROM hostile_out WHERE n = 6), '{too_short,missing_upper,missing_digit,missing_symbol}', 'hostile search_path: the policy table is the real one');
SELECT is((SELECT v FROM hostile_out WHERE n = 7), 'invalid_credentials', 'hostile search_path: change_password checks the real hash');
SELECT is((SELECT v FROM hostile_out WHERE n = 8), 'invalid_token', 'hostile search_path: a made-up reset token is invalid');
SELECT is((SELECT v FROM hostile_out WHERE n = 9), 'ok', 'hostile search_path: change_password works');
SELECT is((SELECT v FROM hostile_out WHERE n = 10) || '/' || (SELECT v FROM hostile_out WHERE n = 11), 'tess/tess',
          'control: in the caller''s own statement the hostile lower() and the temp users table did take effect');
SELECT is((SELECT string_agg(fn, ',') FROM regress_hostile.calls), 'lower',
          'no hostile function or operator was called by secpolicy (the one call is the control)');

SELECT * FROM finish();
ROLLBACK;
