-- Offboarding a leaver: the account is disabled at once, access and second
-- factor go, and the shared credentials the leaver knew fall due for rotation.

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
