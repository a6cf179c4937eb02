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
