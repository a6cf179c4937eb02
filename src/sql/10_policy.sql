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
    -- the intervals are bounded, so that every date computed from them is a valid timestamp
    max_password_age interval DEFAULT '6 months'
        CHECK (max_password_age > interval '0' AND max_password_age <= interval '100 years'),
    password_expiry_warning interval NOT NULL DEFAULT '14 days'
        CHECK (password_expiry_warning >= interval '0' AND password_expiry_warning <= interval '100 years'),
    max_failed_attempts integer NOT NULL DEFAULT 5 CHECK (max_failed_attempts BETWEEN 1 AND 100),
    require_mfa boolean NOT NULL DEFAULT true,
    -- at most a year each, so that every deadline a session computes is a valid timestamp
    session_idle_timeout interval NOT NULL DEFAULT '15 minutes'
        CHECK (session_idle_timeout > interval '0' AND session_idle_timeout <= interval '366 days'),
    session_max_lifetime interval NOT NULL DEFAULT '12 hours'
        CHECK (session_max_lifetime > interval '0' AND session_max_lifetime <= interval '366 days'),
    reset_token_lifetime interval NOT NULL DEFAULT '1 hour'
        CHECK (reset_token_lifetime > interval '0' AND reset_token_lifetime <= interval '7 days'),
    hash_opslimit integer NOT NULL DEFAULT 2 CHECK (hash_opslimit BETWEEN 1 AND 16),
    hash_memlimit bigint NOT NULL DEFAULT 67108864 CHECK (hash_memlimit BETWEEN 8192 AND 1073741824),
    rules_changed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by text NOT NULL DEFAULT SESSION_USER,
    -- second factor
    mfa_challenge_lifetime interval NOT NULL DEFAULT '5 minutes'
        CHECK (mfa_challenge_lifetime > interval '0' AND mfa_challenge_lifetime <= interval '1 hour'),
    mfa_enrollment_lifetime interval NOT NULL DEFAULT '15 minutes'
        CHECK (mfa_enrollment_lifetime > interval '0' AND mfa_enrollment_lifetime <= interval '1 day'),
    totp_issuer text NOT NULL DEFAULT 'secpolicy'
        CHECK (totp_issuer <> '' AND pg_catalog.strpos(totp_issuer, ':') = 0),
    totp_algorithm text NOT NULL DEFAULT 'sha1'
        CHECK (totp_algorithm IN ('sha1', 'sha256', 'sha512')),
    totp_digits integer NOT NULL DEFAULT 6 CHECK (totp_digits BETWEEN 6 AND 8),
    totp_period integer NOT NULL DEFAULT 30 CHECK (totp_period BETWEEN 15 AND 300),
    totp_window integer NOT NULL DEFAULT 1 CHECK (totp_window BETWEEN 0 AND 10),
    recovery_code_count integer NOT NULL DEFAULT 10 CHECK (recovery_code_count BETWEEN 1 AND 20),
    -- sessions
    session_touch_interval interval NOT NULL DEFAULT '5 seconds'
        CHECK (session_touch_interval >= interval '0' AND session_touch_interval <= interval '1 minute'),
    max_sessions_per_user integer CHECK (max_sessions_per_user >= 1),
    -- attack detection
    detection_window interval NOT NULL DEFAULT '1 hour'
        CHECK (detection_window > interval '0' AND detection_window <= interval '7 days'),
    spray_min_accounts integer NOT NULL DEFAULT 10 CHECK (spray_min_accounts >= 2),
    stuffing_min_sources integer NOT NULL DEFAULT 5 CHECK (stuffing_min_sources >= 2),
    brute_force_min_failures integer NOT NULL DEFAULT 20 CHECK (brute_force_min_failures >= 2),
    compromise_min_failures integer NOT NULL DEFAULT 3 CHECK (compromise_min_failures >= 1),
    -- retention
    attempt_retention interval DEFAULT '400 days'
        CHECK (attempt_retention >= interval '1 day' AND attempt_retention <= interval '100 years'),
    pseudonymise_after interval DEFAULT '90 days'
        CHECK (pseudonymise_after >= interval '1 day' AND pseudonymise_after <= interval '100 years'),
    -- 1.1: protected columns (93_protected_columns.sql, 94_disclosures.sql)
    disclosure_retention interval DEFAULT '400 days'
        CHECK (disclosure_retention >= interval '1 day' AND disclosure_retention <= interval '100 years'),
    -- database roles (1.1)
    max_database_access interval NOT NULL DEFAULT '12 hours'
        CHECK (max_database_access > interval '0' AND max_database_access <= interval '7 days'),
    dormant_role_after interval DEFAULT '90 days'
        CHECK (dormant_role_after >= interval '1 day' AND dormant_role_after <= interval '100 years'),
    CHECK (max_length >= min_length)
);
COMMENT ON TABLE secpolicy.policy IS
    'The authentication policy: exactly one row, edited by secpolicy_admin, every change audited.';
COMMENT ON COLUMN secpolicy.policy.session_touch_interval IS
    'session_touch() writes last_seen_at at most this often per session; a session can look idle this much early, never late.';
COMMENT ON COLUMN secpolicy.policy.max_sessions_per_user IS
    'Cap on concurrent sessions per user (the oldest end first); NULL for no cap.';
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
COMMENT ON COLUMN secpolicy.policy.attempt_retention IS
    'Attempts older than this are dropped (whole daily partitions); NULL keeps them forever.';
COMMENT ON COLUMN secpolicy.policy.max_database_access IS
    'Longest access window open_database_access() opens for a database role marked mfa_required.';
COMMENT ON COLUMN secpolicy.policy.dormant_role_after IS
    'role_status flags a login role dormant after this long without a login; NULL never.';
COMMENT ON COLUMN secpolicy.policy.pseudonymise_after IS
    'Attempts older than this lose their user agent and keep only the network of their address (/24 IPv4, /48 IPv6); NULL never.';
COMMENT ON COLUMN secpolicy.policy.disclosure_retention IS
    'Records of reveals of protected values older than this are dropped (whole daily partitions); NULL keeps them forever.';

-- An INSERT replaces the row (this is how pg_restore brings back a dumped
-- policy over the default one); deleting or truncating is refused.
CREATE FUNCTION secpolicy.policy_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- the relation the trigger fires on: on a distributed installation
        -- (Citus), each node's replica of the policy replaces its own row
        EXECUTE format('DELETE FROM %I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
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
