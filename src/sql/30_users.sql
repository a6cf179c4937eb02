-- Accounts, password history, and the hash-on-write triggers.

CREATE TABLE secpolicy.users (
    id bigserial PRIMARY KEY,
    username text NOT NULL
        CHECK (username <> '' AND pg_catalog.char_length(username) <= 256
               AND username OPERATOR(pg_catalog.!~) '[[:cntrl:]]'),
    password_hash text,
    password_changed_at timestamptz,
    password_checked_at timestamptz,
    must_change_password boolean NOT NULL DEFAULT false,
    password_expired boolean NOT NULL DEFAULT false,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    last_failed_at timestamptz,
    reset_required boolean NOT NULL DEFAULT false,
    locked_at timestamptz,
    disabled_at timestamptz,
    disabled_reason text,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by text NOT NULL DEFAULT SESSION_USER,
    last_login_at timestamptz,
    last_login_addr inet
);
COMMENT ON TABLE secpolicy.users IS
    'Application accounts.  password_hash holds argon2id strings only: plaintext written to it is checked and hashed by a trigger.';
COMMENT ON COLUMN secpolicy.users.password_checked_at IS
    'When the password rules were last checked on the current password (NULL for an imported hash).';
COMMENT ON COLUMN secpolicy.users.failed_attempts IS
    'Consecutive failed password or second-factor attempts since the last complete login.';
COMMENT ON COLUMN secpolicy.users.reset_required IS
    'The account needs a password reset (failure limit reached, or forced by an admin).';
CREATE UNIQUE INDEX users_username_key ON secpolicy.users (pg_catalog.lower(username));
SELECT pg_catalog.pg_extension_config_dump('secpolicy.users', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.users_id_seq', '');

GRANT SELECT (id, username, password_changed_at, password_checked_at, must_change_password, password_expired,
              failed_attempts, last_failed_at, reset_required, locked_at, disabled_at,
              disabled_reason, created_at, created_by, last_login_at, last_login_addr)
    ON secpolicy.users TO secpolicy_admin;

CREATE TABLE secpolicy.password_history (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    id bigserial NOT NULL,
    password_hash text NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (user_id, id)
);
COMMENT ON TABLE secpolicy.password_history IS
    'Hashes of replaced passwords, newest first up to history_depth - 1 per user (the current one is in users).';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.password_history', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.password_history_id_seq', '');

-- Failure counters of usernames that do not exist, so that they answer
-- exactly as an existing account would (reset_required after the limit).
CREATE TABLE secpolicy.unknown_user_failures (
    username_key text PRIMARY KEY,
    failed_attempts integer NOT NULL DEFAULT 0,
    first_failed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_failed_at timestamptz,
    account_key bigint
);
COMMENT ON TABLE secpolicy.unknown_user_failures IS
    'Internal: consecutive failures per unknown (lower-cased) username.';
COMMENT ON COLUMN secpolicy.unknown_user_failures.account_key IS
    'On a distributed installation, the account key of the name (its distribution key: the shard its account would have); NULL on a single node.';
-- dumped too: after a restore, a name at the limit must still answer reset_required
SELECT pg_catalog.pg_extension_config_dump('secpolicy.unknown_user_failures', '');

CREATE FUNCTION secpolicy.users_password_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'secpolicy_users_password_trigger'
    LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.users_password_trigger() IS
    'Trigger on secpolicy.users: checks and hashes plaintext passwords, keeps the history.';
REVOKE ALL ON FUNCTION secpolicy.users_password_trigger() FROM PUBLIC;

CREATE TRIGGER users_password BEFORE INSERT OR UPDATE OF password_hash ON secpolicy.users
    FOR EACH ROW EXECUTE FUNCTION secpolicy.users_password_trigger();

CREATE FUNCTION secpolicy.password_policy_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'secpolicy_password_policy_trigger'
    LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.password_policy_trigger() IS
    'Trigger for any table: password_policy_trigger(password_column [, username_column [, history_column]]) checks and hashes plaintext written to the column.';
REVOKE ALL ON FUNCTION secpolicy.password_policy_trigger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_policy_trigger() TO secpolicy_admin;

CREATE FUNCTION secpolicy.write_password(user_id bigint, value text, mode text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_write_password'
    LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.write_password(bigint, text, text) IS
    'Internal: set a user''s password: plaintext to check and hash (''plaintext''), a rehash of the current one (''rehash''), or an argon2id hash made elsewhere (''import'').';
REVOKE ALL ON FUNCTION secpolicy.write_password(bigint, text, text) FROM PUBLIC;
