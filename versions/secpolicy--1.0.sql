-- secpolicy 1.0 install script.  Assembled by the Makefile from src/sql/NN_*.sql,
-- one part per concern; edit the parts, not the generated secpolicy--1.0.sql.
--
-- Conventions: every object is schema-qualified; every SECURITY DEFINER function
-- pins search_path to pg_catalog, pg_temp; EXECUTE is revoked from PUBLIC next
-- to each function and granted to the group roles that need it.

\echo Use "CREATE EXTENSION secpolicy" to load this file. \quit

-- Group roles.  Roles are cluster-wide: a second database reuses them, and
-- DROP EXTENSION leaves them in place.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

REVOKE ALL ON SCHEMA secpolicy FROM PUBLIC;
GRANT USAGE ON SCHEMA secpolicy TO secpolicy_admin, secpolicy_app, secpolicy_analyst;
-- The policy: one row of typed settings with CHECK constraints.

CREATE TABLE secpolicy.policy (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    preset text NOT NULL DEFAULT 'org' CHECK (preset IN ('org', 'nist', 'custom')),
    min_length integer NOT NULL DEFAULT 12 CHECK (min_length BETWEEN 1 AND 1024),
    max_length integer NOT NULL DEFAULT 128 CHECK (max_length BETWEEN 1 AND 1024),
    require_upper boolean NOT NULL DEFAULT true,
    require_lower boolean NOT NULL DEFAULT true,
    require_digit boolean NOT NULL DEFAULT true,
    require_symbol boolean NOT NULL DEFAULT true,
    check_username boolean NOT NULL DEFAULT true,
    check_blocklist boolean NOT NULL DEFAULT true,
    history_depth integer NOT NULL DEFAULT 5 CHECK (history_depth BETWEEN 0 AND 24),
    max_password_age interval DEFAULT '6 months' CHECK (max_password_age > interval '0'),
    password_expiry_warning interval NOT NULL DEFAULT '14 days'
        CHECK (password_expiry_warning >= interval '0'),
    max_failed_attempts integer NOT NULL DEFAULT 5 CHECK (max_failed_attempts BETWEEN 1 AND 100),
    require_mfa boolean NOT NULL DEFAULT true,
    session_idle_timeout interval NOT NULL DEFAULT '15 minutes'
        CHECK (session_idle_timeout > interval '0'),
    session_max_lifetime interval NOT NULL DEFAULT '12 hours'
        CHECK (session_max_lifetime > interval '0'),
    reset_token_lifetime interval NOT NULL DEFAULT '1 hour'
        CHECK (reset_token_lifetime > interval '0' AND reset_token_lifetime <= interval '7 days'),
    hash_opslimit integer NOT NULL DEFAULT 2 CHECK (hash_opslimit BETWEEN 1 AND 16),
    hash_memlimit bigint NOT NULL DEFAULT 67108864 CHECK (hash_memlimit BETWEEN 8192 AND 1073741824),
    rules_changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL DEFAULT SESSION_USER,
    CHECK (max_length >= min_length)
);
COMMENT ON TABLE secpolicy.policy IS
    'The authentication policy: exactly one row, edited by secpolicy_admin, every change audited.';

-- An INSERT replaces the row (this is how pg_restore brings back a dumped
-- policy over the default one); deleting or truncating is refused.
CREATE FUNCTION secpolicy.policy_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        DELETE FROM secpolicy.policy;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        NEW.updated_at := pg_catalog.now();
        NEW.updated_by := SESSION_USER;
        -- passwords set before a stricter rule may not meet it (compliance view)
        IF (NEW.min_length, NEW.max_length, NEW.require_upper, NEW.require_lower, NEW.require_digit,
            NEW.require_symbol, NEW.check_username, NEW.check_blocklist, NEW.history_depth)
           IS DISTINCT FROM
           (OLD.min_length, OLD.max_length, OLD.require_upper, OLD.require_lower, OLD.require_digit,
            OLD.require_symbol, OLD.check_username, OLD.check_blocklist, OLD.history_depth) THEN
            NEW.rules_changed_at := pg_catalog.now();
        END IF;
        -- a hand-edited setting turns a preset into a custom policy
        IF NEW.preset = OLD.preset AND
           (pg_catalog.to_jsonb(NEW) - ARRAY['preset', 'updated_at', 'updated_by', 'rules_changed_at'])
               OPERATOR(pg_catalog.<>)
           (pg_catalog.to_jsonb(OLD) - ARRAY['preset', 'updated_at', 'updated_by', 'rules_changed_at']) THEN
            NEW.preset := 'custom';
        END IF;
        RETURN NEW;
    ELSIF pg_catalog.pg_trigger_depth() > 1 THEN
        RETURN OLD;                     -- the DELETE issued by the INSERT branch
    END IF;
    RAISE EXCEPTION 'the secpolicy policy row cannot be deleted'
        USING ERRCODE = '55000', HINT = 'Update its columns instead, or call secpolicy.apply_preset().';
END
$$;
COMMENT ON FUNCTION secpolicy.policy_guard() IS
    'Trigger: keeps secpolicy.policy at exactly one row and stamps every change.';
REVOKE ALL ON FUNCTION secpolicy.policy_guard() FROM PUBLIC;

CREATE TRIGGER policy_guard BEFORE INSERT OR UPDATE OR DELETE ON secpolicy.policy
    FOR EACH ROW EXECUTE FUNCTION secpolicy.policy_guard();
CREATE TRIGGER policy_no_truncate BEFORE TRUNCATE ON secpolicy.policy
    FOR EACH STATEMENT EXECUTE FUNCTION secpolicy.policy_guard();

INSERT INTO secpolicy.policy DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.policy', '');

GRANT SELECT, UPDATE ON secpolicy.policy TO secpolicy_admin;
GRANT SELECT ON secpolicy.policy TO secpolicy_app;
-- Building blocks in C: argon2id hashes, the password rules, tokens.

CREATE FUNCTION secpolicy.hash_password(password text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_hash_password'
    LANGUAGE C STRICT VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.hash_password(text) IS
    'argon2id PHC string of a password, at the cost set in secpolicy.policy.';
REVOKE ALL ON FUNCTION secpolicy.hash_password(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.hash_password(text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.verify_password(password text, hash text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_verify_password'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.verify_password(text, text) IS
    'Constant-time argon2id verification; false (never an error) for NULLs and malformed hashes.';
REVOKE ALL ON FUNCTION secpolicy.verify_password(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.verify_password(text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.password_match(password text, hash text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_password_match'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.password_match(text, text) IS
    'Like verify_password, but tells how: NULL (no match), nfkc, or as_received (a hash of unnormalised bytes: rehash it).';
REVOKE ALL ON FUNCTION secpolicy.password_match(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_match(text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.password_needs_rehash(hash text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_password_needs_rehash'
    LANGUAGE C STRICT STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.password_needs_rehash(text) IS
    'True unless the hash is a well-formed argon2id string at exactly the policy''s cost.';
REVOKE ALL ON FUNCTION secpolicy.password_needs_rehash(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_needs_rehash(text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.password_violations(password text, username text DEFAULT NULL)
    RETURNS text[]
    AS 'MODULE_PATHNAME', 'secpolicy_password_violations'
    LANGUAGE C CALLED ON NULL INPUT STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.password_violations(text, text) IS
    'Rule codes the password breaks under the policy; empty when acceptable, NULL for a NULL password.';
REVOKE ALL ON FUNCTION secpolicy.password_violations(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_violations(text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.hash_stats(OUT hashes bigint, OUT verifications bigint, OUT slot_waits bigint)
    AS 'MODULE_PATHNAME', 'secpolicy_hash_stats'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.hash_stats() IS
    'argon2 computations done by this backend, and how often one waited for a free hashing slot.';
REVOKE ALL ON FUNCTION secpolicy.hash_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.hash_stats() TO secpolicy_admin;

-- Internal: tokens for sessions, challenges and resets, and their digests.
CREATE FUNCTION secpolicy.random_token(prefix text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_random_token'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.random_token(text) IS
    'Internal: "<prefix>_" and 256 CSPRNG bits in base64url.';
REVOKE ALL ON FUNCTION secpolicy.random_token(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.token_digest(token text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'secpolicy_token_digest'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.token_digest(text) IS
    'Internal: SHA-256 of a token, the only form in which tokens are stored.';
REVOKE ALL ON FUNCTION secpolicy.token_digest(text) FROM PUBLIC;

-- The organisation's own blocked words (company and product names, ...):
-- a password containing one of them breaks the common_password rule.
CREATE TABLE secpolicy.password_blocklist (
    word text PRIMARY KEY
        CHECK (word = pg_catalog.lower(word) AND pg_catalog.char_length(word) >= 3),
    added_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by text NOT NULL DEFAULT SESSION_USER
);
COMMENT ON TABLE secpolicy.password_blocklist IS
    'Organisation-specific blocked words (stored lower-cased, 3+ characters), matched anywhere in a password.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.password_blocklist', '');

-- Passwords are judged lower-cased and in NFKC (normalize.c), so words are
-- stored so too: a word typed capitalised, decomposed or full-width matches.
CREATE FUNCTION secpolicy.blocklist_nfkc() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF getdatabaseencoding() = 'UTF8' THEN
        NEW.word := normalize(NEW.word, NFKC);
    END IF;
    NEW.word := lower(NEW.word);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION secpolicy.blocklist_nfkc() IS
    'Trigger: stores organisation blocklist words lower-cased and in NFKC (in a UTF-8 database).';
REVOKE ALL ON FUNCTION secpolicy.blocklist_nfkc() FROM PUBLIC;
CREATE TRIGGER password_blocklist_nfkc BEFORE INSERT OR UPDATE OF word ON secpolicy.password_blocklist
    FOR EACH ROW EXECUTE FUNCTION secpolicy.blocklist_nfkc();
GRANT SELECT, INSERT, DELETE ON secpolicy.password_blocklist TO secpolicy_admin;

-- The hash that unknown usernames are verified against, so that they take as
-- long as a wrong password.  Refreshed whenever the hash cost changes.
CREATE TABLE secpolicy.dummy_hash (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    hash text NOT NULL
);
COMMENT ON TABLE secpolicy.dummy_hash IS
    'Internal: an argon2id hash of a random secret at the policy''s cost, for unknown usernames.';

CREATE FUNCTION secpolicy.refresh_dummy_hash() RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO secpolicy.dummy_hash (singleton, hash)
    VALUES (true, secpolicy.hash_password(secpolicy.random_token('dummy')))
    ON CONFLICT (singleton) DO UPDATE SET hash = EXCLUDED.hash;
$$;
COMMENT ON FUNCTION secpolicy.refresh_dummy_hash() IS
    'Internal: recompute the dummy hash at the current cost.';
REVOKE ALL ON FUNCTION secpolicy.refresh_dummy_hash() FROM PUBLIC;

SELECT secpolicy.refresh_dummy_hash();

CREATE FUNCTION secpolicy.policy_cost_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.hash_opslimit OPERATOR(pg_catalog.<>) OLD.hash_opslimit
       OR NEW.hash_memlimit OPERATOR(pg_catalog.<>) OLD.hash_memlimit THEN
        PERFORM secpolicy.refresh_dummy_hash();
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.policy_cost_changed() IS
    'Trigger: keeps the dummy hash at the policy''s hash cost.';
REVOKE ALL ON FUNCTION secpolicy.policy_cost_changed() FROM PUBLIC;
CREATE TRIGGER policy_cost_changed AFTER INSERT OR UPDATE ON secpolicy.policy
    FOR EACH ROW EXECUTE FUNCTION secpolicy.policy_cost_changed();
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
    last_failed_at timestamptz
);
COMMENT ON TABLE secpolicy.unknown_user_failures IS
    'Internal: consecutive failures per unknown (lower-cased) username.';
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
-- The audit log: append-only and hash-chained, so that an edited, deleted or
-- re-ordered row breaks the chain that verify_audit_chain() walks.

CREATE TABLE secpolicy.audit_log (
    id bigserial PRIMARY KEY,
    logged_at timestamptz NOT NULL,
    actor text NOT NULL,
    actor_role text,
    client_addr inet,
    action text NOT NULL,
    user_id bigint,
    username text,
    reason text,
    details jsonb,
    prev_hash bytea NOT NULL,
    row_hash bytea NOT NULL
);
COMMENT ON TABLE secpolicy.audit_log IS
    'Administrative and security events; row_hash = sha256(prev_hash || audit_row_text(row)).';
COMMENT ON COLUMN secpolicy.audit_log.actor IS 'The database user that connected (SESSION_USER).';
COMMENT ON COLUMN secpolicy.audit_log.actor_role IS 'The role it had switched to with SET ROLE, if any.';
CREATE INDEX audit_log_user_idx ON secpolicy.audit_log (user_id, id);
SELECT pg_catalog.pg_extension_config_dump('secpolicy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.audit_log_id_seq', '');
GRANT SELECT ON secpolicy.audit_log TO secpolicy_admin;

-- The canonical text of a row that its hash covers (documented for auditors
-- who recompute the chain outside the database).
CREATE FUNCTION secpolicy.audit_row_text(a secpolicy.audit_log) RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.concat_ws('|', a.id::text,
        pg_catalog.to_char(a.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        pg_catalog.quote_literal(a.actor), pg_catalog.quote_nullable(a.actor_role),
        pg_catalog.quote_nullable(a.client_addr::text),
        pg_catalog.quote_literal(a.action), pg_catalog.quote_nullable(a.user_id::text),
        pg_catalog.quote_nullable(a.username), pg_catalog.quote_nullable(a.reason),
        pg_catalog.quote_nullable(a.details::text))
$$;
COMMENT ON FUNCTION secpolicy.audit_row_text(secpolicy.audit_log) IS
    'The canonical text of an audit row that its hash covers.';
REVOKE ALL ON FUNCTION secpolicy.audit_row_text(secpolicy.audit_log) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.audit_row_text(secpolicy.audit_log) TO secpolicy_admin;

-- The chain's lock: one row that every writer updates before it reads the
-- newest audit row.  Only the extension's owner can lock it (an advisory lock,
-- which any role may take, would let anyone stall every audited action), and
-- under REPEATABLE READ a concurrent writer gets a serialization failure
-- instead of forking the chain.  It holds no data, so it is not dumped.
CREATE TABLE secpolicy.audit_head (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    writes bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE secpolicy.audit_head IS
    'Internal: the lock that serialises writers of the audit chain.';
INSERT INTO secpolicy.audit_head DEFAULT VALUES;

-- Internal: append one event, chained to the one committed before it.
CREATE FUNCTION secpolicy.audit(action text, user_id bigint, username text,
                                reason text DEFAULT NULL, details jsonb DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r secpolicy.audit_log;
BEGIN
    UPDATE secpolicy.audit_head SET writes = writes + 1;
    SELECT a.row_hash INTO r.prev_hash FROM secpolicy.audit_log a ORDER BY a.id DESC LIMIT 1;
    r.prev_hash := coalesce(r.prev_hash, pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex'));
    r.id := pg_catalog.nextval('secpolicy.audit_log_id_seq');
    r.logged_at := pg_catalog.clock_timestamp();
    r.actor := SESSION_USER;
    r.actor_role := nullif(pg_catalog.current_setting('role'), 'none');
    r.client_addr := pg_catalog.inet_client_addr();
    r.action := audit.action;
    r.user_id := audit.user_id;
    r.username := audit.username;
    r.reason := audit.reason;
    r.details := audit.details;
    r.row_hash := pg_catalog.sha256(r.prev_hash OPERATOR(pg_catalog.||)
                                    pg_catalog.convert_to(secpolicy.audit_row_text(r), 'UTF8'));
    INSERT INTO secpolicy.audit_log VALUES (r.*);
    RETURN r.id;
END
$$;
COMMENT ON FUNCTION secpolicy.audit(text, bigint, text, text, jsonb) IS
    'Internal: append an event to the hash-chained audit log.';
REVOKE ALL ON FUNCTION secpolicy.audit(text, bigint, text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION secpolicy.audit_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'secpolicy.audit_log is append-only'
        USING ERRCODE = '42501', DETAIL = pg_catalog.format('%s refused.', TG_OP);
END
$$;
COMMENT ON FUNCTION secpolicy.audit_append_only() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit log.';
REVOKE ALL ON FUNCTION secpolicy.audit_append_only() FROM PUBLIC;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON secpolicy.audit_log
    FOR EACH ROW EXECUTE FUNCTION secpolicy.audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON secpolicy.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION secpolicy.audit_append_only();

CREATE FUNCTION secpolicy.verify_audit_chain(
    OUT intact boolean, OUT rows_checked bigint, OUT first_broken_id bigint, OUT head_hash text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r secpolicy.audit_log;
    prev bytea := pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
BEGIN
    intact := true;
    rows_checked := 0;
    FOR r IN SELECT * FROM secpolicy.audit_log a ORDER BY a.id LOOP
        rows_checked := rows_checked + 1;
        IF r.prev_hash OPERATOR(pg_catalog.<>) prev
           OR r.row_hash OPERATOR(pg_catalog.<>) pg_catalog.sha256(
                  prev OPERATOR(pg_catalog.||) pg_catalog.convert_to(secpolicy.audit_row_text(r), 'UTF8')) THEN
            intact := false;
            first_broken_id := r.id;
            RETURN;
        END IF;
        prev := r.row_hash;
    END LOOP;
    head_hash := pg_catalog.encode(prev, 'hex');
END
$$;
COMMENT ON FUNCTION secpolicy.verify_audit_chain() IS
    'Walks the audit chain; intact is false at the first row whose hashes do not match. Record head_hash outside the database to detect truncation of the tail.';
REVOKE ALL ON FUNCTION secpolicy.verify_audit_chain() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.verify_audit_chain() TO secpolicy_admin, secpolicy_analyst;

-- Every change of the policy row is audited with the settings that changed.
CREATE FUNCTION secpolicy.policy_audit() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    changes jsonb;
BEGIN
    SELECT pg_catalog.jsonb_object_agg(n.key, pg_catalog.jsonb_build_array(o.value, n.value))
      INTO changes
      FROM pg_catalog.jsonb_each(pg_catalog.to_jsonb(NEW)) n
      LEFT JOIN pg_catalog.jsonb_each(pg_catalog.to_jsonb(OLD)) o USING (key)
     WHERE n.key OPERATOR(pg_catalog.<>) ALL (ARRAY['updated_at', 'updated_by', 'rules_changed_at'])
       AND n.value IS DISTINCT FROM o.value;
    IF changes IS NOT NULL THEN
        PERFORM secpolicy.audit('policy_changed', NULL, NULL, NULL, changes);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.policy_audit() IS
    'Trigger: audits each change of the policy with the old and new value of every changed setting.';
REVOKE ALL ON FUNCTION secpolicy.policy_audit() FROM PUBLIC;
CREATE TRIGGER policy_audit AFTER UPDATE ON secpolicy.policy
    FOR EACH ROW EXECUTE FUNCTION secpolicy.policy_audit();
-- The attempt log: one row per login, second-factor and password-change
-- attempt, range-partitioned by day (UTC) so that reports over recent days
-- touch recent partitions only and retention drops whole partitions.

CREATE TABLE secpolicy.login_attempts (
    id bigserial NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    user_id bigint,
    username text,
    client_addr inet,
    user_agent text,
    success boolean NOT NULL,
    outcome text NOT NULL,
    stage text NOT NULL DEFAULT 'password'
        CHECK (stage IN ('password', 'mfa', 'change_password'))
) PARTITION BY RANGE (attempted_at);
COMMENT ON TABLE secpolicy.login_attempts IS
    'Every authentication attempt: who (user_id, or NULL for an unknown username kept as typed), from where, and the outcome.';

-- Internal: the indexes of one partition.  Partitions carry their own indexes
-- (the parent has none), so that pg_dump restores each daily partition, which
-- is not a member of the extension, with exactly its own indexes.
CREATE FUNCTION secpolicy.index_attempt_partition(part regclass) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text := (SELECT c.relname FROM pg_class c WHERE c.oid = part);
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (attempted_at)', name || '_time_idx', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (user_id, attempted_at)', name || '_user_idx', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (client_addr, attempted_at)', name || '_addr_idx', part);
END
$$;
COMMENT ON FUNCTION secpolicy.index_attempt_partition(regclass) IS
    'Internal: create the indexes of a login_attempts partition.';
REVOKE ALL ON FUNCTION secpolicy.index_attempt_partition(regclass) FROM PUBLIC;

-- Rows outside every daily partition land here (before maintain() has run).
CREATE TABLE secpolicy.login_attempts_default PARTITION OF secpolicy.login_attempts DEFAULT;
SELECT secpolicy.index_attempt_partition('secpolicy.login_attempts_default');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.login_attempts_default', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.login_attempts_id_seq', '');

GRANT SELECT ON secpolicy.login_attempts TO secpolicy_admin;

-- Internal: append one attempt.  Inputs are cut to a bounded size, so that a
-- megabyte-long username cannot bloat the log.
CREATE FUNCTION secpolicy.record_attempt(user_id bigint, username text, client_addr inet,
                                         user_agent text, success boolean, outcome text,
                                         stage text DEFAULT 'password')
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO secpolicy.login_attempts
        (user_id, username, client_addr, user_agent, success, outcome, stage)
    VALUES ($1, pg_catalog.left($2, 256), $3, pg_catalog.left($4, 512), $5, $6, $7);
$$;
COMMENT ON FUNCTION secpolicy.record_attempt(bigint, text, inet, text, boolean, text, text) IS
    'Internal: append an attempt to secpolicy.login_attempts.';
REVOKE ALL ON FUNCTION secpolicy.record_attempt(bigint, text, inet, text, boolean, text, text) FROM PUBLIC;

-- Create the daily partitions from `from_day` to `days_ahead` days after today
-- (UTC).  Rows already sitting in the default partition for such a day are
-- moved into the new partition.
CREATE FUNCTION secpolicy.create_attempt_partitions(days_ahead integer DEFAULT 7,
                                                    from_day date DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC'
AS $$
DECLARE
    today date := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
    d date;
    lo timestamptz;
    hi timestamptz;
    name text;
    created integer := 0;
BEGIN
    IF days_ahead IS NULL OR days_ahead < 0 OR days_ahead > 366 THEN
        RAISE EXCEPTION 'days_ahead must be between 0 and 366' USING ERRCODE = '22023';
    END IF;
    d := coalesce(from_day, today);
    WHILE d <= today + days_ahead LOOP
        name := 'login_attempts_p' || pg_catalog.to_char(d, 'YYYYMMDD');
        IF pg_catalog.to_regclass('secpolicy.' || name) IS NULL THEN
            -- rows for this day must not reach the default partition while they move
            LOCK TABLE secpolicy.login_attempts_default IN SHARE ROW EXCLUSIVE MODE;
            lo := (d::timestamp AT TIME ZONE 'UTC');
            hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
            EXECUTE pg_catalog.format(
                'CREATE TABLE secpolicy.%I (LIKE secpolicy.login_attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            PERFORM secpolicy.index_attempt_partition(('secpolicy.' || quote_ident(name))::regclass);
            EXECUTE pg_catalog.format(
                'WITH moved AS (DELETE FROM secpolicy.login_attempts_default WHERE attempted_at >= %L AND attempted_at < %L RETURNING *)'
                ' INSERT INTO secpolicy.%I SELECT * FROM moved', lo, hi, name);
            EXECUTE pg_catalog.format(
                'ALTER TABLE secpolicy.login_attempts ATTACH PARTITION secpolicy.%I FOR VALUES FROM (%L) TO (%L)',
                name, lo, hi);
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION secpolicy.create_attempt_partitions(integer, date) IS
    'Creates the daily partitions of login_attempts up to days_ahead days from today (UTC); returns how many it created.';
REVOKE ALL ON FUNCTION secpolicy.create_attempt_partitions(integer, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.create_attempt_partitions(integer, date) TO secpolicy_admin;
-- Second factor: TOTP building blocks (C, liboath), sealed secrets, recovery
-- codes and the challenges that sit between the password and the code.

ALTER TABLE secpolicy.policy
    ADD COLUMN mfa_challenge_lifetime interval NOT NULL DEFAULT '5 minutes'
        CHECK (mfa_challenge_lifetime > interval '0' AND mfa_challenge_lifetime <= interval '1 hour'),
    ADD COLUMN mfa_enrollment_lifetime interval NOT NULL DEFAULT '15 minutes'
        CHECK (mfa_enrollment_lifetime > interval '0' AND mfa_enrollment_lifetime <= interval '1 day'),
    ADD COLUMN totp_issuer text NOT NULL DEFAULT 'secpolicy'
        CHECK (totp_issuer <> '' AND pg_catalog.strpos(totp_issuer, ':') = 0),
    ADD COLUMN totp_algorithm text NOT NULL DEFAULT 'sha1'
        CHECK (totp_algorithm IN ('sha1', 'sha256', 'sha512')),
    ADD COLUMN totp_digits integer NOT NULL DEFAULT 6 CHECK (totp_digits BETWEEN 6 AND 8),
    ADD COLUMN totp_period integer NOT NULL DEFAULT 30 CHECK (totp_period BETWEEN 15 AND 300),
    ADD COLUMN totp_window integer NOT NULL DEFAULT 1 CHECK (totp_window BETWEEN 0 AND 10),
    ADD COLUMN recovery_code_count integer NOT NULL DEFAULT 10 CHECK (recovery_code_count BETWEEN 1 AND 20);

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
-- Application sessions: idle timeout, absolute lifetime, revocation.

ALTER TABLE secpolicy.policy
    ADD COLUMN session_touch_interval interval NOT NULL DEFAULT '5 seconds'
        CHECK (session_touch_interval >= interval '0' AND session_touch_interval <= interval '1 minute'),
    ADD COLUMN max_sessions_per_user integer CHECK (max_sessions_per_user >= 1);
COMMENT ON COLUMN secpolicy.policy.session_touch_interval IS
    'session_touch() writes last_seen_at at most this often per session; a session can look idle this much early, never late.';
COMMENT ON COLUMN secpolicy.policy.max_sessions_per_user IS
    'Cap on concurrent sessions per user (the oldest end first); NULL for no cap.';

CREATE TABLE secpolicy.sessions (
    user_id bigint NOT NULL REFERENCES secpolicy.users ON DELETE CASCADE,
    id bigserial NOT NULL,
    token_digest bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    ended_at timestamptz,
    end_reason text CHECK (end_reason IN ('idle', 'lifetime', 'logout', 'disabled',
                                          'password_changed', 'lockout', 'admin', 'session_limit')),
    mfa boolean NOT NULL DEFAULT false,
    client_addr inet,
    user_agent text,
    PRIMARY KEY (user_id, id),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
COMMENT ON TABLE secpolicy.sessions IS
    'Application sessions; the token is stored only as its SHA-256 digest.';
CREATE UNIQUE INDEX sessions_token_key ON secpolicy.sessions (token_digest);
CREATE INDEX sessions_live_idx ON secpolicy.sessions (user_id) WHERE ended_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.sessions_id_seq', '');
GRANT SELECT (user_id, id, created_at, last_seen_at, ended_at, end_reason, mfa, client_addr, user_agent)
    ON secpolicy.sessions TO secpolicy_admin;

CREATE TYPE secpolicy.session_status AS (status text, user_id bigint, idle_expires_at timestamptz);
COMMENT ON TYPE secpolicy.session_status IS
    'Result of session_touch(): status is active, expired, revoked or unknown.';

CREATE FUNCTION secpolicy.set_current_session(user_id bigint, session_id bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_set_current_session'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.set_current_session(bigint, bigint) IS
    'Internal: remember the session proven in this transaction (NULLs forget it).';
REVOKE ALL ON FUNCTION secpolicy.set_current_session(bigint, bigint) FROM PUBLIC;

CREATE FUNCTION secpolicy.current_session_user() RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_current_session_user'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION secpolicy.current_session_user() IS
    'User id of the session that session_touch() found active in this transaction, else NULL. For row-level security.';
REVOKE ALL ON FUNCTION secpolicy.current_session_user() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.current_session_user() TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.current_session_id() RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_current_session_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION secpolicy.current_session_id() IS
    'Id of the session that session_touch() found active in this transaction, else NULL.';
REVOKE ALL ON FUNCTION secpolicy.current_session_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.current_session_id() TO secpolicy_app, secpolicy_admin;

-- Internal: end a user's live sessions (all, or all but one); returns how many.
-- Whatever ends sessions for a change of credentials or access also voids the
-- second-factor challenges issued before it (a lockout keeps them, so that
-- they answer reset_required).
CREATE FUNCTION secpolicy.end_sessions(user_id bigint, reason text, keep_session_id bigint DEFAULT NULL)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE secpolicy.mfa_challenges c SET used_at = now()
     WHERE c.user_id = $1 AND c.used_at IS NULL AND $2 IN ('password_changed', 'admin', 'disabled');
    WITH ended AS (
        UPDATE secpolicy.sessions s
           SET ended_at = now(), end_reason = $2
         WHERE s.user_id = $1 AND s.ended_at IS NULL
           AND s.id IS DISTINCT FROM $3
        RETURNING 1)
    SELECT count(*)::integer FROM ended;
$$;
COMMENT ON FUNCTION secpolicy.end_sessions(bigint, text, bigint) IS
    'Internal: end the live sessions of a user, except keep_session_id.';
REVOKE ALL ON FUNCTION secpolicy.end_sessions(bigint, text, bigint) FROM PUBLIC;

-- Internal: open a session and return its token (shown once, stored as a digest).
CREATE FUNCTION secpolicy.start_session(user_id bigint, client_addr inet, user_agent text, mfa boolean)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token text := secpolicy.random_token('sps');
    cap integer;
BEGIN
    INSERT INTO secpolicy.sessions (user_id, token_digest, client_addr, user_agent, mfa)
    VALUES (start_session.user_id, secpolicy.token_digest(token), start_session.client_addr,
            left(start_session.user_agent, 512), start_session.mfa);

    SELECT p.max_sessions_per_user INTO cap FROM secpolicy.policy p;
    IF cap IS NOT NULL THEN
        UPDATE secpolicy.sessions s SET ended_at = now(), end_reason = 'session_limit'
         WHERE s.user_id = start_session.user_id AND s.ended_at IS NULL
           AND s.id NOT IN (SELECT k.id FROM secpolicy.sessions k
                             WHERE k.user_id = start_session.user_id AND k.ended_at IS NULL
                             ORDER BY k.id DESC LIMIT cap);
    END IF;
    RETURN token;
END
$$;
COMMENT ON FUNCTION secpolicy.start_session(bigint, inet, text, boolean) IS
    'Internal: open a session (ending the oldest beyond max_sessions_per_user) and return its token.';
REVOKE ALL ON FUNCTION secpolicy.start_session(bigint, inet, text, boolean) FROM PUBLIC;

-- Internal: the writes of session_touch(): record activity ('touch') or end
-- an expired session ('idle', 'lifetime').  Returns the session's status
-- afterwards.  (The commit waits for the WAL flush like any other: skipping
-- the wait would also cover whatever the caller's transaction writes next.)
CREATE FUNCTION secpolicy.session_mark(user_id bigint, session_id bigint, action text, at timestamptz)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reason text;
BEGIN
    IF action = 'touch' THEN
        -- concurrent touches that all saw a stale last_seen_at write it once
        UPDATE secpolicy.sessions s SET last_seen_at = session_mark.at
         WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id AND s.ended_at IS NULL
           AND s.last_seen_at < session_mark.at
           AND s.last_seen_at <= session_mark.at - (SELECT p.session_touch_interval FROM secpolicy.policy p);
        IF FOUND OR EXISTS (SELECT 1 FROM secpolicy.sessions s
                             WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id
                               AND s.ended_at IS NULL) THEN
            RETURN 'active';
        END IF;
    ELSIF action IN ('idle', 'lifetime') THEN
        UPDATE secpolicy.sessions s SET ended_at = session_mark.at, end_reason = session_mark.action
         WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id AND s.ended_at IS NULL;
    ELSE
        RAISE EXCEPTION 'unknown session action "%"', action USING ERRCODE = '22023';
    END IF;
    -- ended meanwhile (or just now): say how
    SELECT s.end_reason INTO reason FROM secpolicy.sessions s
     WHERE s.user_id = session_mark.user_id AND s.id = session_mark.session_id;
    RETURN CASE WHEN reason IN ('idle', 'lifetime') THEN 'expired' ELSE 'revoked' END;
END
$$;
COMMENT ON FUNCTION secpolicy.session_mark(bigint, bigint, text, timestamptz) IS
    'Internal: the writes of session_touch() (activity, or the end of an expired session).';
REVOKE ALL ON FUNCTION secpolicy.session_mark(bigint, bigint, text, timestamptz) FROM PUBLIC;

-- The hot path, in C: one index probe by digest and a read of the policy
-- row, no SQL; last_seen_at is written at most once per session_touch_interval
-- through session_mark().  Not SECURITY DEFINER: it reads its relations
-- directly (no search_path lookups), so only EXECUTE is granted.
CREATE FUNCTION secpolicy.session_touch(session_token text) RETURNS secpolicy.session_status
    AS 'MODULE_PATHNAME', 'secpolicy_session_touch'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.session_touch(text) IS
    'Checks a session token and records activity: active (idle deadline extended), expired, revoked or unknown.';
REVOKE ALL ON FUNCTION secpolicy.session_touch(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.session_touch(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.logout(session_token text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF session_token IS NULL OR length(session_token) > 128 THEN
        RETURN false;
    END IF;
    UPDATE secpolicy.sessions x SET ended_at = now(), end_reason = 'logout'
     WHERE x.token_digest = secpolicy.token_digest(session_token) AND x.ended_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- fail closed: after any logout the transaction proves no session
    PERFORM secpolicy.set_current_session(NULL, NULL);
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.logout(text) IS
    'Ends a live session; false for an unknown or already ended one.';
REVOKE ALL ON FUNCTION secpolicy.logout(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.logout(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.list_sessions(session_token text)
    RETURNS TABLE (session_id bigint, created_at timestamptz, last_seen_at timestamptz,
                   client_addr inet, user_agent text, mfa boolean, current boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st secpolicy.session_status := secpolicy.session_touch(session_token);
BEGIN
    IF st.status <> 'active' THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT s.id, s.created_at, s.last_seen_at, s.client_addr, s.user_agent, s.mfa,
               s.id = secpolicy.current_session_id()
          FROM secpolicy.sessions s
         WHERE s.user_id = st.user_id AND s.ended_at IS NULL
         ORDER BY s.id;
END
$$;
COMMENT ON FUNCTION secpolicy.list_sessions(text) IS
    'The live sessions of the user owning an active session token (none for any other token).';
REVOKE ALL ON FUNCTION secpolicy.list_sessions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.list_sessions(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.end_other_sessions(session_token text) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st secpolicy.session_status := secpolicy.session_touch(session_token);
BEGIN
    IF st.status <> 'active' THEN
        RETURN 0;
    END IF;
    RETURN secpolicy.end_sessions(st.user_id, 'logout', secpolicy.current_session_id());
END
$$;
COMMENT ON FUNCTION secpolicy.end_other_sessions(text) IS
    'Signs the owner of an active session out everywhere else; returns how many sessions ended.';
REVOKE ALL ON FUNCTION secpolicy.end_other_sessions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.end_other_sessions(text) TO secpolicy_app;

-- Housekeeping: mark sessions that went idle or outlived their lifetime as
-- ended (with the time they really expired), and delete ended sessions older
-- than keep_ended.  Safe to run at any time; schedule it with maintain().
-- Internal: end the open sessions that are past the given idle timeout or
-- lifetime at time `at`, with the time and reason they ended at; returns how many.
CREATE FUNCTION secpolicy.end_expired_sessions(idle_timeout interval, max_lifetime interval,
                                               at timestamptz DEFAULT pg_catalog.now()) RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH e AS (
        UPDATE secpolicy.sessions s
           SET ended_at = least(s.last_seen_at + idle_timeout, s.created_at + max_lifetime),
               end_reason = CASE WHEN s.created_at + max_lifetime <= s.last_seen_at + idle_timeout
                                 THEN 'lifetime' ELSE 'idle' END
         WHERE s.ended_at IS NULL
           AND (s.last_seen_at < at - idle_timeout OR s.created_at < at - max_lifetime)
        RETURNING 1)
    SELECT count(*)::integer FROM e;
$$;
COMMENT ON FUNCTION secpolicy.end_expired_sessions(interval, interval, timestamptz) IS
    'Internal: ends the open sessions past this idle timeout or lifetime at a time (reason idle or lifetime).';
REVOKE ALL ON FUNCTION secpolicy.end_expired_sessions(interval, interval, timestamptz) FROM PUBLIC;

CREATE FUNCTION secpolicy.expire_sessions(keep_ended interval DEFAULT '30 days',
                                          OUT expired integer, OUT deleted integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT secpolicy.end_expired_sessions(p.session_idle_timeout, p.session_max_lifetime)
      INTO expired FROM secpolicy.policy p;
    WITH d AS (
        DELETE FROM secpolicy.sessions s WHERE s.ended_at < now() - keep_ended RETURNING 1)
    SELECT count(*) INTO deleted FROM d;
END
$$;
COMMENT ON FUNCTION secpolicy.expire_sessions(interval) IS
    'Ends sessions past their idle timeout or lifetime and deletes ended sessions older than keep_ended.';
REVOKE ALL ON FUNCTION secpolicy.expire_sessions(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.expire_sessions(interval) TO secpolicy_admin;

-- Expiry is written lazily (by session_touch or expire_sessions), so a
-- longer idle timeout or lifetime would otherwise revive sessions that had
-- already expired: end those under the old settings first, at commit (a
-- deferred trigger) and by the clock, so that sessions expiring while the
-- changing transaction is open are ended too.
CREATE FUNCTION secpolicy.policy_sessions() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM secpolicy.end_expired_sessions(OLD.session_idle_timeout, OLD.session_max_lifetime,
                                           clock_timestamp());
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.policy_sessions() IS
    'Trigger: before a longer idle timeout or lifetime takes effect, ends the sessions expired under the old one.';
REVOKE ALL ON FUNCTION secpolicy.policy_sessions() FROM PUBLIC;
CREATE CONSTRAINT TRIGGER policy_sessions AFTER UPDATE OF session_idle_timeout, session_max_lifetime
    ON secpolicy.policy DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.session_idle_timeout > OLD.session_idle_timeout OR NEW.session_max_lifetime > OLD.session_max_lifetime)
    EXECUTE FUNCTION secpolicy.policy_sessions();
-- Login: password, lockout, the second factor, and the enrolment of one.
--
-- Flows return a status instead of raising, so that the failure counter and
-- the attempt row commit with the caller's statement: call them in
-- autocommit (a caller that rolls back its own transaction also rolls back
-- its own failure).  Every flow locks the account row (FOR UPDATE) before it
-- evaluates a guess, so concurrent guesses on one account are serialised and
-- never more than max_failed_attempts of them are evaluated.

CREATE TYPE secpolicy.login_result AS (
    status text, user_id bigint, session_token text, challenge_token text,
    password_expires_at timestamptz);
COMMENT ON TYPE secpolicy.login_result IS
    'Result of login(): status ok, mfa_required, mfa_enrollment_required, password_expired, password_change_required, invalid_credentials, reset_required or disabled.';

CREATE TYPE secpolicy.mfa_result AS (status text, user_id bigint, session_token text);
COMMENT ON TYPE secpolicy.mfa_result IS
    'Result of verify_mfa(): status ok, invalid_code, expired_challenge or reset_required.';

CREATE TYPE secpolicy.enrollment AS (secret text, otpauth_uri text);
COMMENT ON TYPE secpolicy.enrollment IS
    'Result of totp_enroll(): the new secret (base32, shown once) and its otpauth:// URI; NULLs for an invalid token.';

CREATE TYPE secpolicy.enrollment_result AS (status text, session_token text, recovery_codes text[]);
COMMENT ON TYPE secpolicy.enrollment_result IS
    'Result of totp_confirm(): status ok, invalid_code, expired_challenge or reset_required.';

-- The ledger of guesses in shared memory (src/ledger.c; active when secpolicy
-- is in shared_preload_libraries): a caller's ROLLBACK cannot erase what it
-- counts.  Keys: 'u:<user id>' for accounts, 'n:<lower-cased name>' for
-- unknown usernames.
CREATE FUNCTION secpolicy.guess_begin(key text, lim integer, committed integer, label text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_guess_begin'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_begin(text, integer, integer, text) IS
    'Internal: count a guess in the shared-memory ledger before it is evaluated; false at the limit.';
REVOKE ALL ON FUNCTION secpolicy.guess_begin(text, integer, integer, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.guess_end(key text) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_guess_end'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_end(text) IS
    'Internal: the guess was right; give its count back to the ledger.';
REVOKE ALL ON FUNCTION secpolicy.guess_end(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.guess_clear(key text) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_guess_clear'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_clear(text) IS
    'Internal: clear a key''s ledger count when the transaction commits.';
REVOKE ALL ON FUNCTION secpolicy.guess_clear(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.ledger_active() RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_ledger_active'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.ledger_active() IS
    'Is the shared-memory ledger of guesses in use (secpolicy in shared_preload_libraries)?';
REVOKE ALL ON FUNCTION secpolicy.ledger_active() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.ledger_active() TO secpolicy_admin;

-- Internal: lock an account out (its row locked by the caller): a reset is
-- required, its sessions end, and the lockout is audited and announced.
CREATE FUNCTION secpolicy.lock_account(user_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text;
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = greatest(u.failed_attempts, (SELECT p.max_failed_attempts FROM secpolicy.policy p)),
           reset_required = true, locked_at = now(), last_failed_at = now()
     WHERE u.id = lock_account.user_id
    RETURNING u.username INTO name;
    PERFORM secpolicy.end_sessions(lock_account.user_id, 'lockout');
    PERFORM secpolicy.lockout_event(lock_account.user_id, name);
END
$$;
COMMENT ON FUNCTION secpolicy.lock_account(bigint) IS
    'Internal: require a reset of an account, end its sessions, audit and announce the lockout.';
REVOKE ALL ON FUNCTION secpolicy.lock_account(bigint) FROM PUBLIC;

-- Internal: may one more guess (password or code) be evaluated on this
-- locked account row?  'ok' when it may; 'locked' when the table counts the
-- limit already (or the account needs a reset anyway, for the second-factor
-- flows); 'lockout' when the ledger (active with shared_preload_libraries),
-- where rolled-back failures still count, reaches it: the account is locked
-- out now.  The answer is also the outcome to record.
CREATE FUNCTION secpolicy.may_guess(user_id bigint, failed integer, reset_required boolean DEFAULT false)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lim integer := (SELECT p.max_failed_attempts FROM secpolicy.policy p);
BEGIN
    IF user_id IS NULL OR failed IS NULL OR failed >= lim OR coalesce(reset_required, true) THEN
        RETURN 'locked';
    END IF;
    IF NOT secpolicy.guess_begin('u:' || user_id, lim, failed, 'account ' || user_id) THEN
        PERFORM secpolicy.lock_account(user_id);
        RETURN 'lockout';
    END IF;
    RETURN 'ok';
END
$$;
COMMENT ON FUNCTION secpolicy.may_guess(bigint, integer, boolean) IS
    'Internal: ok, or locked / lockout when the account is at the failure limit (in the table, or now in the ledger).';
REVOKE ALL ON FUNCTION secpolicy.may_guess(bigint, integer, boolean) FROM PUBLIC;

-- Internal: count a failed guess on an account whose row the caller has
-- locked.  At the limit the account is locked out.  Returns the status to
-- answer: invalid_credentials or reset_required.
CREATE FUNCTION secpolicy.register_failure(user_id bigint) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = u.failed_attempts + 1, last_failed_at = now()
     WHERE u.id = register_failure.user_id
    RETURNING u.failed_attempts INTO n;
    IF n < (SELECT p.max_failed_attempts FROM secpolicy.policy p) THEN
        RETURN 'invalid_credentials';
    END IF;
    PERFORM secpolicy.lock_account(register_failure.user_id);
    RETURN 'reset_required';
END
$$;
COMMENT ON FUNCTION secpolicy.register_failure(bigint) IS
    'Internal: count a failed guess on a locked account row; at the limit lock the account out.';
REVOKE ALL ON FUNCTION secpolicy.register_failure(bigint) FROM PUBLIC;

-- Internal: a lockout (of an account, or of an unknown name: user_id NULL)
-- is audited and announced with NOTIFY secpolicy_lockout.  Anyone may LISTEN,
-- so the payload is the audit row's id only, and unknown names announce their
-- lockout exactly as accounts do.
CREATE FUNCTION secpolicy.lockout_event(user_id bigint, username text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    audit_id bigint := secpolicy.audit('account_locked', lockout_event.user_id,
                                       left(lockout_event.username, 256), 'failure limit reached');
BEGIN
    PERFORM pg_notify('secpolicy_lockout', jsonb_build_object('audit_id', audit_id)::text);
END
$$;
COMMENT ON FUNCTION secpolicy.lockout_event(bigint, text) IS
    'Internal: audit and announce that an account (or an unknown name) reached the failure limit.';
REVOKE ALL ON FUNCTION secpolicy.lockout_event(bigint, text) FROM PUBLIC;

-- Internal: the unknown-username path.  It mirrors an existing account step
-- for step (row lock, limit check, one argon2 verification against a dummy
-- hash at the policy's cost, counter update), so that neither the status
-- nor the time tells whether the account exists.
CREATE FUNCTION secpolicy.unknown_user_attempt(username text, password text) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text := lower(left(unknown_user_attempt.username, 256));
    n integer;
    lim integer := (SELECT p.max_failed_attempts FROM secpolicy.policy p);
BEGIN
    INSERT INTO secpolicy.unknown_user_failures AS f (username_key) VALUES (k)
    ON CONFLICT (username_key) DO UPDATE SET failed_attempts = f.failed_attempts
    RETURNING f.failed_attempts INTO n;
    IF n >= lim THEN
        RETURN 'reset_required';
    END IF;
    IF NOT secpolicy.guess_begin('n:' || k, lim, n, 'an unknown username') THEN
        -- rolled-back failures reached the limit, as for an account
        UPDATE secpolicy.unknown_user_failures f SET failed_attempts = lim, last_failed_at = now()
         WHERE f.username_key = k;
        PERFORM secpolicy.lockout_event(NULL, unknown_user_attempt.username);
        RETURN 'reset_required';
    END IF;
    PERFORM secpolicy.verify_password(unknown_user_attempt.password, d.hash) FROM secpolicy.dummy_hash d;
    UPDATE secpolicy.unknown_user_failures f
       SET failed_attempts = n + 1, last_failed_at = now()
     WHERE f.username_key = k;
    IF n + 1 < lim THEN
        RETURN 'invalid_credentials';
    END IF;
    PERFORM secpolicy.lockout_event(NULL, unknown_user_attempt.username);
    RETURN 'reset_required';
END
$$;
COMMENT ON FUNCTION secpolicy.unknown_user_attempt(text, text) IS
    'Internal: answer for an unknown username exactly as for an existing account with a wrong password.';
REVOKE ALL ON FUNCTION secpolicy.unknown_user_attempt(text, text) FROM PUBLIC;

-- Internal: issue a single-use challenge after a correct password.
CREATE FUNCTION secpolicy.issue_challenge(user_id bigint, purpose text, client_addr inet, user_agent text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token text := secpolicy.random_token('spc');
    pol secpolicy.policy;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    INSERT INTO secpolicy.mfa_challenges (user_id, token_digest, purpose, expires_at, client_addr, user_agent)
    VALUES (issue_challenge.user_id, secpolicy.token_digest(token), issue_challenge.purpose,
            now() + CASE WHEN issue_challenge.purpose = 'enroll' THEN pol.mfa_enrollment_lifetime
                         ELSE pol.mfa_challenge_lifetime END,
            issue_challenge.client_addr, left(issue_challenge.user_agent, 512));
    RETURN token;
END
$$;
COMMENT ON FUNCTION secpolicy.issue_challenge(bigint, text, inet, text) IS
    'Internal: a challenge token (verify: policy mfa_challenge_lifetime; enroll: mfa_enrollment_lifetime).';
REVOKE ALL ON FUNCTION secpolicy.issue_challenge(bigint, text, inet, text) FROM PUBLIC;

-- Internal: the end of a complete login: the failure counter clears and a
-- session opens.
CREATE FUNCTION secpolicy.complete_login(user_id bigint, client_addr inet, user_agent text, mfa boolean)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = 0, last_login_at = now(), last_login_addr = complete_login.client_addr
     WHERE u.id = complete_login.user_id;
    PERFORM secpolicy.guess_clear('u:' || complete_login.user_id);
    RETURN secpolicy.start_session(complete_login.user_id, complete_login.client_addr,
                                   complete_login.user_agent, complete_login.mfa);
END
$$;
COMMENT ON FUNCTION secpolicy.complete_login(bigint, inet, text, boolean) IS
    'Internal: clear the failure counter, stamp the login and open a session.';
REVOKE ALL ON FUNCTION secpolicy.complete_login(bigint, inet, text, boolean) FROM PUBLIC;

CREATE FUNCTION secpolicy.mark_statement() RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_mark_statement'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.mark_statement() IS
    'Internal: mark the running statement as carrying a secret, for the log redaction.';
REVOKE ALL ON FUNCTION secpolicy.mark_statement() FROM PUBLIC;

-- Internal: the password check that login() and change_password() share.
-- It locks the account row (FOR UPDATE: concurrent guesses on one account
-- queue here), answers an unknown name exactly as a real one, refuses at the
-- failure limit without evaluating anything, and verifies the password (an
-- account without one against the dummy hash, in the same time; an empty
-- password never passes), counting a failure.  status is 'password_ok' when
-- the password is right (the row stays locked, nothing is recorded yet, user_id
-- is set, rehash tells that the hash is of unnormalised bytes); otherwise it
-- is the answer to give, and the attempt is recorded.
CREATE FUNCTION secpolicy.authenticate(username text, password text, client_addr inet, user_agent text,
                                       stage text, OUT status text, OUT user_id bigint,
                                       OUT rehash boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u secpolicy.users;
    form text;
    refusal text;
BEGIN
    -- the statement carries a password: keep it out of the log, whatever the answer
    PERFORM secpolicy.mark_statement();
    status := 'invalid_credentials';
    IF authenticate.username IS NULL OR authenticate.username = '' OR authenticate.password IS NULL THEN
        PERFORM secpolicy.record_attempt(NULL, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false, 'invalid_input', authenticate.stage);
        RETURN;
    END IF;

    SELECT * INTO u FROM secpolicy.users x
     WHERE lower(x.username) = lower(authenticate.username) FOR UPDATE;
    IF NOT FOUND THEN
        status := secpolicy.unknown_user_attempt(authenticate.username, authenticate.password);
        PERFORM secpolicy.record_attempt(NULL, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false, 'unknown_user', authenticate.stage);
        RETURN;
    END IF;

    refusal := secpolicy.may_guess(u.id, u.failed_attempts);
    IF refusal <> 'ok' THEN
        status := 'reset_required';
        PERFORM secpolicy.record_attempt(u.id, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false, refusal, authenticate.stage);
        RETURN;
    END IF;

    -- a statement of its own, so that nothing can skip the verification
    form := secpolicy.password_match(authenticate.password,
                                     coalesce(u.password_hash, (SELECT d.hash FROM secpolicy.dummy_hash d)));
    IF form IS NULL OR u.password_hash IS NULL OR authenticate.password = '' THEN
        status := secpolicy.register_failure(u.id);
        PERFORM secpolicy.record_attempt(u.id, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false,
                                         CASE status WHEN 'reset_required' THEN 'lockout' ELSE 'invalid_password' END,
                                         authenticate.stage);
        RETURN;
    END IF;
    PERFORM secpolicy.guess_end('u:' || u.id);
    status := 'password_ok';
    user_id := u.id;
    rehash := form = 'as_received';
END
$$;
COMMENT ON FUNCTION secpolicy.authenticate(text, text, inet, text, text) IS
    'Internal: lock the account, check the password (or answer for an unknown name), count failures.';
REVOKE ALL ON FUNCTION secpolicy.authenticate(text, text, inet, text, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.login(username text, password text, client_addr inet DEFAULT NULL,
                                user_agent text DEFAULT NULL)
    RETURNS secpolicy.login_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol secpolicy.policy;
    u secpolicy.users;
    a record := secpolicy.authenticate(login.username, login.password, login.client_addr,
                                       login.user_agent, 'password');
    st text;
    expires timestamptz;
    enrolled boolean;
BEGIN
    IF a.status <> 'password_ok' THEN
        RETURN ROW(a.status, NULL, NULL, NULL, NULL)::secpolicy.login_result;
    END IF;
    SELECT * INTO pol FROM secpolicy.policy;
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = a.user_id;

    -- the password is right: only now may the account's state show
    IF u.disabled_at IS NOT NULL OR u.reset_required THEN
        st := CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled' ELSE 'reset_required' END;
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent, false, st);
        RETURN ROW(st, NULL, NULL, NULL, NULL)::secpolicy.login_result;
    END IF;

    IF a.rehash OR secpolicy.password_needs_rehash(u.password_hash) THEN
        PERFORM secpolicy.write_password(u.id, secpolicy.hash_password(login.password), 'rehash');
    END IF;

    expires := u.password_changed_at + pol.max_password_age;
    IF u.password_expired OR expires <= now() THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         false, 'password_expired');
        RETURN ROW('password_expired', u.id, NULL, NULL, least(coalesce(expires, now()), now()))::secpolicy.login_result;
    END IF;
    IF u.must_change_password THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         false, 'password_change_required');
        RETURN ROW('password_change_required', u.id, NULL, NULL, expires)::secpolicy.login_result;
    END IF;

    SELECT c.confirmed_at IS NOT NULL INTO enrolled FROM secpolicy.totp_credentials c WHERE c.user_id = u.id;
    IF coalesce(enrolled, false) THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         true, 'mfa_required');
        RETURN ROW('mfa_required', u.id, NULL,
                   secpolicy.issue_challenge(u.id, 'verify', login.client_addr, login.user_agent), expires)::secpolicy.login_result;
    ELSIF pol.require_mfa THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         true, 'mfa_enrollment_required');
        RETURN ROW('mfa_enrollment_required', u.id, NULL,
                   secpolicy.issue_challenge(u.id, 'enroll', login.client_addr, login.user_agent), expires)::secpolicy.login_result;
    END IF;

    PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent, true, 'ok');
    RETURN ROW('ok', u.id, secpolicy.complete_login(u.id, login.client_addr, login.user_agent, false), NULL, expires)::secpolicy.login_result;
END
$$;
COMMENT ON FUNCTION secpolicy.login(text, text, inet, text) IS
    'First step of a login: checks the password under the policy and answers with a status, a session or a second-factor challenge.';
REVOKE ALL ON FUNCTION secpolicy.login(text, text, inet, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.login(text, text, inet, text) TO secpolicy_app;

-- Internal: a second-factor code as typed, in NFKC in a UTF-8 database
-- (digits and letters from a full-width keyboard or an input method are the
-- ASCII ones), without spaces and hyphens.  Codes are short: input of more
-- than 256 bytes is not normalised.
CREATE FUNCTION secpolicy.compact_code(code text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c text := coalesce(compact_code.code, '');
BEGIN
    IF octet_length(c) <= 256 AND octet_length(c) > length(c) AND getdatabaseencoding() = 'UTF8' THEN
        c := normalize(c, NFKC);
    END IF;
    RETURN regexp_replace(c, '[[:space:]-]', '', 'g');
END
$$;
COMMENT ON FUNCTION secpolicy.compact_code(text) IS
    'Internal: a second-factor code without spaces and hyphens, in NFKC in a UTF-8 database.';
REVOKE ALL ON FUNCTION secpolicy.compact_code(text) FROM PUBLIC;

-- Internal: check a second-factor code (TOTP, or a recovery code) for a user
-- whose account and credential rows the caller has locked.  Returns the
-- method that matched ('totp', 'recovery_code') or the failure outcome
-- ('invalid_code', 'replayed_code').
CREATE FUNCTION secpolicy.check_second_factor(user_id bigint, code text) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.totp_credentials;
    pol secpolicy.policy;
    m record;
    compact text := secpolicy.compact_code(check_second_factor.code);
BEGIN
    IF length(compact) > 64 THEN
        RETURN 'invalid_code';
    END IF;
    IF compact ~ '^[0-9]{6,8}$' THEN
        SELECT * INTO c FROM secpolicy.totp_credentials x
         WHERE x.user_id = check_second_factor.user_id AND x.confirmed_at IS NOT NULL FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 'invalid_code';
        END IF;
        SELECT * INTO pol FROM secpolicy.policy;
        SELECT * INTO m FROM secpolicy.totp_verify_sealed(c.sealed_secret, compact, now(), c.last_used_step,
                                                          pol.totp_window, c.digits, c.period, c.algorithm);
        IF m.step IS NULL THEN
            RETURN CASE WHEN m.replayed THEN 'replayed_code' ELSE 'invalid_code' END;
        END IF;
        UPDATE secpolicy.totp_credentials x SET last_used_step = m.step
         WHERE x.user_id = check_second_factor.user_id;
        RETURN 'totp';
    END IF;

    UPDATE secpolicy.recovery_codes r SET used_at = now()
     WHERE r.user_id = check_second_factor.user_id AND r.used_at IS NULL
       AND r.code_digest = secpolicy.token_digest(lower(compact));
    RETURN CASE WHEN FOUND THEN 'recovery_code' ELSE 'invalid_code' END;
END
$$;
COMMENT ON FUNCTION secpolicy.check_second_factor(bigint, text) IS
    'Internal: accept a TOTP code once (replay guard) or a recovery code once.';
REVOKE ALL ON FUNCTION secpolicy.check_second_factor(bigint, text) FROM PUBLIC;

-- Internal: a wrong second-factor code on a locked account row: count it,
-- record it (outcome invalid_code or replayed_code, or lockout at the limit)
-- and return the status to answer: invalid_code or reset_required.
CREATE FUNCTION secpolicy.code_failure(user_id bigint, username text, outcome text,
                                       client_addr inet, user_agent text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text := secpolicy.register_failure(code_failure.user_id);
BEGIN
    PERFORM secpolicy.record_attempt(code_failure.user_id, code_failure.username, code_failure.client_addr,
                                     code_failure.user_agent, false,
                                     CASE st WHEN 'reset_required' THEN 'lockout' ELSE code_failure.outcome END,
                                     'mfa');
    RETURN CASE st WHEN 'reset_required' THEN 'reset_required' ELSE 'invalid_code' END;
END
$$;
COMMENT ON FUNCTION secpolicy.code_failure(bigint, text, text, inet, text) IS
    'Internal: count and record a wrong second-factor code; returns invalid_code or reset_required.';
REVOKE ALL ON FUNCTION secpolicy.code_failure(bigint, text, text, inet, text) FROM PUBLIC;

-- Internal: find a live challenge by token, or NULL.  It locks the account
-- first and the challenge second, the order of everything else that touches
-- both (password changes end challenges with the account locked), so that
-- the two cannot deadlock.
CREATE FUNCTION secpolicy.find_challenge(token text, purpose text) RETURNS secpolicy.mfa_challenges
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.mfa_challenges;
BEGIN
    IF token IS NULL OR length(token) > 128 THEN
        RETURN NULL;
    END IF;
    SELECT * INTO c FROM secpolicy.mfa_challenges x
     WHERE x.token_digest = secpolicy.token_digest(find_challenge.token);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM secpolicy.users u WHERE u.id = c.user_id FOR UPDATE;
    SELECT * INTO c FROM secpolicy.mfa_challenges x WHERE x.user_id = c.user_id AND x.id = c.id FOR UPDATE;
    IF c.purpose <> find_challenge.purpose OR c.used_at IS NOT NULL OR c.expires_at <= now() THEN
        RETURN NULL;
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION secpolicy.find_challenge(text, text) IS
    'Internal: the unused, unexpired challenge of a purpose with this token, locked after its account; NULL otherwise.';
REVOKE ALL ON FUNCTION secpolicy.find_challenge(text, text) FROM PUBLIC;

-- Internal: the account a challenge token was issued to, whatever its state
-- (used, expired): attempts with a void challenge are logged against it.
CREATE FUNCTION secpolicy.challenge_account(token text, OUT user_id bigint, OUT username text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, u.username FROM secpolicy.mfa_challenges x JOIN secpolicy.users u ON u.id = x.user_id
     WHERE length(token) <= 128 AND x.token_digest = secpolicy.token_digest(token);
$$;
COMMENT ON FUNCTION secpolicy.challenge_account(text) IS
    'Internal: the account (id, username) a challenge token belongs to, used or not; NULLs when none.';
REVOKE ALL ON FUNCTION secpolicy.challenge_account(text) FROM PUBLIC;

-- Internal: may this account's password open a session now?  Not when it
-- has expired (by age or by an admin) or must be changed.
CREATE FUNCTION secpolicy.password_usable(u secpolicy.users) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT (u.password_expired OR u.must_change_password
                OR coalesce(u.password_changed_at + p.max_password_age <= now(), false))
      FROM secpolicy.policy p;
$$;
COMMENT ON FUNCTION secpolicy.password_usable(secpolicy.users) IS
    'Internal: false when the password has expired or must be changed.';
REVOKE ALL ON FUNCTION secpolicy.password_usable(secpolicy.users) FROM PUBLIC;

CREATE FUNCTION secpolicy.verify_mfa(challenge_token text, code text, client_addr inet DEFAULT NULL)
    RETURNS secpolicy.mfa_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.mfa_challenges := secpolicy.find_challenge(verify_mfa.challenge_token, 'verify');
    u secpolicy.users;
    addr inet;
    outcome text;
BEGIN
    IF c.id IS NULL THEN
        PERFORM secpolicy.record_attempt(a.user_id, a.username, verify_mfa.client_addr, NULL, false,
                                         'expired_challenge', 'mfa')
           FROM secpolicy.challenge_account(verify_mfa.challenge_token) a;
        RETURN ROW('expired_challenge', NULL, NULL)::secpolicy.mfa_result;
    END IF;
    addr := coalesce(verify_mfa.client_addr, c.client_addr);
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = c.user_id FOR UPDATE;
    -- disabled, or the password expired or was replaced by an admin, since
    -- the challenge; else counted before it is evaluated (the ledger), so the
    -- guess must come last
    outcome := CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled'
                    WHEN NOT secpolicy.password_usable(u) THEN 'expired_challenge'
                    ELSE secpolicy.may_guess(u.id, u.failed_attempts, u.reset_required) END;
    IF outcome <> 'ok' THEN
        UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = c.user_id AND x.id = c.id;
        PERFORM secpolicy.record_attempt(u.id, u.username, addr, c.user_agent, false, outcome, 'mfa');
        RETURN ROW(CASE WHEN outcome IN ('locked', 'lockout') THEN 'reset_required' ELSE 'expired_challenge' END,
                   NULL, NULL)::secpolicy.mfa_result;
    END IF;

    outcome := secpolicy.check_second_factor(u.id, verify_mfa.code);
    IF outcome IN ('invalid_code', 'replayed_code') THEN
        IF outcome = 'replayed_code' THEN
            PERFORM secpolicy.audit('totp_replay_rejected', u.id, u.username);
        END IF;
        RETURN ROW(secpolicy.code_failure(u.id, u.username, outcome, addr, c.user_agent),
                   NULL, NULL)::secpolicy.mfa_result;
    END IF;

    PERFORM secpolicy.guess_end('u:' || u.id);
    UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = c.user_id AND x.id = c.id;
    PERFORM secpolicy.record_attempt(u.id, u.username, addr, c.user_agent, true, 'ok', 'mfa');
    IF outcome = 'recovery_code' THEN
        PERFORM secpolicy.audit('recovery_code_used', u.id, u.username, NULL,
                                jsonb_build_object('remaining',
                                    (SELECT count(*) FROM secpolicy.recovery_codes r
                                      WHERE r.user_id = u.id AND r.used_at IS NULL)));
    END IF;
    RETURN ROW('ok', u.id, secpolicy.complete_login(u.id, addr, c.user_agent, true))::secpolicy.mfa_result;
END
$$;
COMMENT ON FUNCTION secpolicy.verify_mfa(text, text, inet) IS
    'Second step of a login: a TOTP or recovery code for the challenge from login(); issues the session.';
REVOKE ALL ON FUNCTION secpolicy.verify_mfa(text, text, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.verify_mfa(text, text, inet) TO secpolicy_app;

-- Internal: whose enrolment does a token authorise?  An enrolment challenge
-- (from login) or an active session (re-enrolment).  Returns the user id and,
-- for a challenge, its id; NULLs when the token authorises nothing.
CREATE FUNCTION secpolicy.enrollment_owner(token text, OUT user_id bigint, OUT challenge_id bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.mfa_challenges := secpolicy.find_challenge(enrollment_owner.token, 'enroll');
    st secpolicy.session_status;
BEGIN
    IF c.id IS NOT NULL THEN
        user_id := c.user_id;
        challenge_id := c.id;
        RETURN;
    END IF;
    st := secpolicy.session_touch(enrollment_owner.token);
    IF st.status <> 'active' THEN
        RETURN;
    END IF;
    -- replacing a factor takes a session opened with it, recently (a stolen
    -- session cookie alone must not be enough to take the factor over)
    IF EXISTS (SELECT 1 FROM secpolicy.totp_credentials t
                WHERE t.user_id = st.user_id AND t.confirmed_at IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM secpolicy.sessions s, secpolicy.policy p
                        WHERE s.user_id = st.user_id AND s.id = secpolicy.current_session_id()
                          AND s.mfa AND s.created_at > now() - p.mfa_enrollment_lifetime) THEN
        RETURN;
    END IF;
    user_id := st.user_id;
END
$$;
COMMENT ON FUNCTION secpolicy.enrollment_owner(text) IS
    'Internal: the user an enrolment challenge or an active session token belongs to.';
REVOKE ALL ON FUNCTION secpolicy.enrollment_owner(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.totp_enroll(token text) RETURNS secpolicy.enrollment
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record := secpolicy.enrollment_owner(totp_enroll.token);
    pol secpolicy.policy;
    u secpolicy.users;
    s record;
BEGIN
    IF o.user_id IS NULL THEN
        RETURN ROW(NULL, NULL)::secpolicy.enrollment;
    END IF;
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = o.user_id;
    IF u.disabled_at IS NOT NULL THEN
        RETURN ROW(NULL, NULL)::secpolicy.enrollment;
    END IF;
    -- a login challenge enrols a first factor only; replacing one takes a session
    IF o.challenge_id IS NOT NULL AND EXISTS (SELECT 1 FROM secpolicy.totp_credentials c
                                               WHERE c.user_id = u.id AND c.confirmed_at IS NOT NULL) THEN
        RETURN ROW(NULL, NULL)::secpolicy.enrollment;
    END IF;
    SELECT * INTO pol FROM secpolicy.policy;
    s := secpolicy.totp_new_secret();
    INSERT INTO secpolicy.totp_credentials AS t
        (user_id, pending_secret, pending_algorithm, pending_digits, pending_period, pending_created_at)
    VALUES (u.id, s.sealed, pol.totp_algorithm, pol.totp_digits, pol.totp_period, now())
    ON CONFLICT (user_id) DO UPDATE
       SET pending_secret = EXCLUDED.pending_secret, pending_algorithm = EXCLUDED.pending_algorithm,
           pending_digits = EXCLUDED.pending_digits, pending_period = EXCLUDED.pending_period,
           pending_created_at = EXCLUDED.pending_created_at;
    -- the key URI format allows no colon in the account label
    RETURN ROW(s.secret, secpolicy.otpauth_uri(s.secret, replace(u.username, ':', '_'), pol.totp_issuer,
                                              pol.totp_algorithm, pol.totp_digits, pol.totp_period))::secpolicy.enrollment;
END
$$;
COMMENT ON FUNCTION secpolicy.totp_enroll(text) IS
    'Starts a TOTP enrolment for an enrolment challenge or an active session: a new secret and its otpauth:// URI.';
REVOKE ALL ON FUNCTION secpolicy.totp_enroll(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_enroll(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.totp_confirm(token text, code text) RETURNS secpolicy.enrollment_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record := secpolicy.enrollment_owner(totp_confirm.token);
    pol secpolicy.policy;
    u secpolicy.users;
    c secpolicy.totp_credentials;
    matched bigint;
    codes text[];
    session text;
    ch secpolicy.mfa_challenges;
    refusal text;
BEGIN
    IF o.user_id IS NOT NULL THEN
        SELECT * INTO pol FROM secpolicy.policy;
        SELECT * INTO u FROM secpolicy.users x WHERE x.id = o.user_id FOR UPDATE;
        SELECT * INTO ch FROM secpolicy.mfa_challenges x WHERE x.user_id = u.id AND x.id = o.challenge_id;
        SELECT * INTO c FROM secpolicy.totp_credentials x WHERE x.user_id = u.id FOR UPDATE;
    END IF;
    IF u.id IS NULL THEN
        -- a void token: logged against the account of the challenge it was, if any
        SELECT a.user_id, a.username INTO u.id, u.username FROM secpolicy.challenge_account(totp_confirm.token) a;
        PERFORM secpolicy.record_attempt(u.id, u.username, NULL, NULL, false, 'expired_challenge', 'mfa');
        RETURN ROW('expired_challenge', NULL, NULL)::secpolicy.enrollment_result;
    END IF;
    -- refused: a disabled account; through a login challenge (which opens a
    -- session), a password that has expired since, or an account that has a
    -- factor already (replacing one takes a session); else the guess is
    -- counted (the ledger) before it is evaluated
    refusal := CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled'
                    WHEN ch.id IS NOT NULL AND NOT secpolicy.password_usable(u) THEN 'expired_challenge'
                    WHEN ch.id IS NOT NULL AND c.confirmed_at IS NOT NULL THEN 'expired_challenge'
                    ELSE secpolicy.may_guess(u.id, u.failed_attempts, u.reset_required) END;
    IF refusal <> 'ok' THEN
        UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = u.id AND x.id = ch.id;
        PERFORM secpolicy.record_attempt(u.id, u.username, ch.client_addr, ch.user_agent, false, refusal, 'mfa');
        RETURN ROW(CASE WHEN refusal IN ('locked', 'lockout') THEN 'reset_required' ELSE 'expired_challenge' END,
                   NULL, NULL)::secpolicy.enrollment_result;
    END IF;
    IF c.pending_secret IS NOT NULL THEN
        SELECT v.step INTO matched
          FROM secpolicy.totp_verify_sealed(c.pending_secret, secpolicy.compact_code(totp_confirm.code),
                                            now(), -1, pol.totp_window, c.pending_digits,
                                            c.pending_period, c.pending_algorithm) v;
    END IF;
    IF matched IS NULL THEN
        RETURN ROW(secpolicy.code_failure(u.id, u.username, 'invalid_code', ch.client_addr, ch.user_agent),
                   NULL, NULL)::secpolicy.enrollment_result;
    END IF;

    PERFORM secpolicy.guess_end('u:' || u.id);
    UPDATE secpolicy.totp_credentials x
       SET sealed_secret = c.pending_secret, algorithm = c.pending_algorithm, digits = c.pending_digits,
           period = c.pending_period, confirmed_at = now(), last_used_step = matched,
           pending_secret = NULL, pending_algorithm = NULL, pending_digits = NULL,
           pending_period = NULL, pending_created_at = NULL
     WHERE x.user_id = u.id;

    SELECT array_agg(secpolicy.recovery_code()) INTO codes FROM generate_series(1, pol.recovery_code_count);
    DELETE FROM secpolicy.recovery_codes r WHERE r.user_id = u.id;
    INSERT INTO secpolicy.recovery_codes (user_id, code_digest)
    SELECT u.id, secpolicy.token_digest(replace(rc, '-', '')) FROM unnest(codes) AS rc;
    PERFORM secpolicy.audit('mfa_enrolled', u.id, u.username, NULL,
                            jsonb_build_object('algorithm', c.pending_algorithm, 'digits', c.pending_digits,
                                               'period', c.pending_period,
                                               'via', CASE WHEN ch.id IS NULL THEN 'session' ELSE 'challenge' END));

    IF ch.id IS NOT NULL THEN
        UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = u.id AND x.id = ch.id;
        PERFORM secpolicy.record_attempt(u.id, u.username, ch.client_addr, ch.user_agent, true, 'ok', 'mfa');
        session := secpolicy.complete_login(u.id, ch.client_addr, ch.user_agent, true);
    END IF;
    RETURN ROW('ok', session, codes)::secpolicy.enrollment_result;
END
$$;
COMMENT ON FUNCTION secpolicy.totp_confirm(text, text) IS
    'Activates the enrolment started by totp_enroll with a current code; returns recovery codes (shown once) and, after a login challenge, a session.';
REVOKE ALL ON FUNCTION secpolicy.totp_confirm(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_confirm(text, text) TO secpolicy_app;
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
GRANT SELECT (user_id, id, requested_at, requested_addr, expires_at, used_at, revoked_at)
    ON secpolicy.password_resets TO secpolicy_admin;

-- Internal: revoke a user's live reset tokens; whatever changes or locks the
-- password (a new request, a change, an admin, disabling) calls it.
CREATE FUNCTION secpolicy.revoke_reset_tokens(user_id bigint) RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE secpolicy.password_resets r SET revoked_at = now()
     WHERE r.user_id = $1 AND r.used_at IS NULL AND r.revoked_at IS NULL;
$$;
COMMENT ON FUNCTION secpolicy.revoke_reset_tokens(bigint) IS
    'Internal: revoke the live password-reset tokens of a user.';
REVOKE ALL ON FUNCTION secpolicy.revoke_reset_tokens(bigint) FROM PUBLIC;

CREATE FUNCTION secpolicy.change_password(username text, old_password text, new_password text,
                                          client_addr inet DEFAULT NULL,
                                          session_token text DEFAULT NULL)
    RETURNS secpolicy.password_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u secpolicy.users;
    a record := secpolicy.authenticate(change_password.username, change_password.old_password,
                                       change_password.client_addr, NULL, 'change_password');
    broken text[];
    keep bigint;
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

    broken := secpolicy.try_set_password(u.id, change_password.new_password);
    IF cardinality(broken) > 0 THEN
        RETURN ROW('rejected', broken)::secpolicy.password_result;
    END IF;

    -- other sessions end; the one the change was made from (if given and live) stays
    SELECT s.id INTO keep FROM secpolicy.sessions s
     WHERE change_password.session_token IS NOT NULL AND length(change_password.session_token) <= 128
       AND s.token_digest = secpolicy.token_digest(change_password.session_token)
       AND s.user_id = u.id AND s.ended_at IS NULL;
    PERFORM secpolicy.end_sessions(u.id, 'password_changed', keep);
    PERFORM secpolicy.revoke_reset_tokens(u.id);
    PERFORM secpolicy.record_attempt(u.id, change_password.username, change_password.client_addr, NULL,
                                     true, 'password_changed', 'change_password');
    PERFORM secpolicy.audit('password_changed', u.id, u.username);
    RETURN ROW('ok', '{}'::text[])::secpolicy.password_result;
END
$$;
COMMENT ON FUNCTION secpolicy.change_password(text, text, text, inet, text) IS
    'Changes a password given the current one (expired passwords included); other sessions of the user end.';
REVOKE ALL ON FUNCTION secpolicy.change_password(text, text, text, inet, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.change_password(text, text, text, inet, text) TO secpolicy_app;

CREATE FUNCTION secpolicy.request_password_reset(username text, client_addr inet DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u secpolicy.users;
    token text;
BEGIN
    IF request_password_reset.username IS NULL OR request_password_reset.username = '' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO u FROM secpolicy.users x
     WHERE lower(x.username) = lower(request_password_reset.username) FOR UPDATE;
    IF NOT FOUND OR u.disabled_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- a new token replaces any live one
    PERFORM secpolicy.revoke_reset_tokens(u.id);
    token := secpolicy.random_token('spr');
    INSERT INTO secpolicy.password_resets (user_id, token_digest, requested_addr, expires_at)
    VALUES (u.id, secpolicy.token_digest(token), request_password_reset.client_addr,
            now() + (SELECT p.reset_token_lifetime FROM secpolicy.policy p));
    RETURN token;
END
$$;
COMMENT ON FUNCTION secpolicy.request_password_reset(text, inet) IS
    'A single-use reset token to deliver to the account''s owner out of band; NULL for an unknown or disabled user.';
REVOKE ALL ON FUNCTION secpolicy.request_password_reset(text, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.request_password_reset(text, inet) TO secpolicy_app;

CREATE FUNCTION secpolicy.reset_password(reset_token text, new_password text)
    RETURNS secpolicy.password_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
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
    IF NOT secpolicy.guess_begin('r:' || r.id, (SELECT p.max_failed_attempts FROM secpolicy.policy p),
                                 r.reuse_rejections, 'reset token ' || r.id) THEN
        UPDATE secpolicy.password_resets x SET revoked_at = now() WHERE x.user_id = r.user_id AND x.id = r.id;
        RETURN ROW('invalid_token', NULL)::secpolicy.password_result;
    END IF;
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
-- Reports on authentication attempts, for secpolicy_analyst (and admins).
--
-- Definitions used throughout:
--   failure       an attempt with success = false (wrong password or code, unknown
--                 user, locked or disabled account, expired password, ...)
--   account       a known account (user_id); usernames of unknown accounts are
--                 kept as typed and counted, case-folded, as distinct usernames
--   source        a client address (NULL when the application passed none)
--   day           a calendar day in the session's TimeZone
-- The views show no hash, secret, token digest or user agent.

ALTER TABLE secpolicy.policy
    ADD COLUMN detection_window interval NOT NULL DEFAULT '1 hour'
        CHECK (detection_window > interval '0' AND detection_window <= interval '7 days'),
    ADD COLUMN spray_min_accounts integer NOT NULL DEFAULT 10 CHECK (spray_min_accounts >= 2),
    ADD COLUMN stuffing_min_sources integer NOT NULL DEFAULT 5 CHECK (stuffing_min_sources >= 2),
    ADD COLUMN brute_force_min_failures integer NOT NULL DEFAULT 20 CHECK (brute_force_min_failures >= 2),
    ADD COLUMN compromise_min_failures integer NOT NULL DEFAULT 3 CHECK (compromise_min_failures >= 1);
COMMENT ON COLUMN secpolicy.policy.detection_window IS
    'How far back detect_attacks() looks for each pattern.';
COMMENT ON COLUMN secpolicy.policy.spray_min_accounts IS
    'Password spraying: one source failing on at least this many usernames within detection_window.';
COMMENT ON COLUMN secpolicy.policy.stuffing_min_sources IS
    'Credential stuffing: one username failing from at least this many sources within detection_window.';
COMMENT ON COLUMN secpolicy.policy.brute_force_min_failures IS
    'Brute force: at least this many failures on one username within detection_window.';
COMMENT ON COLUMN secpolicy.policy.compromise_min_failures IS
    'Possible compromise: a complete login right after at least this many consecutive failures.';

CREATE VIEW secpolicy.failed_logins_daily WITH (security_barrier) AS
    SELECT (a.attempted_at)::date AS day,
           count(*) AS failures,
           count(DISTINCT a.user_id) AS distinct_accounts,
           count(DISTINCT lower(a.username)) AS distinct_usernames,
           count(DISTINCT a.client_addr) AS distinct_sources,
           count(*) FILTER (WHERE a.outcome = 'lockout') AS lockouts
      FROM secpolicy.login_attempts a
     WHERE NOT a.success
     GROUP BY 1;
COMMENT ON VIEW secpolicy.failed_logins_daily IS
    'Failures per day (session time zone): how many, on how many accounts and usernames, from how many sources, and lockouts.';

CREATE VIEW secpolicy.failed_logins_by_user WITH (security_barrier) AS
    WITH recent AS (
        SELECT a.user_id, lower(a.username) AS username_key, a.username, a.attempted_at
          FROM secpolicy.login_attempts a
         WHERE NOT a.success AND a.attempted_at >= now() - interval '30 days'
           AND (a.user_id IS NOT NULL OR a.username IS NOT NULL)
    ), per_name AS (
        SELECT r.user_id, CASE WHEN r.user_id IS NULL THEN r.username_key END AS username_key,
               count(*) FILTER (WHERE r.attempted_at >= now() - interval '24 hours') AS failures_24h,
               count(*) FILTER (WHERE r.attempted_at >= now() - interval '7 days') AS failures_7d,
               count(*) AS failures_30d,
               max(r.attempted_at) AS last_failure_at,
               min(r.username) AS username_typed
          FROM recent r
         GROUP BY 1, 2
    )
    SELECT p.user_id,
           coalesce(u.username, p.username_typed) AS username,
           p.user_id IS NOT NULL AS known_account,
           p.failures_24h, p.failures_7d, p.failures_30d, p.last_failure_at,
           CASE WHEN u.id IS NOT NULL
                THEN u.reset_required OR u.failed_attempts >= pol.max_failed_attempts
                ELSE coalesce(f.failed_attempts >= pol.max_failed_attempts, false) END AS currently_locked
      FROM per_name p
      CROSS JOIN secpolicy.policy pol
      LEFT JOIN secpolicy.users u ON u.id = p.user_id
      LEFT JOIN secpolicy.unknown_user_failures f ON p.user_id IS NULL AND f.username_key = p.username_key;
COMMENT ON VIEW secpolicy.failed_logins_by_user IS
    'Per account (or unknown username, case-folded) with failures in the last 30 days: failures in 24 h / 7 d / 30 d, last failure, locked now.';

CREATE VIEW secpolicy.failed_logins_by_source WITH (security_barrier) AS
    -- per source and name first, then per source: hash aggregation in two
    -- steps, no DISTINCT over the raw rows (which would need them sorted by
    -- address, through the address index: slow)
    WITH pairs AS (
        SELECT a.client_addr, lower(a.username) AS name, max(a.user_id) AS user_id,
               count(*) AS n_30d,
               count(*) FILTER (WHERE a.attempted_at >= now() - interval '24 hours') AS n_24h,
               bool_or(a.attempted_at >= now() - (SELECT pol.detection_window FROM secpolicy.policy pol))
                   AS in_window,
               min(a.attempted_at) AS first_at, max(a.attempted_at) AS last_at
          FROM secpolicy.login_attempts a
         WHERE NOT a.success AND a.attempted_at >= now() - interval '30 days'
         GROUP BY a.client_addr, lower(a.username)
    )
    SELECT p.client_addr,
           sum(p.n_24h)::bigint AS failures_24h,
           sum(p.n_30d)::bigint AS failures_30d,
           count(p.name) FILTER (WHERE p.n_24h > 0) AS distinct_usernames_24h,
           count(p.name) AS distinct_usernames_30d,
           count(DISTINCT p.user_id) AS distinct_accounts_30d,
           min(p.first_at) AS first_failure_at,
           max(p.last_at) AS last_failure_at,
           p.client_addr IS NOT NULL
               AND count(p.name) FILTER (WHERE p.in_window) >= (SELECT pol.spray_min_accounts FROM secpolicy.policy pol)
               AS spraying
      FROM pairs p
     GROUP BY p.client_addr;
COMMENT ON VIEW secpolicy.failed_logins_by_source IS
    'Per client address with failures in the last 30 days; spraying is true when it failed on spray_min_accounts usernames within detection_window.';

CREATE VIEW secpolicy.account_status WITH (security_barrier) AS
    SELECT u.id AS user_id, u.username,
           CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled'
                WHEN u.reset_required OR u.failed_attempts >= pol.max_failed_attempts THEN 'locked'
                WHEN u.password_expired OR u.password_changed_at + pol.max_password_age <= now() THEN 'password_expired'
                WHEN u.must_change_password THEN 'password_change_required'
                ELSE 'active' END AS state,
           u.disabled_at IS NULL AS enabled,
           u.reset_required OR u.failed_attempts >= pol.max_failed_attempts AS locked,
           u.password_expired OR coalesce(u.password_changed_at + pol.max_password_age <= now(), false)
               AS password_expired,
           coalesce(NOT u.password_expired
                    AND u.password_changed_at + pol.max_password_age > now()
                    AND u.password_changed_at + pol.max_password_age <= now() + pol.password_expiry_warning,
                    false) AS password_expiring,
           u.password_changed_at + pol.max_password_age AS password_expires_at,
           u.password_changed_at,
           coalesce(t.confirmed_at IS NOT NULL, false) AS mfa_enrolled,
           coalesce(u.password_hash LIKE '$argon2id$v=19$m=' || (pol.hash_memlimit / 1024)
                                          || ',t=' || pol.hash_opslimit || ',p=%', false) AS hash_current,
           u.failed_attempts,
           u.last_login_at,
           u.created_at,
           (SELECT count(*) FROM secpolicy.sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL)
               AS live_sessions
      FROM secpolicy.users u
      CROSS JOIN secpolicy.policy pol
      LEFT JOIN secpolicy.totp_credentials t ON t.user_id = u.id;
COMMENT ON VIEW secpolicy.account_status IS
    'One row per account: state (active, locked, disabled, password_expired, password_change_required), expiry, MFA, hash cost, last login, failures.';

CREATE FUNCTION secpolicy.failed_login_report(since timestamptz, until timestamptz,
                                              bucket interval DEFAULT '1 day')
    RETURNS TABLE (bucket_start timestamptz, bucket_end timestamptz, attempts bigint, failures bigint,
                   distinct_accounts bigint, distinct_usernames bigint, distinct_sources bigint,
                   lockouts bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF since IS NULL OR until IS NULL OR bucket IS NULL THEN
        RAISE EXCEPTION 'since, until and bucket must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF until <= since THEN
        RAISE EXCEPTION 'until must be later than since' USING ERRCODE = '22023';
    END IF;
    IF NOT isfinite(since) OR NOT isfinite(until) THEN
        RAISE EXCEPTION 'since and until must be finite' USING ERRCODE = '22023';
    END IF;
    IF bucket < interval '1 minute' THEN
        RAISE EXCEPTION 'bucket must be at least 1 minute' USING ERRCODE = '22023';
    END IF;
    -- checked before any series is built (calendar buckets are counted at 30-day months)
    IF extract(epoch FROM until - since) / extract(epoch FROM bucket) > 100000 THEN
        RAISE EXCEPTION 'too many buckets' USING ERRCODE = '54000',
            HINT = 'Use a larger bucket or a shorter range (at most 100000 buckets).';
    END IF;
    -- buckets follow calendar arithmetic in the session's time zone, the last
    -- one is cut at until; only attempts in [since, until) are read (the
    -- partitions of that range), each placed in its bucket by a binary search
    -- of the bucket starts, and aggregated once
    RETURN QUERY
        WITH b AS (
            SELECT array_agg(g ORDER BY g) AS starts
              FROM generate_series(since, until, bucket) AS g
             WHERE g < until
        ), agg AS (
            SELECT width_bucket(x.attempted_at, b.starts) AS i,
                   count(*) AS n_attempts,
                   count(*) FILTER (WHERE NOT x.success) AS n_failures,
                   count(DISTINCT x.user_id) FILTER (WHERE NOT x.success) AS n_accounts,
                   count(DISTINCT lower(x.username)) FILTER (WHERE NOT x.success) AS n_usernames,
                   count(DISTINCT x.client_addr) FILTER (WHERE NOT x.success) AS n_sources,
                   count(*) FILTER (WHERE x.outcome = 'lockout') AS n_lockouts
              FROM secpolicy.login_attempts x, b
             WHERE x.attempted_at >= since AND x.attempted_at < until
             GROUP BY 1
        )
        SELECT s.start, coalesce(lead(s.start) OVER (ORDER BY s.n), until),
               coalesce(agg.n_attempts, 0), coalesce(agg.n_failures, 0), coalesce(agg.n_accounts, 0),
               coalesce(agg.n_usernames, 0), coalesce(agg.n_sources, 0), coalesce(agg.n_lockouts, 0)
          FROM b CROSS JOIN unnest(b.starts) WITH ORDINALITY AS s(start, n)
          LEFT JOIN agg ON agg.i = s.n
         ORDER BY s.n;
END
$$;
COMMENT ON FUNCTION secpolicy.failed_login_report(timestamptz, timestamptz, interval) IS
    'Attempts and failures in [since, until) per bucket (calendar arithmetic in the session time zone), empty buckets included.';
REVOKE ALL ON FUNCTION secpolicy.failed_login_report(timestamptz, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.failed_login_report(timestamptz, timestamptz, interval)
    TO secpolicy_analyst, secpolicy_admin;

CREATE VIEW secpolicy.access_review WITH (security_barrier) AS
    SELECT u.id AS user_id, u.username, a.access, a.granted_at, a.granted_by, a.reason,
           u.disabled_at IS NULL AS enabled, u.last_login_at,
           u.last_login_at IS NULL OR u.last_login_at < now() - interval '90 days' AS dormant
      FROM secpolicy.user_access a JOIN secpolicy.users u ON u.id = a.user_id;
COMMENT ON VIEW secpolicy.access_review IS
    'Who holds which access, granted by whom and why, and whether the holder is disabled or dormant (no login in 90 days).';

GRANT SELECT ON secpolicy.failed_logins_daily, secpolicy.failed_logins_by_user,
                secpolicy.failed_logins_by_source, secpolicy.account_status, secpolicy.access_review
    TO secpolicy_analyst, secpolicy_admin;
-- Attack detection and the incident register (with the 72-hour regulator
-- deadline of a personal-data breach).  Listeners: LISTEN secpolicy_incident
-- and LISTEN secpolicy_lockout receive {"incident_id": n} or {"audit_id": n}
-- on every new incident and every lockout, at commit; anyone may LISTEN, so
-- the details stay in the tables, for secpolicy_admin.

CREATE TABLE secpolicy.incidents (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    severity text NOT NULL DEFAULT 'medium' CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'investigating', 'contained', 'closed')),
    title text NOT NULL CHECK (title <> ''),
    description text,
    detected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    opened_by text NOT NULL DEFAULT SESSION_USER,
    affected_user_ids bigint[] NOT NULL DEFAULT '{}',
    affected_usernames text[] NOT NULL DEFAULT '{}',
    source_addrs inet[] NOT NULL DEFAULT '{}',
    personal_data_breach boolean NOT NULL DEFAULT true,
    regulator_notified_at timestamptz,
    subjects_notified_at timestamptz,
    closed_at timestamptz,
    resolution text,
    dedup_key text,
    evidence jsonb,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
COMMENT ON TABLE secpolicy.incidents IS
    'Security incident register.  A personal-data breach must be reported to the regulator within 72 hours of detection.';
COMMENT ON COLUMN secpolicy.incidents.dedup_key IS
    'Detections with the same key update the open incident instead of opening another.';
CREATE UNIQUE INDEX incidents_open_dedup_key ON secpolicy.incidents (dedup_key)
    WHERE status <> 'closed' AND dedup_key IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.incidents', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.incidents_id_seq', '');
GRANT SELECT ON secpolicy.incidents TO secpolicy_admin;

-- What analysts and auditors see of the register (they read views only).
CREATE VIEW secpolicy.incident_report WITH (security_barrier) AS
    SELECT i.id, i.kind, i.severity, i.status, i.title, i.description, i.detected_at, i.opened_at,
           i.opened_by, i.affected_user_ids, i.affected_usernames, i.source_addrs,
           i.personal_data_breach, i.detected_at + interval '72 hours' AS regulator_deadline,
           i.regulator_notified_at, i.subjects_notified_at, i.closed_at, i.resolution, i.evidence,
           i.updated_at
      FROM secpolicy.incidents i;
COMMENT ON VIEW secpolicy.incident_report IS
    'The incident register with each incident''s regulator deadline (detected_at + 72 hours).';
GRANT SELECT ON secpolicy.incident_report TO secpolicy_admin, secpolicy_analyst;

CREATE FUNCTION secpolicy.incident_notify() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- LISTEN needs no privilege: the payload carries the id only
    PERFORM pg_notify('secpolicy_incident', jsonb_build_object('incident_id', NEW.id)::text);
    PERFORM secpolicy.audit('incident_opened', NULL, NULL, NULL,
                            jsonb_build_object('incident', NEW.id, 'kind', NEW.kind, 'severity', NEW.severity));
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.incident_notify() IS
    'Trigger: NOTIFY secpolicy_incident and audit each new incident.';
REVOKE ALL ON FUNCTION secpolicy.incident_notify() FROM PUBLIC;
CREATE TRIGGER incident_notify AFTER INSERT ON secpolicy.incidents
    FOR EACH ROW EXECUTE FUNCTION secpolicy.incident_notify();

CREATE FUNCTION secpolicy.open_incident(kind text, severity text, title text, description text DEFAULT NULL,
                                        affected_usernames text[] DEFAULT NULL,
                                        detected_at timestamptz DEFAULT NULL,
                                        personal_data_breach boolean DEFAULT true)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO secpolicy.incidents (kind, severity, title, description, detected_at, affected_usernames,
                                     affected_user_ids, personal_data_breach)
    VALUES (open_incident.kind, open_incident.severity, open_incident.title, open_incident.description,
            coalesce(open_incident.detected_at, now()), coalesce(open_incident.affected_usernames, '{}'),
            coalesce((SELECT array_agg(u.id ORDER BY u.id) FROM secpolicy.users u
                       WHERE lower(u.username) = ANY (SELECT lower(n) FROM unnest(open_incident.affected_usernames) n)),
                     '{}'),
            coalesce(open_incident.personal_data_breach, true))
    RETURNING incidents.id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION secpolicy.open_incident(text, text, text, text, text[], timestamptz, boolean) IS
    'Records a security incident; returns its id.  The regulator deadline is detected_at + 72 hours.';
REVOKE ALL ON FUNCTION secpolicy.open_incident(text, text, text, text, text[], timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.open_incident(text, text, text, text, text[], timestamptz, boolean)
    TO secpolicy_admin;

CREATE FUNCTION secpolicy.update_incident(incident_id bigint, status text DEFAULT NULL,
                                          severity text DEFAULT NULL, note text DEFAULT NULL,
                                          regulator_notified_at timestamptz DEFAULT NULL,
                                          subjects_notified_at timestamptz DEFAULT NULL,
                                          personal_data_breach boolean DEFAULT NULL)
    RETURNS secpolicy.incidents
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i secpolicy.incidents;
BEGIN
    SELECT * INTO i FROM secpolicy.incidents x WHERE x.id = update_incident.incident_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident % does not exist', update_incident.incident_id USING ERRCODE = '42704';
    END IF;
    IF i.status = 'closed' THEN
        RAISE EXCEPTION 'incident % is closed', i.id USING ERRCODE = '55000';
    END IF;
    IF update_incident.status = 'closed' THEN
        RAISE EXCEPTION 'close incidents with close_incident()' USING ERRCODE = '22023';
    END IF;
    UPDATE secpolicy.incidents x
       SET status = coalesce(update_incident.status, x.status),
           severity = coalesce(update_incident.severity, x.severity),
           description = CASE WHEN update_incident.note IS NULL THEN x.description
                              ELSE concat_ws(E'\n', x.description,
                                             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC": ')
                                             || update_incident.note) END,
           regulator_notified_at = coalesce(update_incident.regulator_notified_at, x.regulator_notified_at),
           subjects_notified_at = coalesce(update_incident.subjects_notified_at, x.subjects_notified_at),
           personal_data_breach = coalesce(update_incident.personal_data_breach, x.personal_data_breach),
           updated_at = now()
     WHERE x.id = i.id
    RETURNING * INTO i;
    PERFORM secpolicy.audit('incident_updated', NULL, NULL, update_incident.note,
                            jsonb_strip_nulls(jsonb_build_object('incident', i.id, 'status', update_incident.status,
                                'severity', update_incident.severity,
                                'regulator_notified_at', update_incident.regulator_notified_at,
                                'subjects_notified_at', update_incident.subjects_notified_at)));
    RETURN i;
END
$$;
COMMENT ON FUNCTION secpolicy.update_incident(bigint, text, text, text, timestamptz, timestamptz, boolean) IS
    'Moves an open incident along (status, severity, a note) and records when the regulator and the affected people were notified.';
REVOKE ALL ON FUNCTION secpolicy.update_incident(bigint, text, text, text, timestamptz, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.update_incident(bigint, text, text, text, timestamptz, timestamptz, boolean)
    TO secpolicy_admin;

CREATE FUNCTION secpolicy.close_incident(incident_id bigint, resolution text) RETURNS secpolicy.incidents
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i secpolicy.incidents;
BEGIN
    PERFORM secpolicy.require_reason(close_incident.resolution);
    SELECT * INTO i FROM secpolicy.incidents x WHERE x.id = close_incident.incident_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident % does not exist', close_incident.incident_id USING ERRCODE = '42704';
    END IF;
    IF i.status = 'closed' THEN
        RAISE EXCEPTION 'incident % is already closed', i.id USING ERRCODE = '55000';
    END IF;
    UPDATE secpolicy.incidents x
       SET status = 'closed', closed_at = now(), resolution = close_incident.resolution, updated_at = now()
     WHERE x.id = i.id
    RETURNING * INTO i;
    PERFORM secpolicy.audit('incident_closed', NULL, NULL, close_incident.resolution,
                            jsonb_build_object('incident', i.id));
    RETURN i;
END
$$;
COMMENT ON FUNCTION secpolicy.close_incident(bigint, text) IS 'Closes an incident with its resolution.';
REVOKE ALL ON FUNCTION secpolicy.close_incident(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.close_incident(bigint, text) TO secpolicy_admin;

CREATE VIEW secpolicy.incidents_due WITH (security_barrier) AS
    SELECT i.id, i.kind, i.severity, i.status, i.title, i.detected_at,
           i.detected_at + interval '72 hours' AS regulator_deadline,
           i.detected_at + interval '72 hours' - now() AS time_left,
           CASE WHEN now() > i.detected_at + interval '72 hours' THEN 'overdue'
                WHEN now() > i.detected_at + interval '48 hours' THEN 'due_soon'
                ELSE 'pending' END AS deadline_state,
           cardinality(i.affected_user_ids) AS affected_accounts
      FROM secpolicy.incidents i
     WHERE i.personal_data_breach AND i.regulator_notified_at IS NULL;
COMMENT ON VIEW secpolicy.incidents_due IS
    'Personal-data-breach incidents not yet reported to the regulator, with the 72-hour deadline: pending, due_soon (< 24 h left) or overdue.';
GRANT SELECT ON secpolicy.incidents_due TO secpolicy_admin, secpolicy_analyst;

-- The four patterns, over the attempts of [until - detection_window, until).
CREATE FUNCTION secpolicy.attack_patterns(until timestamptz DEFAULT NULL)
    RETURNS TABLE (kind text, subject text, failures bigint, first_at timestamptz, last_at timestamptz,
                   usernames text[], user_ids bigint[], sources inet[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol secpolicy.policy;
    hi timestamptz := coalesce(attack_patterns.until, now());
    lo timestamptz;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    lo := hi - pol.detection_window;
    RETURN QUERY
    WITH w AS (
        SELECT a.attempted_at, a.id, a.user_id, lower(a.username) AS name, a.client_addr, a.success, a.outcome
          FROM secpolicy.login_attempts a
         WHERE a.attempted_at >= lo AND a.attempted_at < hi AND a.username IS NOT NULL
    ), f AS (
        SELECT * FROM w WHERE NOT w.success
    )
    -- password spraying: one source, many usernames
    SELECT 'password_spraying', host(f.client_addr), count(*), min(f.attempted_at), max(f.attempted_at),
           array_agg(DISTINCT f.name), array_remove(array_agg(DISTINCT f.user_id), NULL),
           ARRAY[f.client_addr]
      FROM f WHERE f.client_addr IS NOT NULL
     GROUP BY f.client_addr
    HAVING count(DISTINCT f.name) >= pol.spray_min_accounts
    UNION ALL
    -- credential stuffing: one username, many sources
    SELECT 'credential_stuffing', f.name, count(*), min(f.attempted_at), max(f.attempted_at),
           ARRAY[f.name], array_remove(array_agg(DISTINCT f.user_id), NULL),
           array_agg(DISTINCT f.client_addr) FILTER (WHERE f.client_addr IS NOT NULL)
      FROM f
     GROUP BY f.name
    HAVING count(DISTINCT f.client_addr) >= pol.stuffing_min_sources
    UNION ALL
    -- brute force: many failures on one username
    SELECT 'brute_force', f.name, count(*), min(f.attempted_at), max(f.attempted_at),
           ARRAY[f.name], array_remove(array_agg(DISTINCT f.user_id), NULL),
           coalesce(array_agg(DISTINCT f.client_addr) FILTER (WHERE f.client_addr IS NOT NULL), '{}')
      FROM f
     GROUP BY f.name
    HAVING count(*) >= pol.brute_force_min_failures
    UNION ALL
    -- possible compromise: a complete login right after a run of failures.
    -- Each account's attempts split into runs at every complete login (seg
    -- counts the logins before a row); a run ending in a login is a match.
    SELECT 'compromise_suspected', r.name, r.run, r.run_start, r.ok_at,
           ARRAY[r.name], ARRAY[r.user_id], coalesce(r.sources, '{}')
      FROM (
        SELECT s.user_id, s.seg, max(s.name) AS name,
               count(*) FILTER (WHERE NOT s.success) AS run,
               min(s.attempted_at) FILTER (WHERE NOT s.success) AS run_start,
               array_agg(DISTINCT s.client_addr) FILTER (WHERE NOT s.success AND s.client_addr IS NOT NULL) AS sources,
               max(s.attempted_at) FILTER (WHERE s.outcome = 'ok') AS ok_at
          FROM (SELECT w.*,
                       count(*) FILTER (WHERE w.outcome = 'ok')
                           OVER (PARTITION BY w.user_id ORDER BY w.attempted_at, w.id
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seg
                  FROM w WHERE w.user_id IS NOT NULL) s
         GROUP BY s.user_id, s.seg
      ) r
     WHERE r.ok_at IS NOT NULL AND r.run >= pol.compromise_min_failures;
END
$$;
COMMENT ON FUNCTION secpolicy.attack_patterns(timestamptz) IS
    'Password spraying, credential stuffing, brute force and possible compromise found in the detection window ending at until (default now).';
REVOKE ALL ON FUNCTION secpolicy.attack_patterns(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.attack_patterns(timestamptz) TO secpolicy_analyst, secpolicy_admin;

-- Record what attack_patterns() finds as incidents, one open incident per
-- pattern and subject (a repeat detection updates it).  For a scheduler.
CREATE FUNCTION secpolicy.detect_attacks(until timestamptz DEFAULT NULL)
    RETURNS TABLE (incident_id bigint, kind text, subject text, new_incident boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    key text;
    existing bigint;
BEGIN
    -- one detection run at a time (maintain() and a manual call may overlap);
    -- a row only the owner can lock, not an advisory lock any role could hold
    PERFORM 1 FROM secpolicy.maintenance_state FOR UPDATE;
    FOR p IN SELECT * FROM secpolicy.attack_patterns(detect_attacks.until) LOOP
        key := p.kind || ':' || p.subject;
        SELECT i.id INTO existing FROM secpolicy.incidents i
         WHERE i.dedup_key = key AND i.status <> 'closed' FOR UPDATE;
        IF FOUND THEN
            UPDATE secpolicy.incidents i
               SET evidence = jsonb_build_object('failures', p.failures, 'first_at', p.first_at,
                                                 'last_at', p.last_at, 'sources', p.sources),
                   affected_usernames = ARRAY(SELECT DISTINCT x FROM unnest(i.affected_usernames || p.usernames) x ORDER BY 1),
                   affected_user_ids = ARRAY(SELECT DISTINCT x FROM unnest(i.affected_user_ids || p.user_ids) x ORDER BY 1),
                   source_addrs = ARRAY(SELECT DISTINCT x FROM unnest(i.source_addrs || p.sources) x ORDER BY 1),
                   updated_at = now()
             WHERE i.id = existing;
            PERFORM secpolicy.audit('incident_updated', NULL, NULL, 'repeat detection',
                                    jsonb_build_object('incident', existing, 'failures', p.failures,
                                                       'last_at', p.last_at));
            incident_id := existing;
            new_incident := false;
        ELSE
            INSERT INTO secpolicy.incidents (kind, severity, title, description, detected_at,
                                             affected_usernames, affected_user_ids, source_addrs,
                                             personal_data_breach, dedup_key, evidence, opened_by)
            VALUES (p.kind,
                    CASE p.kind WHEN 'compromise_suspected' THEN 'high' WHEN 'credential_stuffing' THEN 'high'
                                ELSE 'medium' END,
                    replace(p.kind, '_', ' ') || ': ' || p.subject,
                    format('%s failures between %s and %s', p.failures, p.first_at, p.last_at),
                    p.last_at, p.usernames, p.user_ids, p.sources,
                    p.kind = 'compromise_suspected', key,
                    jsonb_build_object('failures', p.failures, 'first_at', p.first_at, 'last_at', p.last_at,
                                       'sources', p.sources),
                    'secpolicy.detect_attacks')
            RETURNING incidents.id INTO incident_id;
            new_incident := true;
        END IF;
        kind := p.kind;
        subject := p.subject;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.detect_attacks(timestamptz) IS
    'Runs attack_patterns() and opens (or updates) one incident per pattern and subject; returns what it found.';
REVOKE ALL ON FUNCTION secpolicy.detect_attacks(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.detect_attacks(timestamptz) TO secpolicy_admin;
-- Retention and housekeeping: one maintain() call to schedule (pg_cron where
-- installed: see schedule_maintenance()).

ALTER TABLE secpolicy.policy
    ADD COLUMN attempt_retention interval DEFAULT '400 days'
        CHECK (attempt_retention >= interval '1 day'),
    ADD COLUMN pseudonymise_after interval DEFAULT '90 days'
        CHECK (pseudonymise_after >= interval '1 day');
COMMENT ON COLUMN secpolicy.policy.attempt_retention IS
    'Attempts older than this are dropped (whole daily partitions); NULL keeps them forever.';
COMMENT ON COLUMN secpolicy.policy.pseudonymise_after IS
    'Attempts older than this lose their user agent and keep only the network of their address (/24 IPv4, /48 IPv6); NULL never.';

CREATE TABLE secpolicy.maintenance_state (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    pseudonymised_until timestamptz NOT NULL DEFAULT '-infinity',
    last_run_at timestamptz
);
COMMENT ON TABLE secpolicy.maintenance_state IS
    'Internal: how far pseudonymisation has got, and when maintain() last ran.';
INSERT INTO secpolicy.maintenance_state DEFAULT VALUES;

-- The network part of an address, as kept after pseudonymisation.
CREATE FUNCTION secpolicy.pseudonymise_addr(addr inet) RETURNS inet
    LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
AS $$
    SELECT network(set_masklen(addr, CASE WHEN family(addr) = 4 THEN least(masklen(addr), 24)
                                          ELSE least(masklen(addr), 48) END));
$$;
COMMENT ON FUNCTION secpolicy.pseudonymise_addr(inet) IS
    'An address cut to its /24 (IPv4) or /48 (IPv6) network.';
REVOKE ALL ON FUNCTION secpolicy.pseudonymise_addr(inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.pseudonymise_addr(inet) TO secpolicy_admin;

-- Drop the daily partitions that lie wholly before now - attempt_retention
-- (each drop is O(1)), delete such rows from the default partition, forget
-- failure counters below the limit last raised before then, and pseudonymise the rows that crossed pseudonymise_after since the last run.
CREATE FUNCTION secpolicy.apply_retention(OUT dropped_partitions integer, OUT deleted_rows bigint,
                                          OUT pseudonymised_rows bigint, OUT forgotten_counters bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC'
AS $$
DECLARE
    pol secpolicy.policy;
    cutoff timestamptz;
    part record;
    done_until timestamptz;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    dropped_partitions := 0;
    deleted_rows := 0;
    pseudonymised_rows := 0;
    forgotten_counters := 0;

    IF pol.attempt_retention IS NOT NULL THEN
        cutoff := now() - pol.attempt_retention;
        FOR part IN
            SELECT c.oid::regclass AS rel,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'secpolicy.login_attempts'::regclass
               AND c.oid <> 'secpolicy.login_attempts_default'::regclass
        LOOP
            IF part.upper_bound <= cutoff THEN
                EXECUTE format('DROP TABLE %s', part.rel);
                dropped_partitions := dropped_partitions + 1;
            END IF;
        END LOOP;
        WITH d AS (DELETE FROM secpolicy.login_attempts_default a WHERE a.attempted_at < cutoff RETURNING 1)
        SELECT count(*) INTO deleted_rows FROM d;
        -- Failure counters below the limit whose last failure is that old (and
        -- at least 90 days old, so that a short retention cannot turn the
        -- limit into a rate) are forgotten: those of unknown names (typed by
        -- people, sometimes a password in the wrong field, or invented by a
        -- sprayer) and, by the same rule, those of accounts, so that no answer
        -- tells the two apart; the guess ledger forgets them too when this
        -- commits.  A name or an account at the limit stays there until a reset.
        WITH d AS (DELETE FROM secpolicy.unknown_user_failures f
                    WHERE f.failed_attempts < pol.max_failed_attempts
                      AND coalesce(f.last_failed_at, f.first_failed_at) < least(cutoff, now() - interval '90 days')
                    RETURNING secpolicy.guess_clear('n:' || f.username_key)),
             u AS (UPDATE secpolicy.users x SET failed_attempts = 0
                    WHERE x.failed_attempts > 0 AND x.failed_attempts < pol.max_failed_attempts
                      AND coalesce(x.last_failed_at, x.created_at) < least(cutoff, now() - interval '90 days')
                    RETURNING secpolicy.guess_clear('u:' || x.id))
        SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM u) INTO forgotten_counters;
    END IF;

    IF pol.pseudonymise_after IS NOT NULL THEN
        cutoff := now() - pol.pseudonymise_after;
        SELECT m.pseudonymised_until INTO done_until FROM secpolicy.maintenance_state m FOR UPDATE;
        IF cutoff > done_until THEN
            WITH p AS (
                UPDATE secpolicy.login_attempts a
                   SET client_addr = secpolicy.pseudonymise_addr(a.client_addr), user_agent = NULL
                 WHERE a.attempted_at >= done_until AND a.attempted_at < cutoff
                   AND (a.user_agent IS NOT NULL
                        OR a.client_addr IS DISTINCT FROM secpolicy.pseudonymise_addr(a.client_addr))
                RETURNING 1)
            SELECT count(*) INTO pseudonymised_rows FROM p;
            UPDATE secpolicy.maintenance_state SET pseudonymised_until = cutoff;
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.apply_retention() IS
    'Drops attempt partitions and forgets failure counters below the limit older than attempt_retention; pseudonymises attempts older than pseudonymise_after.';
REVOKE ALL ON FUNCTION secpolicy.apply_retention() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.apply_retention() TO secpolicy_admin;

-- Everything periodic, in one call: partitions ahead, retention, expired
-- sessions, spent challenges and reset tokens, attack detection.
CREATE FUNCTION secpolicy.maintain() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb := '{}';
    r record;
    n bigint;
BEGIN
    result := result || jsonb_build_object('partitions_created', secpolicy.create_attempt_partitions(7));
    SELECT * INTO r FROM secpolicy.apply_retention();
    result := result || to_jsonb(r);
    SELECT * INTO r FROM secpolicy.expire_sessions();
    result := result || jsonb_build_object('sessions_expired', r.expired, 'sessions_deleted', r.deleted);
    WITH d AS (DELETE FROM secpolicy.mfa_challenges c
                WHERE c.expires_at < now() - interval '1 day' RETURNING 1)
    SELECT count(*) INTO n FROM d;
    result := result || jsonb_build_object('challenges_deleted', n);
    WITH d AS (DELETE FROM secpolicy.password_resets pr
                WHERE pr.expires_at < now() - interval '30 days' RETURNING 1)
    SELECT count(*) INTO n FROM d;
    result := result || jsonb_build_object('reset_tokens_deleted', n);
    SELECT count(*) FILTER (WHERE d.new_incident) INTO n FROM secpolicy.detect_attacks() d;
    result := result || jsonb_build_object('incidents_opened', n);
    UPDATE secpolicy.maintenance_state SET last_run_at = now();
    RETURN result;
END
$$;
COMMENT ON FUNCTION secpolicy.maintain() IS
    'Periodic housekeeping (run every few minutes): partitions, retention, session expiry, token clean-up, attack detection.';
REVOKE ALL ON FUNCTION secpolicy.maintain() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.maintain() TO secpolicy_admin;

CREATE FUNCTION secpolicy.schedule_maintenance(schedule text DEFAULT '*/5 * * * *') RETURNS bigint
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database' USING ERRCODE = '55000',
            HINT = 'Install pg_cron, or call SELECT secpolicy.maintain() every few minutes from another scheduler.';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
        USING 'secpolicy-maintain', schedule, 'SELECT secpolicy.maintain()';
    RETURN job;
END
$$;
COMMENT ON FUNCTION secpolicy.schedule_maintenance(text) IS
    'Schedules maintain() with pg_cron (job secpolicy-maintain); raises 55000 when pg_cron is absent.';
REVOKE ALL ON FUNCTION secpolicy.schedule_maintenance(text) FROM PUBLIC;
-- Compliance evidence: one row per policy statement (DESIGN.md section 1)
-- with the current setting, the organisation's target, and how many of the
-- accounts (or objects) in scope comply.  For ISO 27001 audits.

CREATE FUNCTION secpolicy.compliance_report()
    RETURNS TABLE (statement text, setting text, target text, setting_ok boolean,
                   in_scope bigint, compliant bigint, compliant_pct numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol secpolicy.policy;
    key text := (SELECT k.key_id FROM secpolicy.key_status() k);
    chain record := secpolicy.verify_audit_chain();
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    RETURN QUERY
    WITH active AS (
        SELECT u.*,
               u.password_hash LIKE '$argon2id$v=19$m=' || (pol.hash_memlimit / 1024)
                                    || ',t=' || pol.hash_opslimit || ',p=%' AS hash_current,
               u.password_checked_at >= pol.rules_changed_at AS checked_under_rules,
               EXISTS (SELECT 1 FROM secpolicy.totp_credentials t
                        WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS mfa
          FROM secpolicy.users u WHERE u.disabled_at IS NULL
    ), rows (statement, setting, target, setting_ok, in_scope, compliant) AS (
        SELECT 'Only password hashes are stored (argon2id)',
               format('argon2id, t=%s, m=%s KiB', pol.hash_opslimit, pol.hash_memlimit / 1024),
               'argon2id, at least t=2 and 19 MiB',
               pol.hash_opslimit >= 2 AND pol.hash_memlimit >= 19 * 1024 * 1024,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.password_hash LIKE '$argon2id$%')
        UNION ALL
        SELECT 'Password hashes use the current cost',
               format('t=%s, m=%s KiB', pol.hash_opslimit, pol.hash_memlimit / 1024),
               'every hash at the policy cost (rehashed at login)', true,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.hash_current)
        UNION ALL
        SELECT 'Passwords: 12+ characters with upper, lower, digit and symbol',
               format('min %s, max %s, upper %s, lower %s, digit %s, symbol %s, blocklist %s, username %s',
                      pol.min_length, pol.max_length, pol.require_upper, pol.require_lower,
                      pol.require_digit, pol.require_symbol, pol.check_blocklist, pol.check_username),
               'min 12, all four classes, blocklist',
               pol.min_length >= 12 AND pol.require_upper AND pol.require_lower AND pol.require_digit
                   AND pol.require_symbol AND pol.check_blocklist,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.checked_under_rules)
        UNION ALL
        SELECT 'Previous passwords cannot be reused',
               format('history_depth %s', pol.history_depth), 'history_depth at least 5',
               pol.history_depth >= 5,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.checked_under_rules)
        UNION ALL
        SELECT 'Passwords expire every 6 months',
               coalesce(pol.max_password_age::text, 'never'), 'at most 6 months',
               coalesce(pol.max_password_age <= interval '6 months', false),
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a
                 WHERE NOT a.password_expired
                   AND (pol.max_password_age IS NULL OR a.password_changed_at > now() - pol.max_password_age))
        UNION ALL
        SELECT 'A password reset is enforced after 5 failed attempts',
               format('max_failed_attempts %s', pol.max_failed_attempts), 'at most 5',
               pol.max_failed_attempts <= 5,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a
                 WHERE a.failed_attempts < pol.max_failed_attempts OR a.reset_required)
        UNION ALL
        SELECT 'Everyone uses two-factor authentication',
               format('require_mfa %s', pol.require_mfa), 'require_mfa true', pol.require_mfa,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.mfa)
        UNION ALL
        SELECT 'Automatic sign-out after 15 minutes of inactivity',
               format('idle %s, lifetime %s', pol.session_idle_timeout, pol.session_max_lifetime),
               'idle at most 15 minutes', pol.session_idle_timeout <= interval '15 minutes',
               (SELECT count(*) FROM secpolicy.sessions s WHERE s.ended_at IS NULL),
               (SELECT count(*) FROM secpolicy.sessions s
                 WHERE s.ended_at IS NULL AND s.last_seen_at >= now() - pol.session_idle_timeout
                   AND s.created_at >= now() - pol.session_max_lifetime)
        UNION ALL
        SELECT 'Admins manage user access (no dormant account keeps access)',
               format('%s grants', (SELECT count(*) FROM secpolicy.user_access)),
               'access held only by accounts used in the last 90 days', true,
               (SELECT count(DISTINCT x.user_id) FROM secpolicy.user_access x),
               (SELECT count(DISTINCT x.user_id) FROM secpolicy.user_access x
                  JOIN secpolicy.users u ON u.id = x.user_id
                 WHERE u.disabled_at IS NULL AND u.last_login_at >= now() - interval '90 days')
        UNION ALL
        SELECT 'A leaver is disabled at once (no live session or reset token)',
               format('%s disabled accounts', (SELECT count(*) FROM secpolicy.users u WHERE u.disabled_at IS NOT NULL)),
               'no session or reset token survives disabling', true,
               (SELECT count(*) FROM secpolicy.users u WHERE u.disabled_at IS NOT NULL),
               (SELECT count(*) FROM secpolicy.users u
                 WHERE u.disabled_at IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM secpolicy.sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM secpolicy.password_resets r
                                    WHERE r.user_id = u.id AND r.used_at IS NULL AND r.revoked_at IS NULL
                                      AND r.expires_at > now()))
        UNION ALL
        SELECT 'Shared credentials are changed after a holder leaves',
               format('%s shared credentials', (SELECT count(*) FROM secpolicy.shared_credentials)),
               'no credential still due for rotation', true,
               (SELECT count(*) FROM secpolicy.shared_credentials),
               (SELECT count(*) FROM secpolicy.shared_credentials c WHERE c.rotation_due_at IS NULL)
        UNION ALL
        SELECT 'Only staff who need access can see data (least privilege)',
               format('%s admin, %s application and %s analyst members',
                      (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = 'secpolicy_admin'::regrole),
                      (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = 'secpolicy_app'::regrole),
                      (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = 'secpolicy_analyst'::regrole)),
               'nothing granted to PUBLIC; no hash, secret or token readable by a group role',
               NOT EXISTS (
                   SELECT 1 FROM pg_class c
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    CROSS JOIN unnest(ARRAY['public', 'secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst']) g(role)
                    WHERE c.relnamespace = 'secpolicy'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                      AND a.attname IN ('password_hash', 'hash', 'sealed_secret', 'pending_secret',
                                        'code_digest', 'token_digest')
                      AND has_column_privilege(g.role, c.oid, a.attnum, 'SELECT')),
               -- the extension's tables, views, sequences and functions
               (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'secpolicy'::regnamespace
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition)
                 + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'secpolicy'::regnamespace),
               -- ... on which PUBLIC holds no privilege
               (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'secpolicy'::regnamespace
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition
                   AND NOT CASE WHEN c.relkind = 'S'
                                THEN has_sequence_privilege('public', c.oid, 'USAGE, SELECT, UPDATE')
                                ELSE has_table_privilege('public', c.oid,
                                         'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') END)
                 + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'secpolicy'::regnamespace
                       AND NOT has_function_privilege('public', p.oid, 'EXECUTE'))
        UNION ALL
        SELECT 'Failed authentication attempts are logged and reported',
               format('retention %s', coalesce(pol.attempt_retention::text, 'forever')),
               'every attempt kept at least 90 days',
               pol.attempt_retention IS NULL OR pol.attempt_retention >= interval '90 days',
               NULL::bigint, NULL::bigint
        UNION ALL
        SELECT 'Security incidents are reported to the regulator within 72 hours',
               format('%s open incidents', (SELECT count(*) FROM secpolicy.incidents i WHERE i.status <> 'closed')),
               'regulator notified within 72 hours of detection', true,
               (SELECT count(*) FROM secpolicy.incidents i WHERE i.personal_data_breach),
               (SELECT count(*) FROM secpolicy.incidents i
                 WHERE i.personal_data_breach
                   AND (i.regulator_notified_at <= i.detected_at + interval '72 hours'
                        OR (i.regulator_notified_at IS NULL AND now() <= i.detected_at + interval '72 hours')))
        UNION ALL
        SELECT 'Second-factor secrets are encrypted at rest',
               coalesce('key ' || key, 'no key configured'), 'every secret sealed under the current key',
               key IS NOT NULL,
               (SELECT count(*) FROM secpolicy.totp_credentials t WHERE t.sealed_secret IS NOT NULL),
               (SELECT count(*) FROM secpolicy.totp_credentials t
                 WHERE t.sealed_secret IS NOT NULL AND secpolicy.sealed_key_id(t.sealed_secret) = key)
        UNION ALL
        SELECT 'The audit trail is complete and tamper-evident',
               CASE WHEN chain.intact THEN 'hash chain intact' ELSE format('chain broken at row %s', chain.first_broken_id) END,
               'hash chain intact', chain.intact,
               (SELECT count(*) FROM secpolicy.audit_log),
               CASE WHEN chain.intact THEN chain.rows_checked
                    ELSE (SELECT count(*) FROM secpolicy.audit_log l WHERE l.id < chain.first_broken_id) END
    )
    SELECT r.statement, r.setting, r.target, r.setting_ok, r.in_scope, r.compliant,
           CASE WHEN r.in_scope > 0 THEN round(100.0 * r.compliant / r.in_scope, 1) END
      FROM rows r;
END
$$;
COMMENT ON FUNCTION secpolicy.compliance_report() IS
    'Per policy statement: the setting, the target, whether the setting meets it, and how many in scope comply.';
REVOKE ALL ON FUNCTION secpolicy.compliance_report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.compliance_report() TO secpolicy_analyst, secpolicy_admin;

CREATE VIEW secpolicy.compliance AS SELECT * FROM secpolicy.compliance_report();
COMMENT ON VIEW secpolicy.compliance IS
    'Compliance evidence per policy statement (see compliance_report()).';
GRANT SELECT ON secpolicy.compliance TO secpolicy_analyst, secpolicy_admin;
