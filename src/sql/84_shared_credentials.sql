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
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- read first: on a distributed installation the holders are the
    -- account's (on its worker) and the credentials everyone's (a reference table)
    ids bigint[] := ARRAY(SELECT h.credential_id FROM secpolicy.shared_credential_holders h
                           WHERE h.user_id = mark_credentials_due.user_id);
    names text[];
    t timestamptz := now();
BEGIN
    WITH due AS (
        UPDATE secpolicy.shared_credentials c
           SET rotation_due_at = coalesce(c.rotation_due_at, t),
               rotation_reason = coalesce(c.rotation_reason, mark_credentials_due.reason)
         WHERE c.id = ANY (ids)
        RETURNING c.name)
    SELECT coalesce(array_agg(due.name ORDER BY due.name), '{}') INTO names FROM due;
    RETURN names;
END
$$;
COMMENT ON FUNCTION secpolicy.mark_credentials_due(bigint, text) IS
    'Internal: mark the shared credentials a user holds as due for rotation; returns their names.';
REVOKE ALL ON FUNCTION secpolicy.mark_credentials_due(bigint, text) FROM PUBLIC;

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

CREATE VIEW secpolicy.credentials_due_rotation WITH (security_barrier) AS
    -- holders counted in one aggregate, not per credential (a distributed
    -- installation runs it on every worker at once)
    SELECT c.name, c.description, c.rotation_due_at, c.rotation_reason, c.last_rotated_at,
           now() - c.rotation_due_at AS overdue_by,
           coalesce(a.holders, 0) AS active_holders
      FROM secpolicy.shared_credentials c
      LEFT JOIN (SELECT h.credential_id, count(*) AS holders
                   FROM secpolicy.shared_credential_holders h
                   JOIN secpolicy.users u ON u.id = h.user_id
                  WHERE u.disabled_at IS NULL
                  GROUP BY h.credential_id) a ON a.credential_id = c.id
     WHERE c.rotation_due_at IS NOT NULL;
COMMENT ON VIEW secpolicy.credentials_due_rotation IS
    'Shared credentials that must be changed because someone who knew them left.';
GRANT SELECT ON secpolicy.credentials_due_rotation TO secpolicy_admin, secpolicy_analyst;
