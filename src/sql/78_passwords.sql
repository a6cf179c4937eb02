-- Password change and self-service reset.

CREATE TYPE secpolicy.password_result AS (status text, violations text[]);
COMMENT ON TYPE secpolicy.password_result IS
    'Result of change_password() and reset_password(): a status and, when rejected, the rule codes broken.';

-- Internal: set a user's password from plaintext through the users trigger
-- (rules, history, hashing).  Returns the rule codes broken, or an empty
-- array when the password was set.
CREATE FUNCTION secpolicy.try_set_password(user_id bigint, new_password text) RETURNS text[]
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    detail text;
BEGIN
    IF new_password IS NULL OR new_password = '' THEN
        RETURN ARRAY['too_short'];
    END IF;
    PERFORM secpolicy.write_password(try_set_password.user_id, try_set_password.new_password, 'plaintext');
    UPDATE secpolicy.users u SET must_change_password = false, password_expired = false
     WHERE u.id = try_set_password.user_id;
    RETURN '{}';
EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    IF detail NOT LIKE 'rule codes: %' THEN
        RAISE;
    END IF;
    RETURN string_to_array(substr(detail, length('rule codes: ') + 1), ', ');
END
$$;
COMMENT ON FUNCTION secpolicy.try_set_password(bigint, text) IS
    'Internal: set a password from plaintext; returns the rule codes broken (empty when set).';
REVOKE ALL ON FUNCTION secpolicy.try_set_password(bigint, text) FROM PUBLIC;

CREATE TABLE secpolicy.password_resets (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    id bigserial NOT NULL,
    token_digest bytea NOT NULL UNIQUE,
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    requested_addr inet,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz,
    reuse_rejections integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, id)
);
COMMENT ON TABLE secpolicy.password_resets IS
    'Password-reset tokens (as SHA-256 digests): single use, expiring, one live token per user.';
-- dumped: a restore keeps the reset links already sent out working
SELECT pg_catalog.pg_extension_config_dump('secpolicy.password_resets', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.password_resets_id_seq', '');
GRANT SELECT (user_id, id, requested_at, requested_addr, expires_at, used_at, revoked_at)
    ON secpolicy.password_resets TO secpolicy_admin;

-- Requests for unknown or disabled accounts write a row here instead of a
-- token, so that they cost what a real request costs (same answer, same
-- time, like login).  Nothing reads it; maintain() empties it.  Not dumped.
CREATE TABLE secpolicy.reset_decoys (
    id bigserial PRIMARY KEY,
    token_digest bytea NOT NULL UNIQUE,
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    requested_addr inet,
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE secpolicy.reset_decoys IS
    'Internal: the writes that requests for unknown or disabled accounts make, so that they take as long as real ones.';

-- Internal: revoke a user's live reset tokens; whatever changes or locks the
-- password (a new request, a change, an admin, disabling) calls it.
CREATE FUNCTION secpolicy.revoke_reset_tokens(user_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL keeps the plan across calls (an SQL function is planned at each)
    UPDATE secpolicy.password_resets r SET revoked_at = now()
     WHERE r.user_id = revoke_reset_tokens.user_id AND r.used_at IS NULL AND r.revoked_at IS NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.revoke_reset_tokens(bigint) IS
    'Internal: revoke the live password-reset tokens of a user.';
REVOKE ALL ON FUNCTION secpolicy.revoke_reset_tokens(bigint) FROM PUBLIC;

-- Changing a password takes the current one and, for an account with a second
-- factor, that factor too: a session that passed it (session_token) or a code
-- (mfa_code, a TOTP or recovery code), so that a stolen password alone can
-- neither replace the password nor end the owner's sessions.  A new password
-- refused by the rules or the history spends no code; a wrong code counts as
-- a failure.
CREATE FUNCTION secpolicy.change_password(username text, old_password text, new_password text,
                                          client_addr inet DEFAULT NULL,
                                          session_token text DEFAULT NULL,
                                          mfa_code text DEFAULT NULL)
    RETURNS secpolicy.password_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u secpolicy.users;
    a record := secpolicy.authenticate(change_password.username, change_password.old_password,
                                       change_password.client_addr, NULL, 'change_password');
    broken text[];
    keep bigint;
    keep_mfa boolean := false;
    factor text;
BEGIN
    IF a.status <> 'password_ok' THEN
        RETURN ROW(a.status, NULL)::secpolicy.password_result;
    END IF;
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = a.user_id;
    IF u.disabled_at IS NOT NULL THEN
        PERFORM secpolicy.record_attempt(u.id, change_password.username, change_password.client_addr, NULL,
                                         false, 'disabled', 'change_password');
        RETURN ROW('invalid_credentials', NULL)::secpolicy.password_result;
    END IF;
    IF u.reset_required THEN
        RETURN ROW('reset_required', NULL)::secpolicy.password_result;
    END IF;

    -- the session the change is made from (if given and live) stays; it proves
    -- the second factor when it was opened with it
    SELECT s.id, s.mfa INTO keep, keep_mfa FROM secpolicy.sessions s
     WHERE change_password.session_token IS NOT NULL AND length(change_password.session_token) <= 128
       AND s.token_digest = secpolicy.token_digest(change_password.session_token)
       AND s.user_id = u.id AND s.ended_at IS NULL
       AND (secpolicy.session_touch(change_password.session_token)).status = 'active';

    -- the rules first (history is checked when the password is set), so that a
    -- rejected password does not spend a code
    broken := secpolicy.password_violations(change_password.new_password, u.username);
    IF change_password.new_password IS NULL OR change_password.new_password = '' THEN
        broken := ARRAY['too_short'];
    END IF;
    IF cardinality(broken) > 0 THEN
        RETURN ROW('rejected', broken)::secpolicy.password_result;
    END IF;

    IF EXISTS (SELECT 1 FROM secpolicy.totp_credentials c WHERE c.user_id = u.id AND c.confirmed_at IS NOT NULL)
       AND NOT coalesce(keep_mfa, false) THEN
        IF change_password.mfa_code IS NULL THEN
            PERFORM secpolicy.record_attempt(u.id, change_password.username, change_password.client_addr, NULL,
                                             false, 'mfa_required', 'change_password');
            RETURN ROW('mfa_required', NULL)::secpolicy.password_result;
        END IF;
        factor := secpolicy.may_guess(u.id, u.failed_attempts, u.reset_required);
        IF factor <> 'ok' THEN
            PERFORM secpolicy.record_attempt(u.id, change_password.username, change_password.client_addr, NULL,
                                             false, factor, 'change_password');
            RETURN ROW('reset_required', NULL)::secpolicy.password_result;
        END IF;
        -- a password refused (reused, say) gives the code back: the savepoint
        -- undoes its spending
        BEGIN
            factor := secpolicy.check_second_factor(u.id, change_password.mfa_code);
            IF factor IN ('totp', 'recovery_code') THEN
                broken := secpolicy.try_set_password(u.id, change_password.new_password);
                IF cardinality(broken) > 0 THEN
                    RAISE EXCEPTION USING ERRCODE = 'P0004';
                END IF;
            END IF;
        EXCEPTION WHEN assert_failure THEN
            NULL;
        END;
        IF factor IN ('invalid_code', 'replayed_code') THEN
            IF factor = 'replayed_code' THEN
                PERFORM secpolicy.audit('totp_replay_rejected', u.id, u.username);
            END IF;
            RETURN ROW(secpolicy.code_failure(u.id, u.username, factor, change_password.client_addr, NULL,
                                              'change_password'),
                       NULL)::secpolicy.password_result;
        END IF;
        PERFORM secpolicy.guess_end('u:' || u.id);
        IF cardinality(broken) > 0 THEN
            RETURN ROW('rejected', broken)::secpolicy.password_result;
        END IF;
        IF factor = 'recovery_code' THEN
            PERFORM secpolicy.audit('recovery_code_used', u.id, u.username, NULL,
                                    jsonb_build_object('remaining',
                                        (SELECT count(*) FROM secpolicy.recovery_codes r
                                          WHERE r.user_id = u.id AND r.used_at IS NULL)));
        END IF;
    ELSE
        broken := secpolicy.try_set_password(u.id, change_password.new_password);
        IF cardinality(broken) > 0 THEN
            RETURN ROW('rejected', broken)::secpolicy.password_result;
        END IF;
    END IF;

    -- other sessions end; the one the change was made from stays
    PERFORM secpolicy.end_sessions(u.id, 'password_changed', keep);
    PERFORM secpolicy.revoke_reset_tokens(u.id);
    PERFORM secpolicy.record_attempt(u.id, change_password.username, change_password.client_addr, NULL,
                                     true, 'password_changed', 'change_password');
    PERFORM secpolicy.audit('password_changed', u.id, u.username);
    RETURN ROW('ok', '{}'::text[])::secpolicy.password_result;
END
$$;
COMMENT ON FUNCTION secpolicy.change_password(text, text, text, inet, text, text) IS
    'Changes a password given the current one and, for an account with a second factor, a session opened with it or a code (expired passwords included); other sessions of the user end.';
REVOKE ALL ON FUNCTION secpolicy.change_password(text, text, text, inet, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.change_password(text, text, text, inet, text, text) TO secpolicy_app;

-- The answer for an unknown or disabled account is NULL, and costs what an
-- existing account's costs: a token is made and digested, a row written
-- (a decoy) and the request recorded in the attempt log (stage reset) either
-- way, so both take the same statements and both commits wait for a WAL flush.
CREATE FUNCTION secpolicy.request_password_reset(username text, client_addr inet DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('request_password_reset');
    u secpolicy.users;
    token text := secpolicy.random_token('spr');
    digest bytea := secpolicy.token_digest(token);
BEGIN
    IF request_password_reset.username IS NULL OR request_password_reset.username = '' THEN
        PERFORM secpolicy.record_attempt(NULL, request_password_reset.username, request_password_reset.client_addr,
                                         NULL, false, 'invalid_input', 'reset');
        RETURN NULL;
    END IF;
    SELECT * INTO u FROM secpolicy.users x
     WHERE lower(x.username) = lower(request_password_reset.username) FOR UPDATE;
    IF NOT FOUND OR u.disabled_at IS NOT NULL THEN
        -- the same statements as below, on a decoy: the previous decoy stands
        -- for the account's row lock and its previous token
        UPDATE secpolicy.reset_decoys d SET expires_at = now()
         WHERE d.id = (SELECT max(x.id) FROM secpolicy.reset_decoys x);
        PERFORM secpolicy.revoke_reset_tokens(NULL);
        INSERT INTO secpolicy.reset_decoys (token_digest, requested_addr, expires_at)
        VALUES (digest, request_password_reset.client_addr,
                now() + (SELECT p.reset_token_lifetime FROM secpolicy.policy p));
        PERFORM secpolicy.record_attempt(u.id, request_password_reset.username, request_password_reset.client_addr,
                                         NULL, false, CASE WHEN u.id IS NULL THEN 'unknown_user' ELSE 'disabled' END,
                                         'reset');
        RETURN NULL;
    END IF;
    -- a new token replaces any live one
    PERFORM secpolicy.revoke_reset_tokens(u.id);
    INSERT INTO secpolicy.password_resets (user_id, token_digest, requested_addr, expires_at)
    VALUES (u.id, digest, request_password_reset.client_addr,
            now() + (SELECT p.reset_token_lifetime FROM secpolicy.policy p));
    PERFORM secpolicy.record_attempt(u.id, request_password_reset.username, request_password_reset.client_addr,
                                     NULL, true, 'reset_requested', 'reset');
    RETURN token;
END
$$;
COMMENT ON FUNCTION secpolicy.request_password_reset(text, inet) IS
    'A single-use reset token to deliver to the account''s owner out of band; NULL (in the same time) for an unknown or disabled user.';
REVOKE ALL ON FUNCTION secpolicy.request_password_reset(text, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.request_password_reset(text, inet) TO secpolicy_app;

CREATE FUNCTION secpolicy.reset_password(reset_token text, new_password text)
    RETURNS secpolicy.password_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('reset_password');
    r secpolicy.password_resets;
    u secpolicy.users;
    broken text[];
BEGIN
    IF reset_token IS NULL OR length(reset_token) > 128 THEN
        RETURN ROW('invalid_token', NULL)::secpolicy.password_result;
    END IF;
    SELECT * INTO r FROM secpolicy.password_resets x
     WHERE x.token_digest = secpolicy.token_digest(reset_password.reset_token) FOR UPDATE;
    IF NOT FOUND OR r.used_at IS NOT NULL OR r.revoked_at IS NOT NULL OR r.expires_at <= now() THEN
        RETURN ROW('invalid_token', NULL)::secpolicy.password_result;
    END IF;
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = r.user_id FOR UPDATE;
    IF u.disabled_at IS NOT NULL THEN
        RETURN ROW('invalid_token', NULL)::secpolicy.password_result;
    END IF;

    -- a rejected password leaves the token usable for another try; but "you
    -- used this password before" tells whether a guess was the current one,
    -- so those answers are counted against the token (and, when the ledger
    -- is active, in shared memory, where a rollback cannot erase them)
    CASE secpolicy.guess_check('r:' || r.id, (SELECT p.max_failed_attempts FROM secpolicy.policy p),
                               r.reuse_rejections, 'reset token ' || r.id)
        WHEN 'ok' THEN
            NULL;
        WHEN 'limit' THEN
            UPDATE secpolicy.password_resets x SET revoked_at = now() WHERE x.user_id = r.user_id AND x.id = r.id;
            RETURN ROW('invalid_token', NULL)::secpolicy.password_result;
        ELSE
            RETURN ROW('invalid_token', NULL)::secpolicy.password_result;  -- no room in the ledger
    END CASE;
    broken := secpolicy.try_set_password(u.id, reset_password.new_password);
    IF 'reused_password' = ANY (broken) THEN
        UPDATE secpolicy.password_resets x
           SET reuse_rejections = x.reuse_rejections + 1,
               revoked_at = CASE WHEN x.reuse_rejections + 1 >= (SELECT p.max_failed_attempts FROM secpolicy.policy p)
                                 THEN now() END
         WHERE x.user_id = r.user_id AND x.id = r.id;
    ELSE
        PERFORM secpolicy.guess_end('r:' || r.id);
    END IF;
    IF cardinality(broken) > 0 THEN
        RETURN ROW('rejected', broken)::secpolicy.password_result;
    END IF;

    UPDATE secpolicy.users x
       SET failed_attempts = 0, reset_required = false, locked_at = NULL
     WHERE x.id = u.id;
    PERFORM secpolicy.guess_clear('u:' || u.id);
    UPDATE secpolicy.password_resets x SET used_at = now() WHERE x.user_id = r.user_id AND x.id = r.id;
    PERFORM secpolicy.end_sessions(u.id, 'password_changed');
    PERFORM secpolicy.audit('password_reset', u.id, u.username, NULL,
                            jsonb_build_object('requested_at', r.requested_at, 'requested_addr', r.requested_addr));
    RETURN ROW('ok', '{}'::text[])::secpolicy.password_result;
END
$$;
COMMENT ON FUNCTION secpolicy.reset_password(text, text) IS
    'Sets a new password with a reset token; clears the lockout and ends every session of the user.';
REVOKE ALL ON FUNCTION secpolicy.reset_password(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.reset_password(text, text) TO secpolicy_app;
