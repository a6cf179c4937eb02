-- Database roles tied to application accounts: link_role(), access windows
-- for roles marked mfa_required (open_database_access(), opened by a session
-- that passed the second factor), offboarding (a disabled account's roles
-- lose LOGIN and their connections), the role_status view, and PgBouncer's
-- auth_query function.  Enforcement is in the authentication hook
-- (src/roles_auth.c), from shared memory that these functions change when
-- their transaction commits.

CREATE TABLE secpolicy.role_links (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    role_name text NOT NULL UNIQUE,
    role_oid oid,
    mfa_required boolean NOT NULL DEFAULT true,
    linked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    linked_by text NOT NULL DEFAULT SESSION_USER,
    login_revoked_at timestamptz,
    PRIMARY KEY (user_id, role_name)
);
COMMENT ON TABLE secpolicy.role_links IS
    'Database roles tied to application accounts: mfa_required roles connect only inside an access window.';
COMMENT ON COLUMN secpolicy.role_links.login_revoked_at IS
    'When disabling the account took LOGIN from the role (enable_user gives back only these).';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.role_links', '');
GRANT SELECT ON secpolicy.role_links TO secpolicy_admin;

CREATE TABLE secpolicy.database_access (
    user_id bigint NOT NULL,
    id bigserial NOT NULL,
    session_id bigint NOT NULL,
    role_name text NOT NULL,
    role_oid oid,
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at timestamptz NOT NULL,
    client_addr inet,
    closed_at timestamptz,
    close_reason text,
    PRIMARY KEY (user_id, id),
    FOREIGN KEY (user_id, session_id) REFERENCES secpolicy.sessions ON DELETE CASCADE,
    CHECK ((closed_at IS NULL) = (close_reason IS NULL))
);
COMMENT ON TABLE secpolicy.database_access IS
    'Access windows: a role marked mfa_required connects only inside one, opened by a two-factor session of its linked account.';
COMMENT ON COLUMN secpolicy.database_access.client_addr IS
    'The address (or network) connections must come from; NULL: any.';
COMMENT ON COLUMN secpolicy.database_access.close_reason IS
    'reopened, logout, disabled, lockout (of the account), role_lockout, admin, password_changed or unlinked.';
CREATE INDEX database_access_session_idx ON secpolicy.database_access (user_id, session_id) WHERE closed_at IS NULL;
CREATE INDEX database_access_role_idx ON secpolicy.database_access (role_name) WHERE closed_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.database_access', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.database_access_id_seq', '');
GRANT SELECT ON secpolicy.database_access TO secpolicy_admin;

CREATE TYPE secpolicy.database_access_result AS (status text, expires_at timestamptz);
COMMENT ON TYPE secpolicy.database_access_result IS
    'Result of open_database_access(): status ok, invalid_session, mfa_required, not_linked, role_locked, invalid_duration or unavailable.';

-- Internal: close the open windows of an account (of one session, one role,
-- or all), in the table now and in shared memory at commit; returns how many.
CREATE FUNCTION secpolicy.close_access_windows(user_id bigint, session_id bigint, role_name text, reason text)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record;
    n integer := 0;
BEGIN
    FOR w IN UPDATE secpolicy.database_access x SET closed_at = now(), close_reason = close_access_windows.reason
              WHERE x.user_id = close_access_windows.user_id AND x.closed_at IS NULL
                AND (close_access_windows.session_id IS NULL OR x.session_id = close_access_windows.session_id)
                AND (close_access_windows.role_name IS NULL OR x.role_name = close_access_windows.role_name)
             RETURNING x.id, x.role_name
    LOOP
        PERFORM secpolicy.role_window_at_commit(a.oid, close_access_windows.user_id, w.id, NULL, NULL)
           FROM pg_authid a WHERE a.rolname = w.role_name;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.close_access_windows(bigint, bigint, text, text) IS
    'Internal: close an account''s open access windows (of a session, a role, or all).';
REVOKE ALL ON FUNCTION secpolicy.close_access_windows(bigint, bigint, text, text) FROM PUBLIC;

-- Internal: a disabled account's roles lose LOGIN (remembered, for
-- enable_user), their connections are terminated at once (and new ones
-- refused until the commit makes NOLOGIN visible), and its windows close.
CREATE FUNCTION secpolicy.revoke_role_logins(user_id bigint, reason text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k record;
    name text := (SELECT u.username FROM secpolicy.users u WHERE u.id = revoke_role_logins.user_id);
    n integer := 0;
    killed integer;
BEGIN
    FOR k IN SELECT l.role_name, a.oid, a.rolcanlogin FROM secpolicy.role_links l
               JOIN pg_authid a ON a.rolname = l.role_name
              WHERE l.user_id = revoke_role_logins.user_id
              ORDER BY l.role_name FOR UPDATE OF l
    LOOP
        IF k.rolcanlogin THEN
            EXECUTE format('ALTER ROLE %I NOLOGIN', k.role_name);
            UPDATE secpolicy.role_links l SET login_revoked_at = now()
             WHERE l.user_id = revoke_role_logins.user_id AND l.role_name = k.role_name;
        END IF;
        killed := secpolicy.role_hold(k.oid);
        PERFORM secpolicy.audit('role_login_revoked', revoke_role_logins.user_id, name, revoke_role_logins.reason,
                                jsonb_build_object('role', k.role_name, 'had_login', k.rolcanlogin,
                                                   'connections_terminated', killed));
        n := n + 1;
    END LOOP;
    PERFORM secpolicy.close_access_windows(revoke_role_logins.user_id, NULL, NULL, 'disabled');
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.revoke_role_logins(bigint, text) IS
    'Internal: the roles linked to a disabled account lose LOGIN and their connections; its access windows close.';
REVOKE ALL ON FUNCTION secpolicy.revoke_role_logins(bigint, text) FROM PUBLIC;

-- Internal: an enabled account's roles get back the LOGIN that disabling took
-- (and only that).
CREATE FUNCTION secpolicy.restore_role_logins(user_id bigint, reason text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k record;
    name text := (SELECT u.username FROM secpolicy.users u WHERE u.id = restore_role_logins.user_id);
    n integer := 0;
BEGIN
    FOR k IN UPDATE secpolicy.role_links l SET login_revoked_at = NULL
              WHERE l.user_id = restore_role_logins.user_id AND l.login_revoked_at IS NOT NULL
             RETURNING l.role_name
    LOOP
        IF EXISTS (SELECT 1 FROM pg_authid a WHERE a.rolname = k.role_name) THEN
            EXECUTE format('ALTER ROLE %I LOGIN', k.role_name);
            PERFORM secpolicy.audit('role_login_restored', restore_role_logins.user_id, name,
                                    restore_role_logins.reason, jsonb_build_object('role', k.role_name));
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.restore_role_logins(bigint, text) IS
    'Internal: give back the LOGIN that disabling an account took from its roles.';
REVOKE ALL ON FUNCTION secpolicy.restore_role_logins(bigint, text) FROM PUBLIC;

-- Triggers on accounts: disabling (disable_user, offboard) revokes the roles'
-- logins, enabling restores them, a lockout closes the access windows.
-- UPDATE triggers only: a restore (COPY) fires none.
CREATE FUNCTION secpolicy.roles_follow_account() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_ARGV[0] = 'disabled' THEN
        PERFORM secpolicy.revoke_role_logins(NEW.id, NEW.disabled_reason);
    ELSIF TG_ARGV[0] = 'enabled' THEN
        PERFORM secpolicy.restore_role_logins(NEW.id, 'account enabled');
    ELSIF TG_ARGV[0] = 'locked' THEN
        PERFORM secpolicy.close_access_windows(NEW.id, NULL, NULL, 'lockout');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.roles_follow_account() IS
    'Trigger on users: the linked database roles follow the account (disabled, enabled, locked out).';
REVOKE ALL ON FUNCTION secpolicy.roles_follow_account() FROM PUBLIC;
CREATE TRIGGER roles_follow_disable AFTER UPDATE OF disabled_at, disabled_reason ON secpolicy.users
    FOR EACH ROW WHEN (NEW.disabled_at IS NOT NULL)
    EXECUTE FUNCTION secpolicy.roles_follow_account('disabled');
CREATE TRIGGER roles_follow_enable AFTER UPDATE OF disabled_at ON secpolicy.users
    FOR EACH ROW WHEN (OLD.disabled_at IS NOT NULL AND NEW.disabled_at IS NULL)
    EXECUTE FUNCTION secpolicy.roles_follow_account('enabled');
CREATE TRIGGER roles_follow_lockout AFTER UPDATE OF locked_at ON secpolicy.users
    FOR EACH ROW WHEN (NEW.locked_at IS NOT NULL AND OLD.locked_at IS DISTINCT FROM NEW.locked_at)
    EXECUTE FUNCTION secpolicy.roles_follow_account('locked');

-- Trigger on sessions: a window ends with the session that opened it when
-- the session is logged out or revoked (not when it merely goes idle: a
-- window may outlast the application's idle timeout).
CREATE FUNCTION secpolicy.access_follows_session() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM secpolicy.close_access_windows(NEW.user_id, NEW.id, NULL, NEW.end_reason);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.access_follows_session() IS
    'Trigger on sessions: the access windows a session opened close when it is logged out or revoked.';
REVOKE ALL ON FUNCTION secpolicy.access_follows_session() FROM PUBLIC;
CREATE TRIGGER access_follows_session AFTER UPDATE OF ended_at ON secpolicy.sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL
                       AND NEW.end_reason IN ('logout', 'disabled', 'lockout', 'admin', 'password_changed'))
    EXECUTE FUNCTION secpolicy.access_follows_session();

-- ------------------------------------------------------------- links ---

CREATE FUNCTION secpolicy.link_role(role text, username text, mfa_required boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rid oid := secpolicy.role_oid_of(link_role.role);
    uid bigint := secpolicy.user_id_of(link_role.username);
    mfa boolean := coalesce(link_role.mfa_required, true);
    prev secpolicy.role_links;
BEGIN
    PERFORM secpolicy.require_role_policy();
    SELECT * INTO prev FROM secpolicy.role_links l WHERE l.role_name = link_role.role FOR UPDATE;
    IF FOUND AND prev.user_id <> uid THEN
        PERFORM secpolicy.close_access_windows(prev.user_id, NULL, link_role.role, 'unlinked');
        DELETE FROM secpolicy.role_links l WHERE l.role_name = link_role.role;
    END IF;
    INSERT INTO secpolicy.role_links AS l (user_id, role_name, role_oid, mfa_required)
    VALUES (uid, link_role.role, rid, mfa)
    ON CONFLICT ON CONSTRAINT role_links_pkey DO UPDATE
       SET mfa_required = EXCLUDED.mfa_required, role_oid = EXCLUDED.role_oid;
    PERFORM secpolicy.role_link_at_commit(rid, uid, mfa);
    PERFORM secpolicy.audit('role_linked', uid, (SELECT u.username FROM secpolicy.users u WHERE u.id = uid), NULL,
                            jsonb_build_object('role', link_role.role, 'mfa_required', mfa,
                                               'previous_user_id', CASE WHEN prev.user_id <> uid THEN prev.user_id END));
    -- a disabled account's roles cannot log in
    IF (SELECT u.disabled_at FROM secpolicy.users u WHERE u.id = uid) IS NOT NULL THEN
        PERFORM secpolicy.revoke_role_logins(uid, 'linked to a disabled account');
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.link_role(text, text, boolean) IS
    'Ties a database role to an application account; with mfa_required (the default) the role connects only inside an access window that account opens.';
REVOKE ALL ON FUNCTION secpolicy.link_role(text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.link_role(text, text, boolean) TO secpolicy_admin;

CREATE FUNCTION secpolicy.unlink_role(role text, reason text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    why text := secpolicy.require_reason(unlink_role.reason);
    l secpolicy.role_links;
BEGIN
    IF unlink_role.role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO l FROM secpolicy.role_links k WHERE k.role_name = unlink_role.role FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" is not linked to an account', left(unlink_role.role, 64) USING ERRCODE = '42704';
    END IF;
    PERFORM secpolicy.require_role_policy();
    PERFORM secpolicy.close_access_windows(l.user_id, NULL, l.role_name, 'unlinked');
    DELETE FROM secpolicy.role_links k WHERE k.role_name = unlink_role.role;
    PERFORM secpolicy.role_link_at_commit(a.oid, NULL, false) FROM pg_authid a WHERE a.rolname = l.role_name;
    PERFORM secpolicy.audit('role_unlinked', l.user_id, (SELECT u.username FROM secpolicy.users u WHERE u.id = l.user_id),
                            why, jsonb_build_object('role', l.role_name, 'login_still_revoked', l.login_revoked_at IS NOT NULL));
END
$$;
COMMENT ON FUNCTION secpolicy.unlink_role(text, text) IS
    'Unties a database role from its account (no more access windows needed; a LOGIN taken by disabling stays taken).';
REVOKE ALL ON FUNCTION secpolicy.unlink_role(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.unlink_role(text, text) TO secpolicy_admin;

-- ----------------------------------------------------------- windows ---

-- End-user flow: with a session token that passed the second factor, open an
-- access window for a role linked to that account.  Answers with a status,
-- never raises for bad input.  A new window of the same session and role
-- replaces the last.
CREATE FUNCTION secpolicy.open_database_access(session_token text, role text,
                                               duration interval DEFAULT '8 hours',
                                               client_addr inet DEFAULT NULL)
    RETURNS secpolicy.database_access_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st secpolicy.session_status;
    sid bigint;
    mfa boolean;
    rid oid;
    lim interval;
    until timestamptz;
    wid bigint;
    pol record;
BEGIN
    -- the statement carries a session token: keep it out of the log
    PERFORM secpolicy.mark_statement();
    SELECT * INTO pol FROM secpolicy.role_policy_status();
    IF NOT (pol.active AND pol.in_policy_database) THEN
        RETURN ROW('unavailable', NULL)::secpolicy.database_access_result;
    END IF;
    st := secpolicy.session_touch(open_database_access.session_token);
    IF st.status IS DISTINCT FROM 'active' THEN
        RETURN ROW('invalid_session', NULL)::secpolicy.database_access_result;
    END IF;
    sid := secpolicy.current_session_id();
    SELECT s.mfa INTO mfa FROM secpolicy.sessions s WHERE s.user_id = st.user_id AND s.id = sid;
    IF NOT coalesce(mfa, false) THEN
        RETURN ROW('mfa_required', NULL)::secpolicy.database_access_result;
    END IF;
    SELECT a.oid INTO rid FROM secpolicy.role_links k JOIN pg_authid a ON a.rolname = k.role_name
     WHERE k.role_name = open_database_access.role AND k.user_id = st.user_id;
    IF rid IS NULL THEN
        RETURN ROW('not_linked', NULL)::secpolicy.database_access_result;
    END IF;
    IF open_database_access.duration IS NULL OR open_database_access.duration <= interval '0' THEN
        RETURN ROW('invalid_duration', NULL)::secpolicy.database_access_result;
    END IF;
    IF EXISTS (SELECT 1 FROM secpolicy.role_state_live() l WHERE l.role_oid = rid AND l.locked_at IS NOT NULL) THEN
        RETURN ROW('role_locked', NULL)::secpolicy.database_access_result;
    END IF;
    SELECT p.max_database_access INTO lim FROM secpolicy.policy p;
    until := now() + least(open_database_access.duration, lim);
    PERFORM secpolicy.close_access_windows(st.user_id, sid, open_database_access.role, 'reopened');
    INSERT INTO secpolicy.database_access AS w (user_id, session_id, role_name, role_oid, expires_at, client_addr)
    VALUES (st.user_id, sid, open_database_access.role, rid, until, open_database_access.client_addr)
    RETURNING w.id INTO wid;
    PERFORM secpolicy.role_window_at_commit(rid, st.user_id, wid, until, open_database_access.client_addr);
    PERFORM secpolicy.audit('database_access_opened', st.user_id,
                            (SELECT u.username FROM secpolicy.users u WHERE u.id = st.user_id), NULL,
                            jsonb_build_object('role', open_database_access.role, 'expires_at', until,
                                               'client_addr', open_database_access.client_addr, 'session_id', sid));
    RETURN ROW('ok', until)::secpolicy.database_access_result;
END
$$;
COMMENT ON FUNCTION secpolicy.open_database_access(text, text, interval, inet) IS
    'Opens an access window for a linked role, from a session that passed the second factor (at most policy.max_database_access; optionally only from client_addr).';
REVOKE ALL ON FUNCTION secpolicy.open_database_access(text, text, interval, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.open_database_access(text, text, interval, inet) TO secpolicy_app;

-- ---------------------------------------------------------- PgBouncer ---

-- auth_query for PgBouncer: the role's verifier, unless the role policy
-- refuses the role now (locked, outside its access window, being disabled)
-- or the role cannot log in; superusers are never served.  Without an
-- active role policy nothing is served (fail closed).  The window's address
-- is the one PgBouncer connects from.
CREATE FUNCTION secpolicy.pgbouncer_auth(username text, OUT usename text, OUT passwd text)
    RETURNS SETOF record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
BEGIN
    SELECT x.oid, x.rolname, x.rolpassword, x.rolvaliduntil, x.rolcanlogin, x.rolsuper INTO a
      FROM pg_authid x WHERE x.rolname = pgbouncer_auth.username;
    IF a.oid IS NULL OR NOT a.rolcanlogin OR a.rolsuper OR a.rolpassword IS NULL
       OR a.rolvaliduntil < now() THEN
        RETURN;
    END IF;
    IF secpolicy.role_may_connect(a.oid, inet_client_addr(), 'pgbouncer') <> 'ok' THEN
        RETURN;
    END IF;
    usename := a.rolname;
    passwd := a.rolpassword;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION secpolicy.pgbouncer_auth(text) IS
    'PgBouncer auth_query: a role''s verifier unless the role policy refuses the role now (locked, no access window); never a superuser''s.';
REVOKE ALL ON FUNCTION secpolicy.pgbouncer_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.pgbouncer_auth(text) TO secpolicy_pgbouncer;

-- -------------------------------------------------------------- view ---

CREATE VIEW secpolicy.role_status AS
SELECT r.rolname::text AS role,
       r.rolsuper AS superuser,
       r.rolcanlogin AS can_login,
       CASE WHEN r.rolvaliduntil = 'infinity' THEN NULL ELSE r.rolvaliduntil END AS password_expires_at,
       coalesce(r.rolvaliduntil <= pg_catalog.now(), false) AS password_expired,
       coalesce(r.rolvaliduntil > pg_catalog.now() AND r.rolvaliduntil <= pg_catalog.now() + p.password_expiry_warning, false)
           AS password_expiring,
       s.password_changed_at,
       coalesce(s.failed_attempts, 0) AS failed_attempts,
       s.locked_at IS NOT NULL AS locked,
       s.locked_at,
       s.last_login_at,
       s.last_login_addr,
       s.last_failed_at,
       u.username AS linked_username,
       coalesce(k.mfa_required, false) AS mfa_required,
       (SELECT max(w.expires_at) FROM secpolicy.database_access w
         WHERE w.role_name = r.rolname AND w.closed_at IS NULL AND w.expires_at > pg_catalog.now()) AS access_open_until,
       k.login_revoked_at IS NOT NULL AS login_revoked,
       coalesce(r.rolcanlogin AND p.dormant_role_after IS NOT NULL
                AND coalesce(s.last_login_at, s.first_seen_at) < pg_catalog.now() - p.dormant_role_after, false) AS dormant
  FROM pg_catalog.pg_roles r
 CROSS JOIN secpolicy.policy p
  LEFT JOIN secpolicy.role_state s ON s.role_name = r.rolname
  LEFT JOIN secpolicy.role_links k ON k.role_name = r.rolname
  LEFT JOIN secpolicy.users u ON u.id = k.user_id
 WHERE r.rolcanlogin OR k.role_name IS NOT NULL;
COMMENT ON VIEW secpolicy.role_status IS
    'Per login (or linked) database role: expiry and warning, failures and lock, last logins, linked account, MFA, open access window, dormant.';
GRANT SELECT ON secpolicy.role_status TO secpolicy_admin, secpolicy_analyst;
