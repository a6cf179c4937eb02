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
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE secpolicy.mfa_challenges c SET used_at = now()
     WHERE c.user_id = $1 AND c.used_at IS NULL AND $2 IN ('password_changed', 'admin', 'disabled');
    WITH ended AS (
        UPDATE secpolicy.sessions s
           SET ended_at = now(), end_reason = $2
         WHERE s.user_id = $1 AND s.ended_at IS NULL
           AND s.id IS DISTINCT FROM $3
        RETURNING 1)
    SELECT count(*)::integer FROM ended;
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
    token text := secpolicy.random_token('sps');
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
BEGIN
    IF action = 'touch' THEN
        -- concurrent touches that all saw a stale last_seen_at write it once
        UPDATE secpolicy.sessions s SET last_seen_at = session_mark.at
         WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id AND s.ended_at IS NULL
           AND s.last_seen_at < session_mark.at
           AND s.last_seen_at <= session_mark.at - (SELECT p.session_touch_interval FROM secpolicy.policy p);
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

CREATE FUNCTION secpolicy.logout(session_token text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM secpolicy.require_writable('logout');
    IF session_token IS NULL OR length(session_token) > 128 THEN
        RETURN false;
    END IF;
    UPDATE secpolicy.sessions x SET ended_at = now(), end_reason = 'logout'
     WHERE x.token_digest = secpolicy.token_digest(session_token) AND x.ended_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- fail closed: after any logout the transaction proves no session
    PERFORM secpolicy.set_current_session(NULL, NULL);
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.logout(text) IS
    'Ends a live session; false for an unknown or already ended one.';
REVOKE ALL ON FUNCTION secpolicy.logout(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.logout(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.list_sessions(session_token text)
    RETURNS TABLE (session_id bigint, created_at timestamptz, last_seen_at timestamptz,
                   client_addr inet, user_agent text, mfa boolean, current boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st secpolicy.session_status := secpolicy.session_touch(session_token);
BEGIN
    IF st.status <> 'active' THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT s.id, s.created_at, s.last_seen_at, s.client_addr, s.user_agent, s.mfa,
               s.id = secpolicy.current_session_id()
          FROM secpolicy.sessions s
         WHERE s.user_id = st.user_id AND s.ended_at IS NULL
         ORDER BY s.id;
END
$$;
COMMENT ON FUNCTION secpolicy.list_sessions(text) IS
    'The live sessions of the user owning an active session token (none for any other token).';
REVOKE ALL ON FUNCTION secpolicy.list_sessions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.list_sessions(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.end_other_sessions(session_token text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('end_other_sessions');
    st secpolicy.session_status := secpolicy.session_touch(session_token);
BEGIN
    IF st.status <> 'active' THEN
        RETURN 0;
    END IF;
    RETURN secpolicy.end_sessions(st.user_id, 'logout', secpolicy.current_session_id());
END
$$;
COMMENT ON FUNCTION secpolicy.end_other_sessions(text) IS
    'Signs the owner of an active session out everywhere else; returns how many sessions ended.';
REVOKE ALL ON FUNCTION secpolicy.end_other_sessions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.end_other_sessions(text) TO secpolicy_app;

-- Housekeeping: mark sessions that went idle or outlived their lifetime as
-- ended (with the time they really expired), and delete ended sessions older
-- than keep_ended.  Safe to run at any time; schedule it with maintain().
-- Internal: end the open sessions that are past the given idle timeout or
-- lifetime at time `at`, with the time and reason they ended at; returns how many.
CREATE FUNCTION secpolicy.end_expired_sessions(idle_timeout interval, max_lifetime interval,
                                               at timestamptz DEFAULT pg_catalog.now()) RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH e AS (
        UPDATE secpolicy.sessions s
           SET ended_at = least(s.last_seen_at + idle_timeout, s.created_at + max_lifetime),
               end_reason = CASE WHEN s.created_at + max_lifetime <= s.last_seen_at + idle_timeout
                                 THEN 'lifetime' ELSE 'idle' END
         WHERE s.ended_at IS NULL
           AND (s.last_seen_at < at - idle_timeout OR s.created_at < at - max_lifetime)
        RETURNING 1)
    SELECT count(*)::integer FROM e;
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
