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
