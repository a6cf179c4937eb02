-- Administration: account lifecycle, access grants, presets, key rotation.
-- Admin functions raise with precise SQLSTATEs and audit every action with
-- the acting database user (SESSION_USER) and the reason given.

-- Internal: the id of an account by username (case-insensitive), locked;
-- raises 42704 for an unknown one and 22004/22023 for a missing name.
CREATE FUNCTION secpolicy.user_id_of(username text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint;
BEGIN
    IF user_id_of.username IS NULL THEN
        RAISE EXCEPTION 'username must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT u.id INTO uid FROM secpolicy.users u
     WHERE lower(u.username) = lower(user_id_of.username) FOR UPDATE;
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
CREATE FUNCTION secpolicy.set_password_or_raise(user_id bigint, password text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF password IS NULL THEN
        RAISE EXCEPTION 'password must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM secpolicy.write_password(set_password_or_raise.user_id, set_password_or_raise.password, 'plaintext');
END
$$;
COMMENT ON FUNCTION secpolicy.set_password_or_raise(bigint, text) IS
    'Internal: set a password from plaintext, raising 22023 with the rule codes in DETAIL when rejected.';
REVOKE ALL ON FUNCTION secpolicy.set_password_or_raise(bigint, text) FROM PUBLIC;

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
BEGIN
    IF create_user.username IS NULL THEN
        RAISE EXCEPTION 'username must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF create_user.username = '' OR char_length(create_user.username) > 256
       OR create_user.username ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid username'
            USING ERRCODE = '22023', DETAIL = 'A username has 1 to 256 characters and no control characters.';
    END IF;
    BEGIN
        INSERT INTO secpolicy.users (username, must_change_password)
        VALUES (create_user.username, coalesce(create_user.must_change, false))
        RETURNING users.id INTO uid;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'user "%" already exists', create_user.username USING ERRCODE = '23505',
            DETAIL = 'Usernames are unique regardless of case.';
    END;
    PERFORM secpolicy.set_password_or_raise(uid, create_user.password);
    DELETE FROM secpolicy.unknown_user_failures f WHERE f.username_key = lower(create_user.username);
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
BEGIN
    UPDATE secpolicy.users u SET disabled_at = coalesce(u.disabled_at, now()), disabled_reason = why
     WHERE u.id = uid;
    ended := secpolicy.end_sessions(uid, 'disabled');
    UPDATE secpolicy.password_resets r SET revoked_at = now()
     WHERE r.user_id = uid AND r.used_at IS NULL AND r.revoked_at IS NULL;
    PERFORM secpolicy.audit('user_disabled', uid, disable_user.username, why,
                            jsonb_build_object('sessions_ended', ended));
END
$$;
COMMENT ON FUNCTION secpolicy.disable_user(text, text) IS
    'Disables an account at once: its sessions and reset tokens end; a correct password then answers disabled.';
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
    PERFORM secpolicy.set_password_or_raise(uid, admin_set_password.temporary_password);
    UPDATE secpolicy.users u
       SET must_change_password = true, password_expired = false,
           failed_attempts = 0, reset_required = false, locked_at = NULL
     WHERE u.id = uid;
    PERFORM secpolicy.end_sessions(uid, 'admin');
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
    IF import_password_hash.hash IS NULL
       OR import_password_hash.hash !~ '^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$' THEN
        RAISE EXCEPTION 'not an argon2id hash' USING ERRCODE = '22023',
            DETAIL = 'Only argon2id PHC strings ($argon2id$v=19$m=..,t=..,p=..$salt$hash) can be imported.';
    END IF;
    UPDATE secpolicy.users u SET password_hash = import_password_hash.hash WHERE u.id = uid;
    PERFORM secpolicy.audit('password_hash_imported', uid, import_password_hash.username, import_password_hash.reason);
END
$$;
COMMENT ON FUNCTION secpolicy.import_password_hash(text, text, text) IS
    'Migrates an account from another system by its argon2id hash; the next login rehashes it at the policy''s cost.';
REVOKE ALL ON FUNCTION secpolicy.import_password_hash(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.import_password_hash(text, text, text) TO secpolicy_admin;

-- Access grants: named application permissions an admin gives and takes back.
CREATE TABLE secpolicy.user_access (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    access text NOT NULL CHECK (access ~ '^[a-z][a-z0-9_.:-]{0,62}$'),
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    granted_by text NOT NULL DEFAULT SESSION_USER,
    reason text,
    PRIMARY KEY (user_id, access)
);
COMMENT ON TABLE secpolicy.user_access IS
    'Named permissions (e.g. billing.read) held by accounts; see has_access().';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.user_access', '');
GRANT SELECT ON secpolicy.user_access TO secpolicy_admin;

CREATE FUNCTION secpolicy.grant_access(username text, access text, reason text DEFAULT NULL) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(grant_access.username);
BEGIN
    IF grant_access.access IS NULL OR grant_access.access !~ '^[a-z][a-z0-9_.:-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid access name' USING ERRCODE = '22023',
            DETAIL = 'Access names are 1 to 63 characters: a lower-case letter, then letters, digits, _ . : -';
    END IF;
    INSERT INTO secpolicy.user_access (user_id, access, reason)
    VALUES (uid, grant_access.access, grant_access.reason)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM secpolicy.audit('access_granted', uid, grant_access.username, grant_access.reason,
                            jsonb_build_object('access', grant_access.access));
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.grant_access(text, text, text) IS
    'Gives an account a named access; false when it already had it.';
REVOKE ALL ON FUNCTION secpolicy.grant_access(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.grant_access(text, text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.revoke_access(username text, access text, reason text DEFAULT NULL) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(revoke_access.username);
BEGIN
    DELETE FROM secpolicy.user_access a WHERE a.user_id = uid AND a.access = revoke_access.access;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM secpolicy.audit('access_revoked', uid, revoke_access.username, revoke_access.reason,
                            jsonb_build_object('access', revoke_access.access));
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.revoke_access(text, text, text) IS
    'Takes a named access away; false when the account did not have it.';
REVOKE ALL ON FUNCTION secpolicy.revoke_access(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.revoke_access(text, text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.has_access(access text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM secpolicy.user_access a
                    WHERE a.user_id = secpolicy.current_session_user() AND a.access = $1);
$$;
COMMENT ON FUNCTION secpolicy.has_access(text) IS
    'Does the user of the session proven in this transaction (session_touch) hold this access? For row-level security.';
REVOKE ALL ON FUNCTION secpolicy.has_access(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.has_access(text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.apply_preset(preset text) RETURNS secpolicy.policy
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p secpolicy.policy;
BEGIN
    IF apply_preset.preset = 'org' THEN
        UPDATE secpolicy.policy x
           SET preset = 'org', min_length = 12, max_length = 128, require_upper = true,
               require_lower = true, require_digit = true, require_symbol = true,
               check_username = true, check_blocklist = true, history_depth = 5,
               max_password_age = '6 months'
        RETURNING * INTO p;
    ELSIF apply_preset.preset = 'nist' THEN
        UPDATE secpolicy.policy x
           SET preset = 'nist', min_length = 15, max_length = 128, require_upper = false,
               require_lower = false, require_digit = false, require_symbol = false,
               check_username = true, check_blocklist = true, history_depth = 0,
               max_password_age = NULL
        RETURNING * INTO p;
    ELSE
        RAISE EXCEPTION 'unknown preset "%"', apply_preset.preset USING ERRCODE = '22023',
            HINT = 'Presets are org and nist.';
    END IF;
    RETURN p;
END
$$;
COMMENT ON FUNCTION secpolicy.apply_preset(text) IS
    'Fills the password rules of the policy from a preset: org (the organisation''s policy) or nist (SP 800-63B rev 4).';
REVOKE ALL ON FUNCTION secpolicy.apply_preset(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.apply_preset(text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.reseal_secrets() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_id text := (SELECT k.key_id FROM secpolicy.key_status() k);
    n integer;
BEGIN
    IF current_id IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file to the new key and secpolicy.previous_key_file to the old one.';
    END IF;
    WITH r AS (
        UPDATE secpolicy.totp_credentials c
           SET sealed_secret = CASE WHEN c.sealed_secret IS NOT NULL
                                         AND secpolicy.sealed_key_id(c.sealed_secret) <> current_id
                                    THEN secpolicy.reseal(c.sealed_secret) ELSE c.sealed_secret END,
               pending_secret = CASE WHEN c.pending_secret IS NOT NULL
                                          AND secpolicy.sealed_key_id(c.pending_secret) <> current_id
                                     THEN secpolicy.reseal(c.pending_secret) ELSE c.pending_secret END
         WHERE secpolicy.sealed_key_id(c.sealed_secret) <> current_id
            OR secpolicy.sealed_key_id(c.pending_secret) <> current_id
        RETURNING 1)
    SELECT count(*) INTO n FROM r;
    PERFORM secpolicy.audit('secrets_resealed', NULL, NULL, NULL,
                            jsonb_build_object('key_id', current_id, 'resealed', n));
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.reseal_secrets() IS
    'Key rotation: seals every second-factor secret under the current key (secpolicy.key_file); returns how many changed.';
REVOKE ALL ON FUNCTION secpolicy.reseal_secrets() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.reseal_secrets() TO secpolicy_admin;
