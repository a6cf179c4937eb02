-- Key rotation of the sealed second-factor secrets (the sealing itself is in
-- C: src/seal.c).

CREATE FUNCTION secpolicy.reseal_secrets() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    current_id text := (SELECT k.key_id FROM secpolicy.key_status() k);
    n integer;
    cred record;
BEGIN
    IF current_id IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file to the new key and secpolicy.previous_key_file to the old one.';
    END IF;
    IF secpolicy.distributed() THEN
        -- resealed here, account by account (a distributed update may not call
        -- a volatile function), and written back unless changed meanwhile
        n := 0;
        FOR cred IN SELECT x.user_id, x.sealed_secret, x.pending_secret FROM secpolicy.totp_credentials x
                  WHERE secpolicy.sealed_key_id(x.sealed_secret) <> current_id
                     OR secpolicy.sealed_key_id(x.pending_secret) <> current_id LOOP
            UPDATE secpolicy.totp_credentials x
               SET sealed_secret = CASE WHEN cred.sealed_secret IS NOT NULL
                                             AND secpolicy.sealed_key_id(cred.sealed_secret) <> current_id
                                        THEN secpolicy.reseal(cred.sealed_secret) ELSE cred.sealed_secret END,
                   pending_secret = CASE WHEN cred.pending_secret IS NOT NULL
                                              AND secpolicy.sealed_key_id(cred.pending_secret) <> current_id
                                         THEN secpolicy.reseal(cred.pending_secret) ELSE cred.pending_secret END
             WHERE x.user_id = cred.user_id AND x.sealed_secret IS NOT DISTINCT FROM cred.sealed_secret
               AND x.pending_secret IS NOT DISTINCT FROM cred.pending_secret;
            n := n + 1;
        END LOOP;
        PERFORM secpolicy.audit('secrets_resealed', NULL, NULL, NULL,
                                jsonb_build_object('key_id', current_id, 'resealed', n));
        RETURN n;
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
