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
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid bigint := secpolicy.current_session_user();
BEGIN
    -- (PL/pgSQL: a distributed installation plans the lookup with the values)
    IF uid IS NULL THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT 1 FROM secpolicy.user_access a WHERE a.user_id = uid AND a.access = has_access.access);
END
$$;
COMMENT ON FUNCTION secpolicy.has_access(text) IS
    'Does the user of the session proven in this transaction (session_touch) hold this access? For row-level security.';
REVOKE ALL ON FUNCTION secpolicy.has_access(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.has_access(text) TO secpolicy_app, secpolicy_admin;
