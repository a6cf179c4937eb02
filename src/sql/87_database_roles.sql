-- Database roles under the policy (src/roles*.c; needs
-- shared_preload_libraries = 'secpolicy' and this extension in the policy
-- database, secpolicy.database): the state of each role (failures, lock,
-- logins), the role password history, set_role_password, unlock_role and the
-- role_status view, and the internal functions that the hooks and the role
-- policy worker call.  Roles are cluster-wide; the tables here hold them by
-- name (what a dump and a restore into another cluster keep) and by OID.

-- members may change their own role password with set_role_password();
-- PgBouncer's auth_user calls pgbouncer_auth()
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['secpolicy_login', 'secpolicy_pgbouncer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;
GRANT USAGE ON SCHEMA secpolicy TO secpolicy_login, secpolicy_pgbouncer;

-- The state of each role, mirrored every second from shared memory by the
-- worker (the journal in the data directory is what survives a crash), and
-- written directly by unlock_role() and password changes.
CREATE TABLE secpolicy.role_state (
    role_name text PRIMARY KEY,
    role_oid oid,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_at timestamptz,
    cleared_at timestamptz,
    last_failed_at timestamptz,
    last_login_at timestamptz,
    last_login_addr inet,
    password_changed_at timestamptz,
    first_seen_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE secpolicy.role_state IS
    'Database roles: consecutive failed password authentications, lock, last logins (a mirror of the shared state, at most a second behind).';
COMMENT ON COLUMN secpolicy.role_state.cleared_at IS
    'The last unlock or password change, which ended any run of failures.';
COMMENT ON COLUMN secpolicy.role_state.first_seen_at IS
    'When the role policy first saw the role (for roles that never logged in: dormant since).';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.role_state', '');
GRANT SELECT ON secpolicy.role_state TO secpolicy_admin;

CREATE TABLE secpolicy.role_password_history (
    role_name text NOT NULL,
    id bigserial NOT NULL,
    role_oid oid,
    password_hash text NOT NULL,
    set_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (role_name, id)
);
COMMENT ON TABLE secpolicy.role_password_history IS
    'argon2id hashes of the last history_depth passwords of each role (the current one included); never the plaintext.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.role_password_history', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.role_password_history_id_seq', '');
GRANT SELECT (role_name, id, role_oid, set_at) ON secpolicy.role_password_history TO secpolicy_admin;

-- ------------------------------------------------------------------ C ---

CREATE FUNCTION secpolicy.role_policy_status(
    OUT preloaded boolean, OUT policy_database text, OUT in_policy_database boolean,
    OUT active boolean, OUT max_failed_attempts integer, OUT roles integer, OUT open_windows integer,
    OUT queued integer, OUT dropped bigint, OUT journal_records bigint)
    AS 'MODULE_PATHNAME', 'secpolicy_role_policy_status'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.role_policy_status() IS
    'Whether the role policy is enforced (preloaded, and active: the extension is in the policy database), the failure limit the authentication hook applies, and how full its shared state is.';
REVOKE ALL ON FUNCTION secpolicy.role_policy_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.role_policy_status() TO secpolicy_admin;

CREATE FUNCTION secpolicy.require_role_policy() RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_require_role_policy'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.require_role_policy() IS
    'Internal: raise 55000 unless the library is preloaded and this is the policy database.';
REVOKE ALL ON FUNCTION secpolicy.require_role_policy() FROM PUBLIC;

CREATE FUNCTION secpolicy.role_state_live(
    OUT role_oid oid, OUT failed_attempts integer, OUT locked_at timestamptz,
    OUT last_failed_at timestamptz, OUT last_login_at timestamptz, OUT cleared_at timestamptz,
    OUT user_id bigint, OUT mfa_required boolean)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'secpolicy_role_state_live'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.role_state_live() IS
    'Internal: the shared state of the roles, as the authentication hook sees it now.';
REVOKE ALL ON FUNCTION secpolicy.role_state_live() FROM PUBLIC;

CREATE FUNCTION secpolicy.role_unlock_at_commit(role_oid oid) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_role_unlock_at_commit'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.role_unlock_at_commit(oid) IS
    'Internal: the role''s failures and lock end in shared memory when the transaction commits.';
REVOKE ALL ON FUNCTION secpolicy.role_unlock_at_commit(oid) FROM PUBLIC;

CREATE FUNCTION secpolicy.role_link_at_commit(role_oid oid, user_id bigint, mfa_required boolean) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_role_link_at_commit'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.role_link_at_commit(oid, bigint, boolean) IS
    'Internal: the role''s link (NULL user_id: none) reaches shared memory when the transaction commits.';
REVOKE ALL ON FUNCTION secpolicy.role_link_at_commit(oid, bigint, boolean) FROM PUBLIC;

CREATE FUNCTION secpolicy.role_window_at_commit(role_oid oid, user_id bigint, window_id bigint,
                                                expires_at timestamptz, client_addr inet) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_role_window_at_commit'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.role_window_at_commit(oid, bigint, bigint, timestamptz, inet) IS
    'Internal: an access window opens (NULL expires_at: closes) in shared memory when the transaction commits.';
REVOKE ALL ON FUNCTION secpolicy.role_window_at_commit(oid, bigint, bigint, timestamptz, inet) FROM PUBLIC;

CREATE FUNCTION secpolicy.role_hold(role_oid oid) RETURNS integer
    AS 'MODULE_PATHNAME', 'secpolicy_role_hold'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.role_hold(oid) IS
    'Internal: refuse new connections of a role until the transaction ends; terminate its connections now and at commit.';
REVOKE ALL ON FUNCTION secpolicy.role_hold(oid) FROM PUBLIC;

CREATE FUNCTION secpolicy.role_may_connect(role_oid oid, client_addr inet, method text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_role_may_connect'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.role_may_connect(oid, inet, text) IS
    'Internal: ok, disabled, no_access_window, locked or unavailable for a password login of a role now; with a method, a refusal is logged as an attempt.';
REVOKE ALL ON FUNCTION secpolicy.role_may_connect(oid, inet, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.set_role_password(role text, password text) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_set_role_password'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION secpolicy.set_role_password(text, text) IS
    'Sets a database role''s password under the password rules and its history (a role its own, secpolicy_admin others''); VALID UNTIL becomes now + max_password_age and a lock ends.';
REVOKE ALL ON FUNCTION secpolicy.set_role_password(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.set_role_password(text, text) TO secpolicy_login, secpolicy_admin;

-- ---------------------------------------------------------- passwords ---

-- Internal: what follows an accepted password change of a role (called by
-- the C code right after CREATE/ALTER ROLE ... PASSWORD or inside
-- set_role_password, as the extension's owner): VALID UNTIL becomes
-- now + max_password_age (or an explicit earlier VALID UNTIL of the
-- statement), the hash joins the history (a pre-hashed password has none),
-- the failures and the lock end, and the change is audited.
CREATE FUNCTION secpolicy.role_password_changed(role_name text, role_oid oid, new_hash text,
                                                valid_until timestamptz, via text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD'
AS $$
DECLARE
    pol secpolicy.policy;
    prev secpolicy.role_state;
    until timestamptz := role_password_changed.valid_until;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    IF pol.max_password_age IS NOT NULL THEN
        until := least(coalesce(until, 'infinity'), now() + pol.max_password_age);
        EXECUTE format('ALTER ROLE %I VALID UNTIL %L', role_password_changed.role_name, until);
    END IF;

    IF role_password_changed.new_hash IS NOT NULL THEN
        INSERT INTO secpolicy.role_password_history (role_name, role_oid, password_hash)
        VALUES (role_password_changed.role_name, role_password_changed.role_oid, role_password_changed.new_hash);
    END IF;
    DELETE FROM secpolicy.role_password_history h
     WHERE h.role_name = role_password_changed.role_name
       AND h.id NOT IN (SELECT k.id FROM secpolicy.role_password_history k
                         WHERE k.role_name = role_password_changed.role_name
                         ORDER BY k.id DESC LIMIT pol.history_depth);

    SELECT * INTO prev FROM secpolicy.role_state s WHERE s.role_name = role_password_changed.role_name;
    INSERT INTO secpolicy.role_state AS s (role_name, role_oid, cleared_at, password_changed_at)
    VALUES (role_password_changed.role_name, role_password_changed.role_oid, now(), now())
    ON CONFLICT ON CONSTRAINT role_state_pkey DO UPDATE
       SET role_oid = EXCLUDED.role_oid, failed_attempts = 0, locked_at = NULL, cleared_at = now(),
           password_changed_at = now(), updated_at = now();
    PERFORM secpolicy.role_unlock_at_commit(role_password_changed.role_oid);

    PERFORM secpolicy.audit('role_password_changed',
                            (SELECT k.user_id FROM secpolicy.role_links k WHERE k.role_name = role_password_changed.role_name),
                            role_password_changed.role_name, NULL,
                            jsonb_build_object('via', role_password_changed.via, 'valid_until', until,
                                               'history', role_password_changed.new_hash IS NOT NULL,
                                               'unlocked', coalesce(prev.locked_at IS NOT NULL, false)));
END
$$;
COMMENT ON FUNCTION secpolicy.role_password_changed(text, oid, text, timestamptz, text) IS
    'Internal: after a role password change: VALID UNTIL, history, end of the lock, audit.';
REVOKE ALL ON FUNCTION secpolicy.role_password_changed(text, oid, text, timestamptz, text) FROM PUBLIC;

-- Internal: the OID of a role by name, or 42704 (22004 for NULL).
CREATE FUNCTION secpolicy.role_oid_of(role text) RETURNS oid
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rid oid;
BEGIN
    IF role_oid_of.role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT a.oid INTO rid FROM pg_authid a WHERE a.rolname = role_oid_of.role;
    IF rid IS NULL THEN
        RAISE EXCEPTION 'role "%" does not exist', left(role_oid_of.role, 64) USING ERRCODE = '42704';
    END IF;
    RETURN rid;
END
$$;
COMMENT ON FUNCTION secpolicy.role_oid_of(text) IS 'Internal: the OID of a role, or error 42704.';
REVOKE ALL ON FUNCTION secpolicy.role_oid_of(text) FROM PUBLIC;

-- ------------------------------------------------------------ lockout ---

CREATE FUNCTION secpolicy.unlock_role(role text, reason text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    why text := secpolicy.require_reason(unlock_role.reason);
    rid oid := secpolicy.role_oid_of(unlock_role.role);
    live record;
BEGIN
    PERFORM secpolicy.require_role_policy();
    SELECT l.failed_attempts, l.locked_at INTO live FROM secpolicy.role_state_live() l WHERE l.role_oid = rid;
    INSERT INTO secpolicy.role_state AS s (role_name, role_oid, cleared_at)
    VALUES (unlock_role.role, rid, now())
    ON CONFLICT ON CONSTRAINT role_state_pkey DO UPDATE
       SET role_oid = EXCLUDED.role_oid, failed_attempts = 0, locked_at = NULL, cleared_at = now(), updated_at = now();
    PERFORM secpolicy.role_unlock_at_commit(rid);
    PERFORM secpolicy.audit('role_unlocked',
                            (SELECT k.user_id FROM secpolicy.role_links k WHERE k.role_name = unlock_role.role),
                            unlock_role.role, why,
                            jsonb_build_object('failed_attempts', coalesce(live.failed_attempts, 0),
                                               'was_locked', live.locked_at IS NOT NULL));
END
$$;
COMMENT ON FUNCTION secpolicy.unlock_role(text, text) IS
    'Ends the lock and the run of failed password authentications of a database role (when the transaction commits).';
REVOKE ALL ON FUNCTION secpolicy.unlock_role(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.unlock_role(text, text) TO secpolicy_admin;

-- ------------------------------------------------------------- worker ---

-- Internal (the worker): append database authentication attempts to the
-- attempt log, stage 'database', with the linked account's id; the database,
-- method, SSL and application name go into user_agent.  Also keeps each
-- role's last successful login.  Returns how many were written.
CREATE FUNCTION secpolicy.record_database_attempts(at timestamptz[], role text[], dbname text[], addr text[],
                                                   method text[], ssl boolean[], success boolean[],
                                                   outcome text[], application text[])
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    dist boolean;
BEGIN
    IF pg_catalog.to_regclass('pg_temp.secpolicy_database_attempts') IS NULL THEN
        CREATE TEMP TABLE secpolicy_database_attempts
            (at timestamptz, role text, db text, addr inet, method text, ssl boolean, success boolean,
             outcome text, app text) ON COMMIT DELETE ROWS;
    END IF;
    -- the worker may call this more than once in a transaction
    DELETE FROM pg_temp.secpolicy_database_attempts;
    INSERT INTO pg_temp.secpolicy_database_attempts
    SELECT a.at, left(a.role, 256), a.db, nullif(a.addr, '')::inet, a.method, a.ssl, a.success, a.outcome,
           regexp_replace(a.app, '[[:cntrl:]]', '', 'g')
      FROM unnest(record_database_attempts.at, record_database_attempts.role, record_database_attempts.dbname,
                  record_database_attempts.addr, record_database_attempts.method, record_database_attempts.ssl,
                  record_database_attempts.success, record_database_attempts.outcome,
                  record_database_attempts.application) a(at, role, db, addr, method, ssl, success, outcome, app);
    -- a distributed attempt log also takes its distribution key: the linked
    -- account's, else the role name's (see record_attempt)
    dist := secpolicy.distributed();
    FOR i IN 1..2 LOOP
        BEGIN
            EXECUTE format(
                'INSERT INTO secpolicy.login_attempts (attempted_at, user_id, username, client_addr, user_agent,'
                '                                      success, outcome, stage%s)'
                ' SELECT a.at, k.user_id, a.role, a.addr,'
                '        left(format(''postgresql database=%%s method=%%s ssl=%%s application=%%s'', a.db, a.method,'
                '                    CASE WHEN a.ssl THEN ''on'' ELSE ''off'' END, a.app), 512),'
                '        a.success, a.outcome, ''database''%s'
                '   FROM pg_temp.secpolicy_database_attempts a'
                '   LEFT JOIN secpolicy.role_links k ON k.role_name = a.role',
                CASE WHEN dist THEN ', account_key' ELSE '' END,
                CASE WHEN dist THEN ', coalesce(k.user_id, secpolicy.account_key(a.role))' ELSE '' END);
            GET DIAGNOSTICS n = ROW_COUNT;
            EXIT;
        EXCEPTION WHEN check_violation THEN
            -- a partition restored from a 1.0 dump refuses the stage once
            IF i = 2 OR secpolicy.repair_attempt_partitions() = 0 THEN
                RAISE;
            END IF;
        END;
    END LOOP;
    INSERT INTO secpolicy.role_state AS s (role_name, role_oid, last_login_at, last_login_addr)
    SELECT DISTINCT ON (a.role) a.role, r.oid, a.at, a.addr
      FROM pg_temp.secpolicy_database_attempts a JOIN pg_authid r ON r.rolname = a.role
     WHERE a.success
     ORDER BY a.role, a.at DESC
    ON CONFLICT ON CONSTRAINT role_state_pkey DO UPDATE
       SET last_login_at = EXCLUDED.last_login_at, last_login_addr = EXCLUDED.last_login_addr,
           role_oid = EXCLUDED.role_oid, updated_at = now()
     WHERE s.last_login_at IS NULL OR s.last_login_at < EXCLUDED.last_login_at;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.record_database_attempts(timestamptz[], text[], text[], text[], text[], boolean[], boolean[], text[], text[]) IS
    'Internal (role policy worker): append database authentication attempts to login_attempts (stage database).';
REVOKE ALL ON FUNCTION secpolicy.record_database_attempts(timestamptz[], text[], text[], text[], text[], boolean[], boolean[], text[], text[]) FROM PUBLIC;

-- Internal (the worker): mirror the shared state of roles into role_state.
-- A row whose last unlock (cleared_at) is older than the table's is stale
-- (copied before an unlock committed) and skipped.  A new lock is audited,
-- announced (NOTIFY secpolicy_lockout, as for accounts) and closes the
-- role's access windows.
CREATE FUNCTION secpolicy.sync_role_state(oids oid[], failures integer[], locked timestamptz[],
                                          cleared timestamptz[], last_failed timestamptz[],
                                          last_ok timestamptz[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    prev secpolicy.role_state;
    audit_id bigint;
BEGIN
    FOR r IN SELECT a.oid, x.rolname::text AS name, a.failures, a.locked, a.cleared, a.failed, a.ok
               FROM unnest(sync_role_state.oids, sync_role_state.failures, sync_role_state.locked,
                           sync_role_state.cleared, sync_role_state.last_failed, sync_role_state.last_ok)
                    a(oid, failures, locked, cleared, failed, ok)
               JOIN pg_authid x ON x.oid = a.oid
    LOOP
        SELECT * INTO prev FROM secpolicy.role_state s WHERE s.role_name = r.name FOR UPDATE;
        IF FOUND AND coalesce(r.cleared, '-infinity') < coalesce(prev.cleared_at, '-infinity') THEN
            CONTINUE;
        END IF;
        INSERT INTO secpolicy.role_state AS s (role_name, role_oid, failed_attempts, locked_at, cleared_at,
                                               last_failed_at, last_login_at)
        VALUES (r.name, r.oid, r.failures, r.locked, r.cleared, r.failed, r.ok)
        ON CONFLICT ON CONSTRAINT role_state_pkey DO UPDATE
           SET role_oid = EXCLUDED.role_oid, failed_attempts = EXCLUDED.failed_attempts,
               locked_at = EXCLUDED.locked_at, cleared_at = EXCLUDED.cleared_at,
               last_failed_at = greatest(s.last_failed_at, EXCLUDED.last_failed_at),
               last_login_at = greatest(s.last_login_at, EXCLUDED.last_login_at), updated_at = now();
        IF r.locked IS NOT NULL AND r.locked IS DISTINCT FROM prev.locked_at THEN
            audit_id := secpolicy.audit('role_locked',
                                        (SELECT k.user_id FROM secpolicy.role_links k WHERE k.role_name = r.name),
                                        r.name, 'failure limit reached',
                                        jsonb_build_object('failed_attempts', r.failures, 'locked_at', r.locked));
            PERFORM pg_notify('secpolicy_lockout', jsonb_build_object('audit_id', audit_id)::text);
            UPDATE secpolicy.database_access w SET closed_at = now(), close_reason = 'role_lockout'
             WHERE w.role_name = r.name AND w.closed_at IS NULL;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.sync_role_state(oid[], integer[], timestamptz[], timestamptz[], timestamptz[], timestamptz[]) IS
    'Internal (role policy worker): mirror the shared state of roles into role_state; audit new locks.';
REVOKE ALL ON FUNCTION secpolicy.sync_role_state(oid[], integer[], timestamptz[], timestamptz[], timestamptz[], timestamptz[]) FROM PUBLIC;

-- Internal (the worker, every ten seconds): follow renamed roles (same OID),
-- restored roles (same name, another OID: a restore into another cluster,
-- pg_upgrade), forget dropped ones, and start tracking new login roles.
CREATE FUNCTION secpolicy.reconcile_roles() RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS pg_temp.secpolicy_role_names (old_name text, new_name text, new_oid oid)
        ON COMMIT DELETE ROWS;
    DELETE FROM pg_temp.secpolicy_role_names;
    INSERT INTO pg_temp.secpolicy_role_names
    SELECT n.role_name, a.rolname::text, a.oid
      FROM (SELECT role_name, role_oid FROM secpolicy.role_state
            UNION SELECT role_name, role_oid FROM secpolicy.role_links
            UNION SELECT role_name, role_oid FROM secpolicy.role_password_history
            UNION SELECT role_name, role_oid FROM secpolicy.database_access WHERE closed_at IS NULL) n
      LEFT JOIN pg_authid a
        ON a.oid = n.role_oid
        OR (a.rolname = n.role_name AND NOT EXISTS (SELECT 1 FROM pg_authid b WHERE b.oid = n.role_oid));
    -- renamed: the name follows the OID (unless a row of the new name exists)
    UPDATE secpolicy.role_state s SET role_name = m.new_name, role_oid = m.new_oid
      FROM pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NOT NULL
       AND (m.new_name <> s.role_name OR s.role_oid IS DISTINCT FROM m.new_oid)
       AND NOT EXISTS (SELECT 1 FROM secpolicy.role_state t WHERE t.role_name = m.new_name AND t.role_name <> s.role_name);
    UPDATE secpolicy.role_links s SET role_name = m.new_name, role_oid = m.new_oid
      FROM pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NOT NULL
       AND (m.new_name <> s.role_name OR s.role_oid IS DISTINCT FROM m.new_oid)
       AND NOT EXISTS (SELECT 1 FROM secpolicy.role_links t WHERE t.role_name = m.new_name AND t.role_name <> s.role_name);
    UPDATE secpolicy.role_password_history s SET role_name = m.new_name, role_oid = m.new_oid
      FROM pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NOT NULL
       AND (m.new_name <> s.role_name OR s.role_oid IS DISTINCT FROM m.new_oid);
    UPDATE secpolicy.database_access s SET role_name = m.new_name, role_oid = m.new_oid
      FROM pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NOT NULL AND s.closed_at IS NULL
       AND (m.new_name <> s.role_name OR s.role_oid IS DISTINCT FROM m.new_oid);
    -- dropped
    DELETE FROM secpolicy.role_state s USING pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NULL;
    DELETE FROM secpolicy.role_links s USING pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NULL;
    DELETE FROM secpolicy.role_password_history s USING pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NULL;
    UPDATE secpolicy.database_access s SET closed_at = now(), close_reason = 'unlinked'
      FROM pg_temp.secpolicy_role_names m
     WHERE s.role_name = m.old_name AND m.new_name IS NULL AND s.closed_at IS NULL;
    -- new login roles: tracked from now on (dormant after dormant_role_after without a login)
    INSERT INTO secpolicy.role_state (role_name, role_oid)
    SELECT a.rolname, a.oid FROM pg_authid a WHERE a.rolcanlogin
    ON CONFLICT ON CONSTRAINT role_state_pkey DO NOTHING;
END
$$;
COMMENT ON FUNCTION secpolicy.reconcile_roles() IS
    'Internal (role policy worker): follow renamed and restored roles, forget dropped ones, track new login roles.';
REVOKE ALL ON FUNCTION secpolicy.reconcile_roles() FROM PUBLIC;
