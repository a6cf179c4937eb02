-- Second factor: TOTP building blocks (C, liboath), sealed secrets, recovery
-- codes and the challenges that sit between the password and the code.

CREATE FUNCTION secpolicy.totp_code(secret text, at timestamptz DEFAULT pg_catalog.now(),
                                    digits integer DEFAULT 6, period integer DEFAULT 30,
                                    algorithm text DEFAULT 'sha1')
    RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_totp_code'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.totp_code(text, timestamptz, integer, integer, text) IS
    'RFC 6238 code of a base32 secret at a time (sha1, sha256 or sha512; 6 to 8 digits).';
REVOKE ALL ON FUNCTION secpolicy.totp_code(text, timestamptz, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_code(text, timestamptz, integer, integer, text)
    TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.totp_match(secret text, code text, at timestamptz DEFAULT pg_catalog.now(),
                                     "window" integer DEFAULT 1, digits integer DEFAULT 6,
                                     period integer DEFAULT 30, algorithm text DEFAULT 'sha1')
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_totp_match'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.totp_match(text, text, timestamptz, integer, integer, integer, text) IS
    'The time step (T-window .. T+window) whose code equals `code`, or NULL; constant-time comparison.';
REVOKE ALL ON FUNCTION secpolicy.totp_match(text, text, timestamptz, integer, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_match(text, text, timestamptz, integer, integer, integer, text)
    TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.otpauth_uri(secret text, account text, issuer text,
                                      algorithm text DEFAULT 'sha1', digits integer DEFAULT 6,
                                      period integer DEFAULT 30)
    RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_otpauth_uri'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.otpauth_uri(text, text, text, text, integer, integer) IS
    'otpauth://totp/ key URI (Google Authenticator format) for enrolling an authenticator app.';
REVOKE ALL ON FUNCTION secpolicy.otpauth_uri(text, text, text, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.otpauth_uri(text, text, text, text, integer, integer)
    TO secpolicy_app, secpolicy_admin;

-- Internal C helpers working on sealed secrets.
CREATE FUNCTION secpolicy.totp_new_secret(OUT secret text, OUT sealed bytea)
    AS 'MODULE_PATHNAME', 'secpolicy_totp_new_secret'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.totp_new_secret() IS
    'Internal: a fresh 160-bit TOTP secret, in base32 and sealed under the current key.';
REVOKE ALL ON FUNCTION secpolicy.totp_new_secret() FROM PUBLIC;

CREATE FUNCTION secpolicy.totp_verify_sealed(sealed bytea, code text, at timestamptz,
                                             after_step bigint, "window" integer, digits integer,
                                             period integer, algorithm text,
                                             OUT step bigint, OUT replayed boolean)
    AS 'MODULE_PATHNAME', 'secpolicy_totp_verify_sealed'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.totp_verify_sealed(bytea, text, timestamptz, bigint, integer, integer, integer, text) IS
    'Internal: the step after after_step matching a code of a sealed secret; replayed tells a reused code.';
REVOKE ALL ON FUNCTION secpolicy.totp_verify_sealed(bytea, text, timestamptz, bigint, integer, integer, integer, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.reseal(sealed bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'secpolicy_reseal'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.reseal(bytea) IS
    'Internal: open a sealed value with the key that sealed it and seal it again under the current key.';
REVOKE ALL ON FUNCTION secpolicy.reseal(bytea) FROM PUBLIC;

CREATE FUNCTION secpolicy.sealed_key_id(sealed bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_sealed_key_id'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.sealed_key_id(bytea) IS
    'Identifier (hex) of the key a sealed value was sealed under.';
REVOKE ALL ON FUNCTION secpolicy.sealed_key_id(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.sealed_key_id(bytea) TO secpolicy_admin;

CREATE FUNCTION secpolicy.key_status(OUT key_id text, OUT previous_key_id text)
    AS 'MODULE_PATHNAME', 'secpolicy_key_status'
    LANGUAGE C STRICT VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.key_status() IS
    'Identifiers of the sealing keys that secpolicy.key_file and secpolicy.previous_key_file name (NULL when unset).';
REVOKE ALL ON FUNCTION secpolicy.key_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.key_status() TO secpolicy_admin;

CREATE FUNCTION secpolicy.recovery_code() RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_recovery_code'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.recovery_code() IS
    'Internal: a 120-bit recovery code, four groups of six base32 letters.';
REVOKE ALL ON FUNCTION secpolicy.recovery_code() FROM PUBLIC;

CREATE TABLE secpolicy.totp_credentials (
    user_id bigint PRIMARY KEY REFERENCES secpolicy.users ON DELETE CASCADE,
    sealed_secret bytea,
    algorithm text CHECK (algorithm IN ('sha1', 'sha256', 'sha512')),
    digits integer CHECK (digits BETWEEN 6 AND 8),
    period integer CHECK (period BETWEEN 15 AND 300),
    confirmed_at timestamptz,
    last_used_step bigint NOT NULL DEFAULT -1,
    pending_secret bytea,
    pending_algorithm text CHECK (pending_algorithm IN ('sha1', 'sha256', 'sha512')),
    pending_digits integer CHECK (pending_digits BETWEEN 6 AND 8),
    pending_period integer CHECK (pending_period BETWEEN 15 AND 300),
    pending_created_at timestamptz,
    CHECK ((sealed_secret IS NULL) = (confirmed_at IS NULL))
);
COMMENT ON TABLE secpolicy.totp_credentials IS
    'TOTP secrets, sealed with crypto_secretbox; last_used_step is the replay guard. pending_* is an enrolment not yet confirmed.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.totp_credentials', '');

CREATE TABLE secpolicy.recovery_codes (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    id bigserial NOT NULL,
    code_digest bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    used_at timestamptz,
    PRIMARY KEY (user_id, id)
);
COMMENT ON TABLE secpolicy.recovery_codes IS
    'Single-use recovery codes, stored as SHA-256 digests of their 120-bit values.';
CREATE INDEX recovery_codes_digest_idx ON secpolicy.recovery_codes (user_id, code_digest);
SELECT pg_catalog.pg_extension_config_dump('secpolicy.recovery_codes', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.recovery_codes_id_seq', '');

CREATE TABLE secpolicy.mfa_challenges (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    id bigserial NOT NULL,
    token_digest bytea NOT NULL UNIQUE,
    purpose text NOT NULL CHECK (purpose IN ('verify', 'enroll')),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    client_addr inet,
    user_agent text,
    PRIMARY KEY (user_id, id)
);
COMMENT ON TABLE secpolicy.mfa_challenges IS
    'Challenges issued after a correct password, redeemed once by verify_mfa (purpose verify) or totp_confirm (purpose enroll).';
-- dumped: a challenge redeemed before a dump stays redeemed after a restore
SELECT pg_catalog.pg_extension_config_dump('secpolicy.mfa_challenges', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.mfa_challenges_id_seq', '');
