-- Account administration: create, disable, enable, unlock, set and expire
-- passwords, force resets, remove a second factor, end sessions, import
-- hashes.  Admin functions raise with precise SQLSTATEs and audit every
-- action with the acting database user (SESSION_USER) and the reason given.

-- Internal: clear entries of the guess ledger when the transaction commits,
-- in the ledger of the node that counts them: on a distributed installation
-- the worker owning account_key (call it in FROM), for keys of accounts and
-- names of that worker.
CREATE FUNCTION secpolicy.clear_guesses(account_key bigint, ledger_keys text[]) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM secpolicy.guess_clear(k) FROM unnest(clear_guesses.ledger_keys) k;
END
$$;
COMMENT ON FUNCTION secpolicy.clear_guesses(bigint, text[]) IS
    'Internal: clear entries of the guess ledger when the transaction commits, on the node owning account_key.';
REVOKE ALL ON FUNCTION secpolicy.clear_guesses(bigint, text[]) FROM PUBLIC;

-- Internal: the id of an account by username (case-insensitive), locked;
-- raises 42704 for an unknown one and 22004/22023 for a missing name.
CREATE FUNCTION secpolicy.user_id_of(username text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint;
    k bigint;
BEGIN
    IF user_id_of.username IS NULL THEN
        RAISE EXCEPTION 'username must not be NULL' USING ERRCODE = '22004';
    END IF;
    -- on a distributed installation the user id is the name's account key
    k := CASE WHEN secpolicy.distributed() THEN secpolicy.account_key(user_id_of.username) END;
    SELECT u.id INTO uid FROM secpolicy.users u
     WHERE lower(u.username) = lower(user_id_of.username) AND (k IS NULL OR u.id = k)
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user "%" does not exist', left(user_id_of.username, 256) USING ERRCODE = '42704';
    END IF;
    RETURN uid;
END
$$;
COMMENT ON FUNCTION secpolicy.user_id_of(text) IS
    'Internal: the locked account of a username, or error 42704.';
REVOKE ALL ON FUNCTION secpolicy.user_id_of(text) FROM PUBLIC;

-- Internal: raise 22023 with the rule codes when a password breaks the policy.
CREATE FUNCTION secpolicy.set_password_or_raise(user_id bigint, password text, mode text DEFAULT 'plaintext')
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF password IS NULL THEN
        RAISE EXCEPTION 'password must not be NULL' USING ERRCODE = '22004';
    END IF;
    -- a call in FROM: on a distributed installation the worker owning the
    -- account runs it (the trigger it fires needs the mode it sets)
    PERFORM 1 FROM secpolicy.write_password(set_password_or_raise.user_id, set_password_or_raise.password,
                                            set_password_or_raise.mode);
END
$$;
COMMENT ON FUNCTION secpolicy.set_password_or_raise(bigint, text, text) IS
    'Internal: set a password from plaintext, raising 22023 with the rule codes in DETAIL when rejected.';
REVOKE ALL ON FUNCTION secpolicy.set_password_or_raise(bigint, text, text) FROM PUBLIC;

-- Internal: a reason is required for actions that take access away.
CREATE FUNCTION secpolicy.require_reason(reason text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a reason is required' USING ERRCODE = '22004',
            HINT = 'The reason is kept in the audit log.';
    END IF;
    RETURN reason;
END
$$;
COMMENT ON FUNCTION secpolicy.require_reason(text) IS 'Internal: raise 22004 for a missing reason.';
REVOKE ALL ON FUNCTION secpolicy.require_reason(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.create_user(username text, password text, must_change boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint;
    -- on a distributed installation the user id is the name's account key,
    -- which places the account on the worker owning that key's shard
    k bigint := CASE WHEN secpolicy.distributed() THEN secpolicy.account_key(create_user.username) END;
    taken text;
BEGIN
    IF create_user.username IS NULL THEN
        RAISE EXCEPTION 'username must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF create_user.username = '' OR char_length(create_user.username) > 256
       OR create_user.username ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid username'
            USING ERRCODE = '22023', DETAIL = 'A username has 1 to 256 characters and no control characters.';
    END IF;
    IF k IS NOT NULL THEN
        -- two names with one key (a SHA-256 collision in 63 bits): the second is refused
        SELECT u.username INTO taken FROM secpolicy.users u WHERE u.id = k;
        IF FOUND AND lower(taken) <> lower(left(create_user.username, 256)) THEN
            RAISE EXCEPTION 'the account key of user "%" is taken by another username', create_user.username
                USING ERRCODE = '23505', HINT = 'Choose another username.';
        END IF;
    END IF;
    BEGIN
        INSERT INTO secpolicy.users (id, username, must_change_password)
        VALUES (coalesce(k, nextval('secpolicy.users_id_seq')), create_user.username,
                coalesce(create_user.must_change, false))
        RETURNING users.id INTO uid;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'user "%" already exists', create_user.username USING ERRCODE = '23505',
            DETAIL = 'Usernames are unique regardless of case.';
    END;
    PERFORM secpolicy.set_password_or_raise(uid, create_user.password);
    DELETE FROM secpolicy.unknown_user_failures f
     WHERE f.username_key = lower(create_user.username) AND (k IS NULL OR f.account_key = k);
    PERFORM secpolicy.audit('user_created', uid, create_user.username, NULL,
                            jsonb_build_object('must_change_password', coalesce(create_user.must_change, false)));
    RETURN uid;
END
$$;
COMMENT ON FUNCTION secpolicy.create_user(text, text, boolean) IS
    'Creates an account with a password that meets the policy; returns its id.';
REVOKE ALL ON FUNCTION secpolicy.create_user(text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.create_user(text, text, boolean) TO secpolicy_admin;

CREATE FUNCTION secpolicy.disable_user(username text, reason text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(disable_user.username);
    why text := secpolicy.require_reason(disable_user.reason);
    ended integer;
    t timestamptz := now();
BEGIN
    UPDATE secpolicy.users u SET disabled_at = coalesce(u.disabled_at, t), disabled_reason = why
     WHERE u.id = uid;
    ended := secpolicy.end_sessions(uid, 'disabled');
    PERFORM secpolicy.revoke_reset_tokens(uid);
    PERFORM secpolicy.audit('user_disabled', uid, disable_user.username, why,
                            jsonb_build_object('sessions_ended', ended,
                                               'credentials_due', secpolicy.mark_credentials_due(uid, 'holder disabled: ' || why)));
END
$$;
COMMENT ON FUNCTION secpolicy.disable_user(text, text) IS
    'Disables an account at once: its sessions and reset tokens end, the shared credentials it knew fall due for rotation; a correct password then answers disabled.';
REVOKE ALL ON FUNCTION secpolicy.disable_user(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.disable_user(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.enable_user(username text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(enable_user.username);
BEGIN
    UPDATE secpolicy.users u SET disabled_at = NULL, disabled_reason = NULL WHERE u.id = uid;
    PERFORM secpolicy.audit('user_enabled', uid, enable_user.username, enable_user.reason);
END
$$;
COMMENT ON FUNCTION secpolicy.enable_user(text, text) IS 'Re-enables a disabled account.';
REVOKE ALL ON FUNCTION secpolicy.enable_user(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.enable_user(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.unlock_user(username text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(unlock_user.username);
BEGIN
    UPDATE secpolicy.users u SET failed_attempts = 0, reset_required = false, locked_at = NULL
     WHERE u.id = uid;
    PERFORM 1 FROM secpolicy.clear_guesses(uid, ARRAY['u:' || uid]);
    PERFORM secpolicy.audit('user_unlocked', uid, unlock_user.username, unlock_user.reason);
END
$$;
COMMENT ON FUNCTION secpolicy.unlock_user(text, text) IS
    'Clears the failure counter and the reset requirement of an account.';
REVOKE ALL ON FUNCTION secpolicy.unlock_user(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.unlock_user(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.admin_set_password(username text, temporary_password text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(admin_set_password.username);
BEGIN
    PERFORM secpolicy.set_password_or_raise(uid, admin_set_password.temporary_password, 'temporary');
    UPDATE secpolicy.users u
       SET must_change_password = true, password_expired = false,
           failed_attempts = 0, reset_required = false, locked_at = NULL
     WHERE u.id = uid;
    PERFORM 1 FROM secpolicy.clear_guesses(uid, ARRAY['u:' || uid]);
    PERFORM secpolicy.end_sessions(uid, 'admin');
    PERFORM secpolicy.revoke_reset_tokens(uid);
    PERFORM secpolicy.audit('password_set_by_admin', uid, admin_set_password.username, admin_set_password.reason);
END
$$;
COMMENT ON FUNCTION secpolicy.admin_set_password(text, text, text) IS
    'Sets a temporary password that the user must change at the next login; clears a lockout and ends sessions.';
REVOKE ALL ON FUNCTION secpolicy.admin_set_password(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.admin_set_password(text, text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.expire_password(username text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(expire_password.username);
BEGIN
    UPDATE secpolicy.users u SET password_expired = true WHERE u.id = uid;
    -- a second-factor challenge issued before must not open a session now
    UPDATE secpolicy.mfa_challenges c SET used_at = now() WHERE c.user_id = uid AND c.used_at IS NULL;
    PERFORM secpolicy.audit('password_expired_by_admin', uid, expire_password.username, expire_password.reason);
END
$$;
COMMENT ON FUNCTION secpolicy.expire_password(text, text) IS
    'Expires a password now: the next login with it answers password_expired until change_password().';
REVOKE ALL ON FUNCTION secpolicy.expire_password(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.expire_password(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.force_password_reset(username text, reason text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(force_password_reset.username);
    why text := secpolicy.require_reason(force_password_reset.reason);
BEGIN
    UPDATE secpolicy.users u SET reset_required = true WHERE u.id = uid;
    PERFORM secpolicy.end_sessions(uid, 'admin');
    PERFORM secpolicy.audit('password_reset_forced', uid, force_password_reset.username, why);
END
$$;
COMMENT ON FUNCTION secpolicy.force_password_reset(text, text) IS
    'Requires a password reset (e.g. on evidence of compromise); sessions end.';
REVOKE ALL ON FUNCTION secpolicy.force_password_reset(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.force_password_reset(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.reset_mfa(username text, reason text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(reset_mfa.username);
    why text := secpolicy.require_reason(reset_mfa.reason);
BEGIN
    DELETE FROM secpolicy.totp_credentials c WHERE c.user_id = uid;
    DELETE FROM secpolicy.recovery_codes r WHERE r.user_id = uid;
    UPDATE secpolicy.mfa_challenges c SET used_at = now() WHERE c.user_id = uid AND c.used_at IS NULL;
    PERFORM secpolicy.end_sessions(uid, 'admin');
    PERFORM secpolicy.audit('mfa_reset', uid, reset_mfa.username, why);
END
$$;
COMMENT ON FUNCTION secpolicy.reset_mfa(text, text) IS
    'Removes a user''s second factor and recovery codes (lost device); the next login asks for a new enrolment.';
REVOKE ALL ON FUNCTION secpolicy.reset_mfa(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.reset_mfa(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.revoke_sessions(username text, reason text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(revoke_sessions.username);
    why text := secpolicy.require_reason(revoke_sessions.reason);
    n integer := secpolicy.end_sessions(uid, 'admin');
BEGIN
    PERFORM secpolicy.audit('sessions_revoked', uid, revoke_sessions.username, why,
                            jsonb_build_object('sessions_ended', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.revoke_sessions(text, text) IS
    'Ends every live session of a user; returns how many.';
REVOKE ALL ON FUNCTION secpolicy.revoke_sessions(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.revoke_sessions(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.import_password_hash(username text, hash text, reason text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(import_password_hash.username);
BEGIN
    IF import_password_hash.hash IS NULL THEN
        RAISE EXCEPTION 'hash must not be NULL' USING ERRCODE = '22004';
    END IF;
    -- write_password checks the string (argon2id, within the cost bounds) in C
    PERFORM 1 FROM secpolicy.write_password(uid, import_password_hash.hash, 'import');
    PERFORM secpolicy.audit('password_hash_imported', uid, import_password_hash.username, import_password_hash.reason);
END
$$;
COMMENT ON FUNCTION secpolicy.import_password_hash(text, text, text) IS
    'Migrates an account from another system by its argon2id hash; the next login rehashes it at the policy''s cost.';
REVOKE ALL ON FUNCTION secpolicy.import_password_hash(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.import_password_hash(text, text, text) TO secpolicy_admin;
