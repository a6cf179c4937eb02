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
CREATE FUNCTION secpolicy.set_password_or_raise(user_id bigint, password text, mode text DEFAULT 'plaintext')
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF password IS NULL THEN
        RAISE EXCEPTION 'password must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM secpolicy.write_password(set_password_or_raise.user_id, set_password_or_raise.password,
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

-- Shared credentials (a team mailbox, a vendor portal, a break-glass
-- password): which accounts know which, so that when one of them leaves every
-- credential they could use is marked due for rotation.
CREATE TABLE secpolicy.shared_credentials (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name <> '' AND char_length(name) <= 200),
    description text,
    last_rotated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    rotation_due_at timestamptz,
    rotation_reason text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE secpolicy.shared_credentials IS
    'Credentials several people know (never the secret itself); rotation_due_at is set when a holder leaves.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.shared_credentials', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.shared_credentials_id_seq', '');

CREATE TABLE secpolicy.shared_credential_holders (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    credential_id bigint NOT NULL REFERENCES secpolicy.shared_credentials ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (user_id, credential_id)
);
COMMENT ON TABLE secpolicy.shared_credential_holders IS 'Who knows which shared credential.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.shared_credential_holders', '');
GRANT SELECT ON secpolicy.shared_credentials, secpolicy.shared_credential_holders TO secpolicy_admin;

-- Internal: mark every shared credential a user holds as due for rotation.
CREATE FUNCTION secpolicy.mark_credentials_due(user_id bigint, reason text) RETURNS text[]
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        UPDATE secpolicy.shared_credentials c
           SET rotation_due_at = coalesce(c.rotation_due_at, now()),
               rotation_reason = coalesce(c.rotation_reason, $2)
         WHERE c.id IN (SELECT h.credential_id FROM secpolicy.shared_credential_holders h WHERE h.user_id = $1)
        RETURNING c.name)
    SELECT coalesce(array_agg(due.name ORDER BY due.name), '{}') FROM due;
$$;
COMMENT ON FUNCTION secpolicy.mark_credentials_due(bigint, text) IS
    'Internal: mark the shared credentials a user holds as due for rotation; returns their names.';
REVOKE ALL ON FUNCTION secpolicy.mark_credentials_due(bigint, text) FROM PUBLIC;

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
    PERFORM secpolicy.guess_clear('u:' || uid);
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
    PERFORM secpolicy.guess_clear('u:' || uid);
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
    PERFORM secpolicy.write_password(uid, import_password_hash.hash, 'import');
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

CREATE FUNCTION secpolicy.add_shared_credential(name text, description text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid bigint;
BEGIN
    INSERT INTO secpolicy.shared_credentials (name, description)
    VALUES (add_shared_credential.name, add_shared_credential.description)
    RETURNING shared_credentials.id INTO cid;
    PERFORM secpolicy.audit('shared_credential_added', NULL, NULL, NULL,
                            jsonb_build_object('credential', add_shared_credential.name));
    RETURN cid;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'shared credential "%" already exists', add_shared_credential.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION secpolicy.add_shared_credential(text, text) IS
    'Registers a shared credential by name (the secret itself stays in your vault).';
REVOKE ALL ON FUNCTION secpolicy.add_shared_credential(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.add_shared_credential(text, text) TO secpolicy_admin;

-- Internal: the id of a shared credential by name, or error 42704.
CREATE FUNCTION secpolicy.shared_credential_id(name text) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid bigint;
BEGIN
    SELECT c.id INTO cid FROM secpolicy.shared_credentials c WHERE c.name = shared_credential_id.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shared credential "%" does not exist', shared_credential_id.name USING ERRCODE = '42704';
    END IF;
    RETURN cid;
END
$$;
COMMENT ON FUNCTION secpolicy.shared_credential_id(text) IS 'Internal: a shared credential by name, or 42704.';
REVOKE ALL ON FUNCTION secpolicy.shared_credential_id(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.grant_shared_credential(username text, credential text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(grant_shared_credential.username);
    cid bigint := secpolicy.shared_credential_id(grant_shared_credential.credential);
BEGIN
    INSERT INTO secpolicy.shared_credential_holders (user_id, credential_id) VALUES (uid, cid)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM secpolicy.audit('shared_credential_granted', uid, grant_shared_credential.username, NULL,
                            jsonb_build_object('credential', grant_shared_credential.credential));
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.grant_shared_credential(text, text) IS
    'Records that an account knows a shared credential; false when already recorded.';
REVOKE ALL ON FUNCTION secpolicy.grant_shared_credential(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.grant_shared_credential(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.credential_rotated(credential text, note text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid bigint := secpolicy.shared_credential_id(credential_rotated.credential);
BEGIN
    UPDATE secpolicy.shared_credentials c
       SET last_rotated_at = now(), rotation_due_at = NULL, rotation_reason = NULL
     WHERE c.id = cid;
    -- whoever has left no longer knows the new secret
    DELETE FROM secpolicy.shared_credential_holders h
     USING secpolicy.users u
     WHERE h.credential_id = cid AND u.id = h.user_id AND u.disabled_at IS NOT NULL;
    PERFORM secpolicy.audit('shared_credential_rotated', NULL, NULL, credential_rotated.note,
                            jsonb_build_object('credential', credential_rotated.credential));
END
$$;
COMMENT ON FUNCTION secpolicy.credential_rotated(text, text) IS
    'Records that a shared credential was changed: it is no longer due, and disabled holders are dropped from it.';
REVOKE ALL ON FUNCTION secpolicy.credential_rotated(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.credential_rotated(text, text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.offboard(username text, reason text) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.user_id_of(offboard.username);
    why text := secpolicy.require_reason(offboard.reason);
    revoked text[];
BEGIN
    PERFORM secpolicy.disable_user(offboard.username, why);
    WITH r AS (DELETE FROM secpolicy.user_access a WHERE a.user_id = uid RETURNING a.access)
    SELECT coalesce(array_agg(r.access ORDER BY r.access), '{}') INTO revoked FROM r;
    DELETE FROM secpolicy.totp_credentials c WHERE c.user_id = uid;
    DELETE FROM secpolicy.recovery_codes c WHERE c.user_id = uid;
    PERFORM secpolicy.audit('user_offboarded', uid, offboard.username, why,
                            jsonb_build_object('access_revoked', revoked));
    RETURN jsonb_build_object(
        'disabled', true,
        'access_revoked', revoked,
        'credentials_due', (SELECT coalesce(jsonb_agg(c.name ORDER BY c.name), '[]')
                              FROM secpolicy.shared_credentials c
                              JOIN secpolicy.shared_credential_holders h ON h.credential_id = c.id
                             WHERE h.user_id = uid AND c.rotation_due_at IS NOT NULL));
END
$$;
COMMENT ON FUNCTION secpolicy.offboard(text, text) IS
    'A leaver: disables the account (sessions end at once), revokes every access and the second factor, and lists the shared credentials now due for rotation.';
REVOKE ALL ON FUNCTION secpolicy.offboard(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.offboard(text, text) TO secpolicy_admin;

CREATE VIEW secpolicy.credentials_due_rotation WITH (security_barrier) AS
    SELECT c.name, c.description, c.rotation_due_at, c.rotation_reason, c.last_rotated_at,
           now() - c.rotation_due_at AS overdue_by,
           (SELECT count(*) FROM secpolicy.shared_credential_holders h
              JOIN secpolicy.users u ON u.id = h.user_id
             WHERE h.credential_id = c.id AND u.disabled_at IS NULL) AS active_holders
      FROM secpolicy.shared_credentials c
     WHERE c.rotation_due_at IS NOT NULL;
COMMENT ON VIEW secpolicy.credentials_due_rotation IS
    'Shared credentials that must be changed because someone who knew them left.';
GRANT SELECT ON secpolicy.credentials_due_rotation TO secpolicy_admin, secpolicy_analyst;
