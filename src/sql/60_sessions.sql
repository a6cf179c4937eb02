-- Application sessions: idle timeout, absolute lifetime, revocation.

CREATE TABLE secpolicy.sessions (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    id bigserial NOT NULL,
    token_digest bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    ended_at timestamptz,
    end_reason text CHECK (end_reason IN ('idle', 'lifetime', 'logout', 'disabled',
                                          'password_changed', 'lockout', 'admin', 'session_limit')),
    mfa boolean NOT NULL DEFAULT false,
    client_addr inet,
    user_agent text,
    PRIMARY KEY (user_id, id),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
COMMENT ON TABLE secpolicy.sessions IS
    'Application sessions; the token is stored only as its SHA-256 digest.';
CREATE UNIQUE INDEX sessions_token_key ON secpolicy.sessions (token_digest);
CREATE INDEX sessions_live_idx ON secpolicy.sessions (user_id) WHERE ended_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.sessions_id_seq', '');
GRANT SELECT (user_id, id, created_at, last_seen_at, ended_at, end_reason, mfa, client_addr, user_agent)
    ON secpolicy.sessions TO secpolicy_admin;

CREATE TYPE secpolicy.session_status AS (status text, user_id bigint, idle_expires_at timestamptz);
COMMENT ON TYPE secpolicy.session_status IS
    'Result of session_touch(): status is active, expired, revoked or unknown.';

CREATE TYPE secpolicy.session_proof AS (status text, user_id bigint, idle_expires_at timestamptz,
                                        session_id bigint);
COMMENT ON TYPE secpolicy.session_proof IS
    'Result of session_touch(account_key, token): session_status and the id of the session it proved (NULL unless active).';

CREATE FUNCTION secpolicy.set_current_session(user_id bigint, session_id bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_set_current_session'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.set_current_session(bigint, bigint) IS
    'Internal: remember the session proven in this transaction (NULLs forget it).';
REVOKE ALL ON FUNCTION secpolicy.set_current_session(bigint, bigint) FROM PUBLIC;

CREATE FUNCTION secpolicy.current_session_user() RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_current_session_user'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION secpolicy.current_session_user() IS
    'User id of the session that session_touch() found active in this transaction, else NULL. For row-level security.';
REVOKE ALL ON FUNCTION secpolicy.current_session_user() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.current_session_user() TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.current_session_id() RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_current_session_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION secpolicy.current_session_id() IS
    'Id of the session that session_touch() found active in this transaction, else NULL.';
REVOKE ALL ON FUNCTION secpolicy.current_session_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.current_session_id() TO secpolicy_app, secpolicy_admin;

-- Internal: end a user's live sessions (all, or all but one); returns how many.
-- Whatever ends sessions for a change of credentials or access also voids the
-- second-factor challenges issued before it (a lockout keeps them, so that
-- they answer reset_required).
CREATE FUNCTION secpolicy.end_sessions(user_id bigint, reason text, keep_session_id bigint DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    -- (PL/pgSQL: a distributed installation plans statements with the values)
    IF end_sessions.reason IN ('password_changed', 'admin', 'disabled') THEN
        UPDATE secpolicy.mfa_challenges c SET used_at = now()
         WHERE c.user_id = end_sessions.user_id AND c.used_at IS NULL;
    END IF;
    UPDATE secpolicy.sessions s
       SET ended_at = now(), end_reason = end_sessions.reason
     WHERE s.user_id = end_sessions.user_id AND s.ended_at IS NULL
       AND s.id IS DISTINCT FROM end_sessions.keep_session_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.end_sessions(bigint, text, bigint) IS
    'Internal: end the live sessions of a user, except keep_session_id.';
REVOKE ALL ON FUNCTION secpolicy.end_sessions(bigint, text, bigint) FROM PUBLIC;

-- Internal: open a session and return its token (shown once, stored as a digest).
CREATE FUNCTION secpolicy.start_session(user_id bigint, client_addr inet, user_agent text, mfa boolean)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token text := secpolicy.account_token('sps', start_session.user_id);
    cap integer;
BEGIN
    INSERT INTO secpolicy.sessions (user_id, token_digest, client_addr, user_agent, mfa)
    VALUES (start_session.user_id, secpolicy.token_digest(token), start_session.client_addr,
            left(start_session.user_agent, 512), start_session.mfa);

    SELECT p.max_sessions_per_user INTO cap FROM secpolicy.policy p;
    IF cap IS NOT NULL THEN
        UPDATE secpolicy.sessions s SET ended_at = now(), end_reason = 'session_limit'
         WHERE s.user_id = start_session.user_id AND s.ended_at IS NULL
           AND s.id NOT IN (SELECT k.id FROM secpolicy.sessions k
                             WHERE k.user_id = start_session.user_id AND k.ended_at IS NULL
                             ORDER BY k.id DESC LIMIT cap);
    END IF;
    RETURN token;
END
$$;
COMMENT ON FUNCTION secpolicy.start_session(bigint, inet, text, boolean) IS
    'Internal: open a session (ending the oldest beyond max_sessions_per_user) and return its token.';
REVOKE ALL ON FUNCTION secpolicy.start_session(bigint, inet, text, boolean) FROM PUBLIC;

-- Internal: the writes of session_touch(): record activity ('touch') or end
-- an expired session ('idle', 'lifetime').  Returns the session's status
-- afterwards.  (The commit waits for the WAL flush like any other: skipping
-- the wait would also cover whatever the caller's transaction writes next.)
CREATE FUNCTION secpolicy.session_mark(user_id bigint, session_id bigint, action text, at timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reason text;
    stale_before timestamptz;
BEGIN
    IF action = 'touch' THEN
        -- concurrent touches that all saw a stale last_seen_at write it once
        stale_before := session_mark.at - (SELECT p.session_touch_interval FROM secpolicy.policy p);
        UPDATE secpolicy.sessions s SET last_seen_at = session_mark.at
         WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id AND s.ended_at IS NULL
           AND s.last_seen_at < session_mark.at AND s.last_seen_at <= stale_before;
        IF FOUND OR EXISTS (SELECT 1 FROM secpolicy.sessions s
                             WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id
                               AND s.ended_at IS NULL) THEN
            RETURN 'active';
        END IF;
    ELSIF action IN ('idle', 'lifetime') THEN
        UPDATE secpolicy.sessions s SET ended_at = session_mark.at, end_reason = session_mark.action
         WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id AND s.ended_at IS NULL;
    ELSE
        RAISE EXCEPTION 'unknown session action "%"', action USING ERRCODE = '22023';
    END IF;
    -- ended meanwhile (or just now): say how
    SELECT s.end_reason INTO reason FROM secpolicy.sessions s
     WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id;
    RETURN CASE WHEN reason IN ('idle', 'lifetime') THEN 'expired' ELSE 'revoked' END;
END
$$;
COMMENT ON FUNCTION secpolicy.session_mark(bigint, bigint, text, timestamptz) IS
    'Internal: the writes of session_touch() (activity, or the end of an expired session).';
REVOKE ALL ON FUNCTION secpolicy.session_mark(bigint, bigint, text, timestamptz) FROM PUBLIC;

-- The hot path, in C: one index probe by digest and a read of the policy
-- row, no SQL; last_seen_at is written at most once per session_touch_interval
-- through session_mark().  Not SECURITY DEFINER: it reads its relations
-- directly (no search_path lookups), so only EXECUTE is granted.
CREATE FUNCTION secpolicy.session_touch(session_token text) RETURNS secpolicy.session_status
    AS 'MODULE_PATHNAME', 'secpolicy_session_touch'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.session_touch(text) IS
    'Checks a session token and records activity: active (idle deadline extended), expired, revoked or unknown.';
REVOKE ALL ON FUNCTION secpolicy.session_touch(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.session_touch(text) TO secpolicy_app;

-- session_touch() where the session lives: on a distributed installation the
-- worker owning the account runs it (Citus delegates it by account_key, and
-- the C session_touch() of the node the caller is on calls it), and the
-- flows' own bodies call it with the key they run for.  The rules are those
-- of the C function; with a NULL key it is that function.  Returns the
-- session it proved too, for the node the caller is on to remember.
CREATE FUNCTION secpolicy.session_touch(account_key bigint, session_token text)
    RETURNS secpolicy.session_proof
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    pol record;
    st secpolicy.session_status;
    t timestamptz := transaction_timestamp();
    idle timestamptz;
    life timestamptz;
BEGIN
    IF session_touch.account_key IS NULL THEN
        st := secpolicy.session_touch(session_touch.session_token);
        RETURN ROW(st.status, st.user_id, st.idle_expires_at, secpolicy.current_session_id())::secpolicy.session_proof;
    END IF;
    PERFORM secpolicy.set_current_session(NULL, NULL);
    PERFORM secpolicy.mark_statement();
    IF session_touch.session_token IS NULL OR octet_length(session_touch.session_token) > 128 THEN
        RETURN ROW('unknown', NULL, NULL, NULL)::secpolicy.session_proof;
    END IF;
    SELECT x.user_id, x.id, x.created_at, x.last_seen_at, x.ended_at, x.end_reason INTO s
      FROM secpolicy.sessions x
     WHERE x.user_id = session_touch.account_key
       AND x.token_digest = secpolicy.token_digest(session_touch.session_token);
    IF NOT FOUND THEN
        RETURN ROW('unknown', NULL, NULL, NULL)::secpolicy.session_proof;
    END IF;
    IF s.ended_at IS NOT NULL THEN
        RETURN ROW(CASE WHEN s.end_reason IN ('idle', 'lifetime') THEN 'expired' ELSE 'revoked' END,
                   s.user_id, NULL, NULL)::secpolicy.session_proof;
    END IF;
    SELECT p.session_idle_timeout, p.session_max_lifetime, p.session_touch_interval INTO pol
      FROM secpolicy.policy p;
    idle := s.last_seen_at + pol.session_idle_timeout;
    life := s.created_at + pol.session_max_lifetime;
    IF t > life OR t > idle THEN
        -- ended when it really expired, for the reason that came first
        IF current_setting('transaction_read_only') = 'off' THEN
            PERFORM secpolicy.session_mark(s.user_id, s.id, CASE WHEN life <= idle THEN 'lifetime' ELSE 'idle' END,
                                           least(idle, life));
        END IF;
        RETURN ROW('expired', s.user_id, NULL, NULL)::secpolicy.session_proof;
    END IF;
    -- coalesced write: at most once per session_touch_interval
    IF current_setting('transaction_read_only') = 'off'
       AND t >= s.last_seen_at + pol.session_touch_interval AND t > s.last_seen_at THEN
        st.status := secpolicy.session_mark(s.user_id, s.id, 'touch', t);
        IF st.status <> 'active' THEN
            RETURN ROW(st.status, s.user_id, NULL, NULL)::secpolicy.session_proof;
        END IF;
        idle := t + pol.session_idle_timeout;
    END IF;
    PERFORM secpolicy.set_current_session(s.user_id, s.id);
    RETURN ROW('active', s.user_id, least(idle, life), s.id)::secpolicy.session_proof;
END
$$;
COMMENT ON FUNCTION secpolicy.session_touch(bigint, text) IS
    'Internal: session_touch() on the node owning the account of account_key (the C function for a NULL key); also returns the id of the session proved.';
REVOKE ALL ON FUNCTION secpolicy.session_touch(bigint, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.logout(session_token text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
    ended boolean;
BEGIN
    IF secpolicy.distributed() THEN
        -- the worker owning the session ends it (Citus delegates by the key)
        k := secpolicy.route_key(substring(logout.session_token FROM '[.]([0-9]+)$'));
        SELECT l INTO ended FROM secpolicy.logout(k, logout.session_token) l;
    ELSE
        ended := secpolicy.logout(NULL::bigint, logout.session_token);
    END IF;
    IF ended THEN
        -- fail closed: after any logout the transaction proves no session
        PERFORM secpolicy.set_current_session(NULL, NULL);
    END IF;
    RETURN ended;
END
$$;
COMMENT ON FUNCTION secpolicy.logout(text) IS
    'Ends a live session; false for an unknown or already ended one.';
REVOKE ALL ON FUNCTION secpolicy.logout(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.logout(text) TO secpolicy_app;

-- Internal: logout() where the session lives (account_key NULL: a single node).
CREATE FUNCTION secpolicy.logout(account_key bigint, session_token text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM secpolicy.require_writable('logout');
    IF session_token IS NULL OR length(session_token) > 128 THEN
        RETURN false;
    END IF;
    UPDATE secpolicy.sessions x SET ended_at = now(), end_reason = 'logout'
     WHERE x.token_digest = secpolicy.token_digest(logout.session_token) AND x.ended_at IS NULL
       AND (logout.account_key IS NULL OR x.user_id = logout.account_key);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM secpolicy.set_current_session(NULL, NULL);
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.logout(bigint, text) IS
    'Internal: logout() on the node owning the account of account_key (NULL: a single node).';
REVOKE ALL ON FUNCTION secpolicy.logout(bigint, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.list_sessions(session_token text)
    RETURNS TABLE (session_id bigint, created_at timestamptz, last_seen_at timestamptz,
                   client_addr inet, user_agent text, mfa boolean, current boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
BEGIN
    IF secpolicy.distributed() THEN
        k := secpolicy.route_key(substring(list_sessions.session_token FROM '[.]([0-9]+)$'));
        RETURN QUERY SELECT * FROM secpolicy.list_sessions(k, list_sessions.session_token);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM secpolicy.list_sessions(NULL::bigint, list_sessions.session_token);
END
$$;
COMMENT ON FUNCTION secpolicy.list_sessions(text) IS
    'The live sessions of the user owning an active session token (none for any other token).';
REVOKE ALL ON FUNCTION secpolicy.list_sessions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.list_sessions(text) TO secpolicy_app;

-- Internal: list_sessions() on the node owning the account of account_key.
CREATE FUNCTION secpolicy.list_sessions(account_key bigint, session_token text)
    RETURNS TABLE (session_id bigint, created_at timestamptz, last_seen_at timestamptz,
                   client_addr inet, user_agent text, mfa boolean, current boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st secpolicy.session_proof := secpolicy.session_touch(list_sessions.account_key, list_sessions.session_token);
BEGIN
    IF st.status <> 'active' THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT s.id, s.created_at, s.last_seen_at, s.client_addr, s.user_agent, s.mfa,
               s.id = st.session_id
          FROM secpolicy.sessions s
         WHERE s.user_id = st.user_id AND s.ended_at IS NULL
         ORDER BY s.id;
END
$$;
COMMENT ON FUNCTION secpolicy.list_sessions(bigint, text) IS
    'Internal: list_sessions() on the node owning the account of account_key (NULL: a single node).';
REVOKE ALL ON FUNCTION secpolicy.list_sessions(bigint, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.end_other_sessions(session_token text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
    n integer;
BEGIN
    IF secpolicy.distributed() THEN
        k := secpolicy.route_key(substring(end_other_sessions.session_token FROM '[.]([0-9]+)$'));
        SELECT e INTO n FROM secpolicy.end_other_sessions(k, end_other_sessions.session_token) e;
        RETURN n;
    END IF;
    RETURN secpolicy.end_other_sessions(NULL::bigint, end_other_sessions.session_token);
END
$$;
COMMENT ON FUNCTION secpolicy.end_other_sessions(text) IS
    'Signs the owner of an active session out everywhere else; returns how many sessions ended.';
REVOKE ALL ON FUNCTION secpolicy.end_other_sessions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.end_other_sessions(text) TO secpolicy_app;

-- Internal: end_other_sessions() on the node owning the account of account_key.
CREATE FUNCTION secpolicy.end_other_sessions(account_key bigint, session_token text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('end_other_sessions');
    st secpolicy.session_proof := secpolicy.session_touch(end_other_sessions.account_key,
                                                          end_other_sessions.session_token);
BEGIN
    IF st.status <> 'active' THEN
        RETURN 0;
    END IF;
    RETURN secpolicy.end_sessions(st.user_id, 'logout', st.session_id);
END
$$;
COMMENT ON FUNCTION secpolicy.end_other_sessions(bigint, text) IS
    'Internal: end_other_sessions() on the node owning the account of account_key (NULL: a single node).';
REVOKE ALL ON FUNCTION secpolicy.end_other_sessions(bigint, text) FROM PUBLIC;

-- Housekeeping: mark sessions that went idle or outlived their lifetime as
-- ended (with the time they really expired), and delete ended sessions older
-- than keep_ended.  Safe to run at any time; schedule it with maintain().
-- Internal: end the open sessions that are past the given idle timeout or
-- lifetime at time `at`, with the time and reason they ended at; returns how many.
CREATE FUNCTION secpolicy.end_expired_sessions(idle_timeout interval, max_lifetime interval,
                                               at timestamptz DEFAULT pg_catalog.now()) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    IF secpolicy.distributed() THEN
        -- the same in UTC (a distributed update may only give columns to
        -- immutable functions; timestamptz + interval depends on TimeZone)
        UPDATE secpolicy.sessions s
           SET ended_at = least(((s.last_seen_at AT TIME ZONE 'UTC') + end_expired_sessions.idle_timeout) AT TIME ZONE 'UTC',
                                ((s.created_at AT TIME ZONE 'UTC') + end_expired_sessions.max_lifetime) AT TIME ZONE 'UTC'),
               end_reason = CASE WHEN (s.created_at AT TIME ZONE 'UTC') + end_expired_sessions.max_lifetime
                                      <= (s.last_seen_at AT TIME ZONE 'UTC') + end_expired_sessions.idle_timeout
                                 THEN 'lifetime' ELSE 'idle' END
         WHERE s.ended_at IS NULL
           AND (s.last_seen_at < end_expired_sessions.at - end_expired_sessions.idle_timeout
                OR s.created_at < end_expired_sessions.at - end_expired_sessions.max_lifetime);
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    UPDATE secpolicy.sessions s
       SET ended_at = least(s.last_seen_at + end_expired_sessions.idle_timeout,
                            s.created_at + end_expired_sessions.max_lifetime),
           end_reason = CASE WHEN s.created_at + end_expired_sessions.max_lifetime
                                  <= s.last_seen_at + end_expired_sessions.idle_timeout
                             THEN 'lifetime' ELSE 'idle' END
     WHERE s.ended_at IS NULL
       AND (s.last_seen_at < end_expired_sessions.at - end_expired_sessions.idle_timeout
            OR s.created_at < end_expired_sessions.at - end_expired_sessions.max_lifetime);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.end_expired_sessions(interval, interval, timestamptz) IS
    'Internal: ends the open sessions past this idle timeout or lifetime at a time (reason idle or lifetime).';
REVOKE ALL ON FUNCTION secpolicy.end_expired_sessions(interval, interval, timestamptz) FROM PUBLIC;

CREATE FUNCTION secpolicy.expire_sessions(keep_ended interval DEFAULT '30 days',
                                          OUT expired integer, OUT deleted integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT secpolicy.end_expired_sessions(p.session_idle_timeout, p.session_max_lifetime)
      INTO expired FROM secpolicy.policy p;
    WITH d AS (
        DELETE FROM secpolicy.sessions s WHERE s.ended_at < now() - keep_ended RETURNING 1)
    SELECT count(*) INTO deleted FROM d;
END
$$;
COMMENT ON FUNCTION secpolicy.expire_sessions(interval) IS
    'Ends sessions past their idle timeout or lifetime and deletes ended sessions older than keep_ended.';
REVOKE ALL ON FUNCTION secpolicy.expire_sessions(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.expire_sessions(interval) TO secpolicy_admin;

-- Expiry is written lazily (by session_touch or expire_sessions), so a
-- longer idle timeout or lifetime would otherwise revive sessions that had
-- already expired: end those under the old settings first, at commit (a
-- deferred trigger) and by the clock, so that sessions expiring while the
-- changing transaction is open are ended too.
CREATE FUNCTION secpolicy.policy_sessions() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- on a distributed installation every node's copy of the policy fires
    -- this: the node where the change was made ends the sessions of all
    IF secpolicy.distributed() AND secpolicy.citus_task() THEN
        RETURN NULL;
    END IF;
    PERFORM secpolicy.end_expired_sessions(OLD.session_idle_timeout, OLD.session_max_lifetime,
                                           clock_timestamp());
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.policy_sessions() IS
    'Trigger: before a longer idle timeout or lifetime takes effect, ends the sessions expired under the old one.';
REVOKE ALL ON FUNCTION secpolicy.policy_sessions() FROM PUBLIC;
CREATE CONSTRAINT TRIGGER policy_sessions AFTER UPDATE OF session_idle_timeout, session_max_lifetime
    ON secpolicy.policy DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.session_idle_timeout > OLD.session_idle_timeout OR NEW.session_max_lifetime > OLD.session_max_lifetime)
    EXECUTE FUNCTION secpolicy.policy_sessions();
