-- Scaling out on Citus: distribute() turns an installation on a Citus
-- coordinator into a distributed one; the rest of this part is what such an
-- installation needs besides the flows (which route themselves: see
-- distributed() and account_key() in 20_hashing.sql).  Without Citus every
-- function here works on the single node or raises 55000.
--
-- The plan (citus_table_plan()):
--   * every per-account table is distributed by its user id, co-located with
--     secpolicy.users; a user id is there the account key of the username
--     (account_key(): SHA-256 of the lower-cased name), so a flow that is
--     given a username knows the shard, and tokens name the key after a "."
--   * the attempt log and the failure counters of unknown names are
--     distributed by an account key too (account_key: the account's, or the
--     one its name would have), so that an unknown name is counted on the
--     worker where its account would be: same work, same place, same time
--   * the policy, the blocklist, shared credentials and incidents are
--     reference tables (a copy on every node)
--   * the audit log is each node's own, chained on that node (its chain lock,
--     its dummy hash, its reset decoys and its maintenance state are too):
--     one global chain would serialise every node.  audit_chains() verifies
--     them all from any node.
-- The flows are distributed functions (citus_function_plan()): called on the
-- coordinator, Citus runs each on the worker owning the account, with
-- force_delegation, so that even inside a caller's transaction the row
-- locks, the argon2 work and the guess ledger are the worker's.
--
-- Triggers: Citus refuses tables with triggers unless citus.enable_unsafe_triggers
-- is on; distribute() sets it for its own transaction, because every trigger
-- of a distributed table here only reads reference tables and touches rows of
-- the same account (co-located shards on the same node), and those of the
-- reference tables act on their own node only (policy_guard deletes from the
-- relation it fires on, policy_cost_changed refreshes the node's own dummy
-- hash, policy_audit writes to the node's own audit chain), but one:
-- policy_sessions ends expired sessions cluster-wide, from the node where the
-- change was made only.  See the README, "Scaling out on Citus".

-- Internal: is this backend running work another node of a Citus cluster
-- sent it (a shard's task, a delegated call), rather than a client's?
CREATE FUNCTION secpolicy.citus_task() RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(current_setting('application_name', true), '') LIKE 'citus\_internal%';
$$;
COMMENT ON FUNCTION secpolicy.citus_task() IS
    'Internal: is this backend executing work another node of the Citus cluster sent it?';
REVOKE ALL ON FUNCTION secpolicy.citus_task() FROM PUBLIC;

-- Internal: raise 55000 unless Citus is installed in this database.
CREATE FUNCTION secpolicy.require_citus() RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed' USING ERRCODE = '55000',
            DETAIL = 'This database has no extension citus.',
            HINT = 'Install Citus from its own packages, put citus first in shared_preload_libraries on every node, CREATE EXTENSION citus, and add the workers (README, "Scaling out").';
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.require_citus() IS 'Internal: raise 55000 unless Citus is installed in this database.';
REVOKE ALL ON FUNCTION secpolicy.require_citus() FROM PUBLIC;

-- Where each table of the extension goes, in the order distribute() takes
-- them.  A table of schema secpolicy missing here stops distribute(): a new
-- table must be placed (its part says why, this list says where).
CREATE FUNCTION secpolicy.citus_table_plan(OUT table_name text, OUT placement text,
                                           OUT distribution_column text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    VALUES
        -- a copy on every node
        ('policy', 'reference', NULL),
        ('password_blocklist', 'reference', NULL),
        ('shared_credentials', 'reference', NULL),
        ('incidents', 'reference', NULL),
        -- by account, co-located with users (user id = account key)
        ('users', 'distributed', 'id'),
        ('password_history', 'distributed', 'user_id'),
        ('totp_credentials', 'distributed', 'user_id'),
        ('recovery_codes', 'distributed', 'user_id'),
        ('mfa_challenges', 'distributed', 'user_id'),
        ('sessions', 'distributed', 'user_id'),
        ('password_resets', 'distributed', 'user_id'),
        ('user_access', 'distributed', 'user_id'),
        ('shared_credential_holders', 'distributed', 'user_id'),
        -- by the account key of the name (an unknown name's: where its account would be)
        ('unknown_user_failures', 'distributed', 'account_key'),
        ('login_attempts', 'distributed', 'account_key'),
        -- each node its own
        ('audit_log', 'node', NULL),
        ('audit_head', 'node', NULL),
        ('dummy_hash', 'node', NULL),
        ('reset_decoys', 'node', NULL),
        ('maintenance_state', 'node', NULL),
        -- the report rollups: unbuilt on a distributed installation (the
        -- reports read the distributed log; see refresh_rollups())
        ('rollup_state', 'node', NULL),
        ('rollup_hourly', 'node', NULL),
        ('rollup_hour_keys', 'node', NULL),
        ('rollup_outcomes', 'node', NULL),
        ('rollup_daily', 'node', NULL),
        ('rollup_day_keys', 'node', NULL),
        ('rollup_user_windows', 'node', NULL),
        ('rollup_user_names', 'node', NULL),
        ('rollup_source_names', 'node', NULL),
        ('rollup_sources', 'node', NULL),
        -- protected columns of the node's own application tables (their oids
        -- are the node's), their grants, and the disclosures made on the node
        ('protected_columns', 'node', NULL),
        ('reveal_grants', 'node', NULL),
        ('disclosure_log', 'node', NULL),
        -- the database roles of the node's own cluster
        ('role_links', 'node', NULL),
        ('role_password_history', 'node', NULL),
        ('role_state', 'node', NULL),
        ('database_access', 'node', NULL);
$$;
COMMENT ON FUNCTION secpolicy.citus_table_plan() IS
    'Where distribute() puts each table: reference (a copy on every node), distributed (by the column, co-located with users) or node (each node its own, not a Citus table).';
REVOKE ALL ON FUNCTION secpolicy.citus_table_plan() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.citus_table_plan() TO secpolicy_admin;

-- The functions Citus runs where the account lives, and the argument that says where.
CREATE FUNCTION secpolicy.citus_function_plan(OUT function_name regprocedure, OUT distribution_argument text)
    RETURNS SETOF record
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    VALUES
        ('secpolicy.login(bigint,text,text,inet,text)'::regprocedure, 'account_key'),
        ('secpolicy.verify_mfa(bigint,text,text,inet)', 'account_key'),
        ('secpolicy.totp_enroll(bigint,text)', 'account_key'),
        ('secpolicy.totp_confirm(bigint,text,text)', 'account_key'),
        ('secpolicy.change_password(bigint,text,text,text,inet,text,text)', 'account_key'),
        ('secpolicy.request_password_reset(bigint,text,inet)', 'account_key'),
        ('secpolicy.reset_password(bigint,text,text)', 'account_key'),
        ('secpolicy.session_touch(bigint,text)', 'account_key'),
        ('secpolicy.logout(bigint,text)', 'account_key'),
        ('secpolicy.list_sessions(bigint,text)', 'account_key'),
        ('secpolicy.end_other_sessions(bigint,text)', 'account_key'),
        -- what administration runs on the account's node: the trigger it
        -- fires reads the mode it sets, and the ledger is that node's
        ('secpolicy.write_password(bigint,text,text)', 'user_id'),
        ('secpolicy.clear_guesses(bigint,text[])', 'account_key');
$$;
COMMENT ON FUNCTION secpolicy.citus_function_plan() IS
    'The functions distribute() makes Citus run on the worker owning the account, and the argument naming it.';
REVOKE ALL ON FUNCTION secpolicy.citus_function_plan() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.citus_function_plan() TO secpolicy_admin;

-- Internal: what a node's own copy of the extension needs before its tables
-- are distributed (run on every node by distribute(); idempotent).  The
-- coordinator's definitions become the shards' and, for the workers, the
-- extension's own tables stand for the distributed ones (Citus does not
-- recreate tables an extension owns), so each node changes its own:
--   * the attempt log gets its distribution key (a column only distributed
--     installations have: a daily partition restored from an older dump
--     could not be attached to a parent with one more column)
--   * unique keys take the distribution column (Citus requires it): token
--     digests are unique per account, usernames through their key (the user id)
--   * a worker's sequences start in a range of their own (its group << 48),
--     so that rows it numbers never collide with another node's, also after
--     a shard moves between nodes
CREATE FUNCTION secpolicy.citus_prepare_node() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grp integer := 0;
    seq record;
    changes text[] := '{}';
BEGIN
    PERFORM secpolicy.require_citus();
    -- no DDL propagation: each node changes its own tables
    SET LOCAL citus.enable_ddl_propagation = off;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO grp;

    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'secpolicy.login_attempts'::regclass
                      AND attname = 'account_key' AND NOT attisdropped) THEN
        ALTER TABLE secpolicy.login_attempts ADD COLUMN account_key bigint;
        COMMENT ON COLUMN secpolicy.login_attempts.account_key IS
            'The distribution key (distributed installations only): the account''s user id, else the account key of the name typed, else of the flow''s token.';
        changes := changes || 'login_attempts.account_key'::text;
    END IF;
    IF NOT secpolicy.distributed() THEN
        -- the keys of the rows there are (once distributed, Citus refuses
        -- any statement changing a distribution column, and none is NULL)
        UPDATE secpolicy.login_attempts a
           SET account_key = coalesce(a.user_id, secpolicy.account_key(a.username))
         WHERE a.account_key IS NULL;
        UPDATE secpolicy.unknown_user_failures f SET account_key = secpolicy.account_key(f.username_key)
         WHERE f.account_key IS NULL;
    END IF;
    IF (SELECT array_agg(a.attname::text ORDER BY k.n)
          FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = 'secpolicy.unknown_user_failures'::regclass AND a.attnum = k.attnum
         WHERE c.conrelid = 'secpolicy.unknown_user_failures'::regclass
           AND c.conname = 'unknown_user_failures_pkey') = ARRAY['username_key'] THEN
        ALTER TABLE secpolicy.unknown_user_failures
            DROP CONSTRAINT unknown_user_failures_pkey,
            ADD CONSTRAINT unknown_user_failures_pkey PRIMARY KEY (account_key, username_key);
        changes := changes || 'unknown_user_failures_pkey'::text;
    END IF;

    -- the node's own tables cannot refer to distributed ones (their local
    -- copies are emptied): links of database roles and access windows keep
    -- their account's id without a foreign key
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'role_links_user_id_fkey'
                  AND conrelid = 'secpolicy.role_links'::regclass) THEN
        ALTER TABLE secpolicy.role_links DROP CONSTRAINT role_links_user_id_fkey;
        changes := changes || 'role_links_user_id_fkey'::text;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'database_access_user_id_session_id_fkey'
                  AND conrelid = 'secpolicy.database_access'::regclass) THEN
        ALTER TABLE secpolicy.database_access DROP CONSTRAINT database_access_user_id_session_id_fkey;
        changes := changes || 'database_access_user_id_session_id_fkey'::text;
    END IF;

    IF to_regclass('secpolicy.users_username_key') IS NOT NULL THEN
        DROP INDEX secpolicy.users_username_key;
        changes := changes || 'users_username_key'::text;
    END IF;
    CREATE INDEX IF NOT EXISTS users_username_idx ON secpolicy.users (lower(username));
    IF to_regclass('secpolicy.sessions_token_key') IS NOT NULL THEN
        DROP INDEX secpolicy.sessions_token_key;
        changes := changes || 'sessions_token_key'::text;
    END IF;
    CREATE UNIQUE INDEX IF NOT EXISTS sessions_user_token_key ON secpolicy.sessions (user_id, token_digest);
    ALTER TABLE secpolicy.mfa_challenges DROP CONSTRAINT IF EXISTS mfa_challenges_token_digest_key;
    CREATE UNIQUE INDEX IF NOT EXISTS mfa_challenges_user_token_key ON secpolicy.mfa_challenges (user_id, token_digest);
    ALTER TABLE secpolicy.password_resets DROP CONSTRAINT IF EXISTS password_resets_token_digest_key;
    CREATE UNIQUE INDEX IF NOT EXISTS password_resets_user_token_key ON secpolicy.password_resets (user_id, token_digest);

    IF grp > 0 THEN
        FOR seq IN SELECT c.oid::regclass AS rel FROM pg_class c
                    WHERE c.relnamespace = 'secpolicy'::regnamespace AND c.relkind = 'S' LOOP
            EXECUTE format('SELECT setval(%L, %s) FROM %s WHERE last_value < %s',
                           seq.rel, (grp::bigint << 48), seq.rel, (grp::bigint << 48));
        END LOOP;
    END IF;
    RETURN jsonb_build_object('group', grp, 'changed', to_jsonb(changes));
END
$$;
COMMENT ON FUNCTION secpolicy.citus_prepare_node() IS
    'Internal: prepare this node''s copy of the extension for distribution (distribution key of the attempt log, unique keys with the distribution column, sequence ranges); idempotent.';
REVOKE ALL ON FUNCTION secpolicy.citus_prepare_node() FROM PUBLIC;

-- Distribute the installation: run once on a Citus coordinator, as a
-- superuser, after the workers are added (and again after adding a node:
-- it is idempotent).  Returns what it did.
CREATE FUNCTION secpolicy.distribute(shard_count integer DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET client_min_messages = warning
AS $$
DECLARE
    t record;
    f record;
    r record;
    ver text := (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'secpolicy');
    workers integer;
    stray text;
    done jsonb := '[]';
    prepared jsonb := '[]';
    rekey bigint;
BEGIN
    PERFORM secpolicy.require_citus();
    IF NOT (SELECT x.rolsuper FROM pg_roles x WHERE x.rolname = current_user) THEN
        RAISE EXCEPTION 'distribute() must be run by a superuser' USING ERRCODE = '42501';
    END IF;
    IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
        RAISE EXCEPTION 'shard_count must be between 1 and 64000' USING ERRCODE = '22023';
    END IF;
    EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_node WHERE groupid = 0' INTO workers;
    IF workers = 0 THEN
        RAISE EXCEPTION 'the coordinator is not in the Citus metadata' USING ERRCODE = '55000',
            HINT = 'Run SELECT citus_set_coordinator_host(''<host>'', <port>) first: the reference tables need a copy on it.';
    END IF;
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO r;
    IF NOT r.citus_is_coordinator THEN
        RAISE EXCEPTION 'distribute() must run on the coordinator' USING ERRCODE = '55000';
    END IF;
    EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_node WHERE groupid > 0 AND isactive AND shouldhaveshards'
        INTO workers;
    IF workers = 0 THEN
        RAISE EXCEPTION 'the Citus cluster has no worker' USING ERRCODE = '55000',
            HINT = 'Add the workers with citus_add_node() first.';
    END IF;

    -- every table of the extension has its place
    SELECT string_agg(c.relname, ', ' ORDER BY c.relname) INTO stray
      FROM pg_class c
     WHERE c.relnamespace = 'secpolicy'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                      AND e.extname = 'secpolicy')
       AND c.relname NOT IN (SELECT p.table_name FROM secpolicy.citus_table_plan() p);
    IF stray IS NOT NULL THEN
        RAISE EXCEPTION 'distribute() has no place for table(s) %', stray USING ERRCODE = '55000',
            HINT = 'Add each to secpolicy.citus_table_plan() (src/sql/97_citus.sql): reference, distributed by an account key, or node.';
    END IF;

    -- accounts made on a single node have user ids that are not the keys of their names
    IF NOT secpolicy.distributed() THEN
        SELECT count(*) INTO rekey FROM secpolicy.users u WHERE u.id <> secpolicy.account_key(u.username);
        IF rekey > 0 THEN
            RAISE EXCEPTION 'the installation has % account(s) whose user id is not the account key of the username', rekey
                USING ERRCODE = '55000',
                      DETAIL = 'On a distributed installation a user id is account_key(username), which tells where the account lives.',
                      HINT = 'Distribute a new installation and move the accounts there (create_user, import_password_hash).';
        END IF;
    END IF;

    -- every worker has the extension, of this version (Citus creates it on
    -- the workers when it is created on the coordinator, or with the first
    -- table distributed; made here first where missing, so that each node
    -- can be prepared)
    PERFORM 1 FROM pg_catalog.run_command_on_workers(
        format('SET citus.enable_metadata_sync = off; CREATE EXTENSION IF NOT EXISTS secpolicy VERSION %L', ver));
    FOR r IN EXECUTE 'SELECT * FROM pg_catalog.run_command_on_workers($c$SELECT extversion FROM pg_extension WHERE extname = ''secpolicy''$c$)' LOOP
        IF NOT r.success OR r.result IS DISTINCT FROM ver THEN
            RAISE EXCEPTION 'worker %:% has no secpolicy %', r.nodename, r.nodeport, ver
                USING ERRCODE = '55000', DETAIL = r.result,
                      HINT = 'Install secpolicy (the same version) on every node, with the same secpolicy.key_file.';
        END IF;
    END LOOP;
    FOR r IN EXECUTE 'SELECT * FROM pg_catalog.run_command_on_workers(''SELECT secpolicy.citus_prepare_node()'')' LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'could not prepare worker %:%', r.nodename, r.nodeport USING ERRCODE = '55000', DETAIL = r.result;
        END IF;
        prepared := prepared || jsonb_build_object('node', r.nodename || ':' || r.nodeport, 'result', r.result::jsonb);
    END LOOP;
    prepared := prepared || jsonb_build_object('node', 'coordinator', 'result', secpolicy.citus_prepare_node());

    -- the rollups of a single node are forgotten: the reports read the log
    UPDATE secpolicy.rollup_state SET built = false;
    DELETE FROM secpolicy.rollup_hourly;
    DELETE FROM secpolicy.rollup_hour_keys;
    DELETE FROM secpolicy.rollup_outcomes;
    DELETE FROM secpolicy.rollup_daily;
    DELETE FROM secpolicy.rollup_day_keys;
    DELETE FROM secpolicy.rollup_user_windows;
    DELETE FROM secpolicy.rollup_user_names;
    DELETE FROM secpolicy.rollup_source_names;
    DELETE FROM secpolicy.rollup_sources;

    -- the triggers are safe to keep on the shards (see the head of this part)
    SET LOCAL citus.enable_unsafe_triggers = on;
    -- a reference table that a table yet to be distributed refers to stays a
    -- reference table (Citus would otherwise turn every table of the key
    -- graph into a local Citus table, which the extension's views forbid)
    SET LOCAL citus.enable_local_reference_table_foreign_keys = off;
    IF shard_count IS NOT NULL THEN
        EXECUTE format('SET LOCAL citus.shard_count = %s', shard_count);
    END IF;
    FOR t IN SELECT * FROM secpolicy.citus_table_plan() WHERE placement <> 'node' LOOP
        EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::regclass'
            INTO workers USING 'secpolicy.' || t.table_name;
        CONTINUE WHEN workers > 0;
        IF t.placement = 'reference' THEN
            EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING 'secpolicy.' || t.table_name;
        ELSIF t.table_name = 'users' THEN
            EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2)'
                USING 'secpolicy.' || t.table_name, t.distribution_column;
        ELSE
            EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)'
                USING 'secpolicy.' || t.table_name, t.distribution_column, 'secpolicy.users';
        END IF;
        done := done || to_jsonb(t.table_name);
    END LOOP;
    -- the local copy of the rows Citus moved to the shards is removed, once
    -- no local table refers to them (no trigger fires: the guards of the
    -- policy refuse a TRUNCATE)
    SET LOCAL session_replication_role = replica;
    FOR t IN SELECT x.t AS table_name FROM jsonb_array_elements_text(done) x(t) LOOP
        EXECUTE 'SELECT pg_catalog.truncate_local_data_after_distributing_table($1)' USING 'secpolicy.' || t.table_name;
    END LOOP;
    SET LOCAL session_replication_role = origin;

    FOR f IN SELECT * FROM secpolicy.citus_function_plan() LOOP
        EXECUTE 'SELECT pg_catalog.create_distributed_function($1::regprocedure, $2, colocate_with => $3, force_delegation => true)'
            USING f.function_name::text, f.distribution_argument, 'secpolicy.users';
    END LOOP;

    PERFORM secpolicy.audit('installation_distributed', NULL, NULL, NULL,
                            jsonb_build_object('tables', done, 'prepared', prepared));
    RETURN jsonb_build_object('distributed', done, 'functions', (SELECT count(*) FROM secpolicy.citus_function_plan()),
                              'nodes', prepared);
END
$$;
COMMENT ON FUNCTION secpolicy.distribute(integer) IS
    'On a Citus coordinator (superuser): distributes the installation (citus_table_plan(), citus_function_plan()); idempotent, run again after adding a node.';
REVOKE ALL ON FUNCTION secpolicy.distribute(integer) FROM PUBLIC;

-- The audit chain of every node: this node's, and on a distributed
-- installation each worker's (through the Citus connections of the owner).
-- rows_chained counts the chained rows, rows_checked those walked up to the
-- first broken one (included), as verify_audit_chain() does.
CREATE FUNCTION secpolicy.audit_chains()
    RETURNS TABLE (node_group integer, node text, intact boolean, rows_checked bigint,
                   first_broken_id bigint, head_hash text, rows_chained bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v record;
    grp integer := 0;
BEGIN
    IF secpolicy.distributed() THEN
        EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO grp;
    END IF;
    SELECT * INTO v FROM secpolicy.verify_node_audit_chain();
    node_group := grp;
    node := CASE WHEN grp = 0 THEN 'coordinator' ELSE 'local' END;
    intact := v.intact;
    rows_checked := v.rows_checked;
    first_broken_id := v.first_broken_id;
    head_hash := v.head_hash;
    rows_chained := v.rows_chained;
    RETURN NEXT;
    IF NOT secpolicy.distributed() THEN
        RETURN;
    END IF;
    FOR r IN EXECUTE 'SELECT w.nodename, w.nodeport, w.success, w.result, n.groupid'
                     ' FROM pg_catalog.run_command_on_workers($c$SELECT row_to_json(v) FROM secpolicy.verify_node_audit_chain() v$c$) w'
                     ' JOIN pg_catalog.pg_dist_node n ON n.nodename = w.nodename AND n.nodeport = w.nodeport'
                     ' ORDER BY n.groupid' LOOP
        node_group := r.groupid;
        node := r.nodename || ':' || r.nodeport;
        IF r.success THEN
            intact := (r.result::json ->> 'intact')::boolean;
            rows_checked := (r.result::json ->> 'rows_checked')::bigint;
            first_broken_id := (r.result::json ->> 'first_broken_id')::bigint;
            head_hash := r.result::json ->> 'head_hash';
            rows_chained := (r.result::json ->> 'rows_chained')::bigint;
        ELSE
            -- a node that cannot be read is not known to be intact
            intact := false;
            rows_checked := 0;
            first_broken_id := NULL;
            head_hash := NULL;
            rows_chained := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.audit_chains() IS
    'The audit chain of every node (each node chains its own audit log): intact, rows walked, first broken row, head hash; a node that cannot be reached counts as not intact.';
REVOKE ALL ON FUNCTION secpolicy.audit_chains() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.audit_chains() TO secpolicy_admin;

-- The audit log of every node, for admins: this node's rows and, on a
-- distributed installation, each worker's, since a time.
CREATE FUNCTION secpolicy.cluster_audit_log(since timestamptz DEFAULT '-infinity')
    RETURNS TABLE (node_group integer, id bigint, logged_at timestamptz, actor text, actor_role text,
                   client_addr inet, action text, user_id bigint, username text, reason text,
                   details jsonb, chain_seq bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    grp integer := 0;
BEGIN
    IF secpolicy.distributed() THEN
        EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO grp;
    END IF;
    RETURN QUERY SELECT grp, a.id, a.logged_at, a.actor, a.actor_role, a.client_addr, a.action, a.user_id,
                        a.username, a.reason, a.details, a.chain_seq
                   FROM secpolicy.audit_log a WHERE a.logged_at >= cluster_audit_log.since;
    IF NOT secpolicy.distributed() THEN
        RETURN;
    END IF;
    FOR r IN EXECUTE 'SELECT w.success, w.result, n.groupid'
                     ' FROM pg_catalog.run_command_on_workers(pg_catalog.format($c$SELECT coalesce(json_agg(a), ''[]'') FROM secpolicy.audit_log a WHERE a.logged_at >= %L$c$, $1)) w'
                     ' JOIN pg_catalog.pg_dist_node n ON n.nodename = w.nodename AND n.nodeport = w.nodeport'
                     ' ORDER BY n.groupid' USING cluster_audit_log.since LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'could not read the audit log of node group %', r.groupid
                USING ERRCODE = '08006', DETAIL = r.result;
        END IF;
        RETURN QUERY SELECT r.groupid, a.id, a.logged_at, a.actor, a.actor_role, a.client_addr, a.action,
                            a.user_id, a.username, a.reason, a.details, a.chain_seq
                       FROM json_populate_recordset(NULL::secpolicy.audit_log, r.result::json) a;
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.cluster_audit_log(timestamptz) IS
    'The audit rows of every node since a time (node_group 0: the coordinator or a single node).';
REVOKE ALL ON FUNCTION secpolicy.cluster_audit_log(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.cluster_audit_log(timestamptz) TO secpolicy_admin;

-- Internal (maintain()): the housekeeping of what each node keeps for itself.
CREATE FUNCTION secpolicy.citus_maintain() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    failed text[] := '{}';
BEGIN
    PERFORM secpolicy.require_citus();
    FOR r IN EXECUTE 'SELECT * FROM pg_catalog.run_command_on_workers(''DELETE FROM secpolicy.reset_decoys WHERE expires_at < now()'')' LOOP
        IF NOT r.success THEN
            failed := failed || (r.nodename || ':' || r.nodeport);
        END IF;
    END LOOP;
    RETURN jsonb_build_object('nodes_unreachable', to_jsonb(failed));
END
$$;
COMMENT ON FUNCTION secpolicy.citus_maintain() IS
    'Internal: maintain()''s work on each worker''s own tables (reset decoys); lists the workers it could not reach.';
REVOKE ALL ON FUNCTION secpolicy.citus_maintain() FROM PUBLIC;
