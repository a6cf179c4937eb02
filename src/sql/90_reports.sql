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

-- The reports read the rollups (src/sql/89_rollups.sql) and add the rows the
-- rollups have not counted yet (the tail, found through the logged_xid index
-- of each partition).  The test for "not counted yet" is written out where
-- it is needed: see src/sql/89_rollups.sql.

-- failed_logins_by_user and failed_logins_by_source are the rows the last
-- refresh stored (rollup_user_names, rollup_sources), except those of the
-- names and sources touched since (rows not counted yet, or counted rows that
-- left a sliding window since), which are counted again from the windows the
-- refresh stored, moved to now.  The stored rows are read in the order of
-- their failures_30d index, so that the top of either view by failures costs
-- the rows it shows: the views are plain views (the planner merges the two
-- parts in that order), over functions that read what the analyst may not.

-- Internal: whether the rollups' sliding windows are to be read (built, and
-- refreshed within a day); otherwise the two views count the log.
CREATE FUNCTION secpolicy.rollup_windows_fresh() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(st.built AND st.refreshed_at > now() - interval '1 day', false) FROM secpolicy.rollup_state st
$$;
COMMENT ON FUNCTION secpolicy.rollup_windows_fresh() IS
    'Internal: whether failed_logins_by_user and failed_logins_by_source read the rollups'' sliding windows (built and refreshed within a day).';
REVOKE ALL ON FUNCTION secpolicy.rollup_windows_fresh() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.rollup_windows_fresh() TO secpolicy_analyst, secpolicy_admin;

-- Internal: the failures that change a name's or a source's windows since
-- the last refresh, when the windows are fresh (none otherwise): the rows not
-- counted yet (from_* infinite: they only add), and the counted rows between
-- each window's bound at the last refresh (from_*) and now, which move out
-- of (or, back-dated, into) a window.
-- for_sources: the row changes a source's windows too (24 hours and 30 days).
CREATE FUNCTION secpolicy.rollup_window_changes_read()
    RETURNS TABLE (user_id bigint, username text, client_addr inet, attempted_at timestamptz,
                   from_24h timestamptz, from_7d timestamptz, from_30d timestamptz, last_at timestamptz,
                   for_sources boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    st secpolicy.rollup_state;
    -- each window's bound now
    to_24h timestamptz := now() - interval '24 hours';
    to_7d timestamptz := now() - interval '7 days';
    to_30d timestamptz := now() - interval '30 days';
    lo_24h timestamptz; hi_24h timestamptz; lo_7d timestamptz; hi_7d timestamptz;
    lo_30d timestamptz; hi_30d timestamptz;
BEGIN
    IF NOT secpolicy.rollup_windows_fresh() THEN
        RETURN;
    END IF;
    SELECT * INTO st FROM secpolicy.rollup_state;
    -- The tail (rollup_tail), then one slice per window, a plain range given
    -- as values, so that the plan keeps the partitions of the window and
    -- costs what it reads.  (One query with an OR of the ranges and the tail
    -- condition written out made the planner weigh every partition at every
    -- call: ~9 ms over 32 partitions, ten times the read.)
    RETURN QUERY
        SELECT a.user_id, a.username, a.client_addr, a.attempted_at,
               timestamptz 'infinity', timestamptz 'infinity', timestamptz 'infinity', a.attempted_at, true
          FROM secpolicy.rollup_tail(st, to_30d, 'infinity') a
         WHERE NOT a.success;
    -- The slices are disjoint (each shorter than a day: refreshed within a
    -- day); a row in one is inside or outside the other windows both at the
    -- refresh and now.
    lo_24h := least(st.from_24h, to_24h); hi_24h := greatest(st.from_24h, to_24h);
    lo_7d := least(st.from_7d, to_7d); hi_7d := greatest(st.from_7d, to_7d);
    lo_30d := least(st.from_30d, to_30d); hi_30d := greatest(st.from_30d, to_30d);
    RETURN QUERY
        SELECT a.user_id, a.username, a.client_addr, a.attempted_at, st.from_24h, st.from_7d, st.from_30d, NULL::timestamptz, a.for_sources
          FROM (SELECT a.*, true AS for_sources FROM secpolicy.login_attempts a
                 WHERE a.attempted_at >= lo_24h AND a.attempted_at < hi_24h AND NOT a.success
                UNION ALL
                -- (the sources' windows are 24 hours and 30 days: not 7 days)
                SELECT a.*, false FROM secpolicy.login_attempts a
                 WHERE a.attempted_at >= lo_7d AND a.attempted_at < hi_7d AND NOT a.success
                UNION ALL
                SELECT a.*, true FROM secpolicy.login_attempts a
                 WHERE a.attempted_at >= lo_30d AND a.attempted_at < hi_30d AND NOT a.success) a
         WHERE NOT coalesce(CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id
                                 ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END, false);
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_window_changes_read() IS
    'Internal: the failed attempts that change the sliding windows of failed_logins_by_user and failed_logins_by_source since the last refresh (read by rollup_window_changes()).';
REVOKE ALL ON FUNCTION secpolicy.rollup_window_changes_read() FROM PUBLIC;

-- Internal: the rows of rollup_window_changes_read(), read once per snapshot
-- of a transaction and handed out again to the calls that see the same data
-- (src/rollups.c): a query of either view needs them two or three times.
CREATE FUNCTION secpolicy.rollup_window_changes()
    RETURNS TABLE (user_id bigint, username text, client_addr inet, attempted_at timestamptz,
                   from_24h timestamptz, from_7d timestamptz, from_30d timestamptz, last_at timestamptz,
                   for_sources boolean)
    LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'secpolicy_rollup_window_changes';
COMMENT ON FUNCTION secpolicy.rollup_window_changes() IS
    'Internal: the failed attempts that change the sliding windows of failed_logins_by_user and failed_logins_by_source since the last refresh.';
REVOKE ALL ON FUNCTION secpolicy.rollup_window_changes() FROM PUBLIC;

-- Internal: the keys of the names and the sources whose windows changed since
-- the last refresh (for the views, which run them as the analyst: keys only,
-- no attempt row).  A name's key is its account id, or 'u:' and the
-- case-folded unknown username.
CREATE FUNCTION secpolicy.rollup_touched_names() RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT coalesce(c.user_id::text, 'u:' || lower(c.username))
      FROM secpolicy.rollup_window_changes() c
     WHERE c.user_id IS NOT NULL OR c.username IS NOT NULL
$$;
COMMENT ON FUNCTION secpolicy.rollup_touched_names() IS
    'Internal: the keys (account id, or ''u:'' and the case-folded unknown username) of the names whose failures changed since the last refresh.';
REVOKE ALL ON FUNCTION secpolicy.rollup_touched_names() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.rollup_touched_names() TO secpolicy_analyst, secpolicy_admin;

CREATE FUNCTION secpolicy.rollup_touched_sources() RETURNS SETOF inet
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT c.client_addr FROM secpolicy.rollup_window_changes() c WHERE c.for_sources
$$;
COMMENT ON FUNCTION secpolicy.rollup_touched_sources() IS
    'Internal: the source addresses (NULL: none given) whose failures changed since the last refresh.';
REVOKE ALL ON FUNCTION secpolicy.rollup_touched_sources() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.rollup_touched_sources() TO secpolicy_analyst, secpolicy_admin;

-- The rows of failed_logins_by_user not read from rollup_user_names: those of
-- the names touched since the last refresh (all of them when the windows are
-- not fresh), per account or unknown username (case-folded).
CREATE FUNCTION secpolicy.failed_logins_by_user_report()
    RETURNS TABLE (user_id bigint, username_key text, username_typed text, failures_24h bigint, failures_7d bigint,
                   failures_30d bigint, last_failure_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    IF NOT secpolicy.rollup_windows_fresh() THEN
        -- rollups never built, or not refreshed for a day: the window from the log
        RETURN QUERY
            SELECT a.user_id, CASE WHEN a.user_id IS NULL THEN lower(a.username) END, min(a.username),
                   count(*) FILTER (WHERE a.attempted_at >= now() - interval '24 hours'),
                   count(*) FILTER (WHERE a.attempted_at >= now() - interval '7 days'),
                   count(*), max(a.attempted_at)
              FROM secpolicy.login_attempts a
             WHERE NOT a.success AND a.attempted_at >= now() - interval '30 days'
               AND (a.user_id IS NOT NULL OR a.username IS NOT NULL)
             GROUP BY 1, 2;
        RETURN;
    END IF;
    RETURN QUERY
    -- the windows of the last refresh (rollup_user_windows) of the touched
    -- names, moved to now: plus the failures not counted yet, plus or minus
    -- the counted failures between each window's bound then and now
        WITH changes AS MATERIALIZED (
            SELECT c.user_id, c.username, c.attempted_at, c.from_24h, c.from_7d, c.from_30d, c.last_at
              FROM secpolicy.rollup_window_changes() c
             WHERE c.user_id IS NOT NULL OR c.username IS NOT NULL
        ), touched AS MATERIALIZED (
            SELECT DISTINCT c.user_id, CASE WHEN c.user_id IS NULL THEN lower(c.username) END AS username_key
              FROM changes c
        ), parts AS (
            SELECT c.user_id, c.username,
                   (c.attempted_at >= now() - interval '24 hours')::int - (c.attempted_at >= c.from_24h)::int AS d24,
                   (c.attempted_at >= now() - interval '7 days')::int - (c.attempted_at >= c.from_7d)::int AS d7,
                   (c.attempted_at >= now() - interval '30 days')::int - (c.attempted_at >= c.from_30d)::int AS d30,
                   c.last_at
              FROM changes c
            UNION ALL
            SELECT w.user_id, w.username, w.failures_24h, w.failures_7d, w.failures_30d, w.last_failure_at
              FROM secpolicy.rollup_user_windows w
             WHERE w.user_id IN (SELECT x.user_id FROM touched x)
            UNION ALL
            SELECT w.user_id, w.username, w.failures_24h, w.failures_7d, w.failures_30d, w.last_failure_at
              FROM secpolicy.rollup_user_windows w
             WHERE w.user_id IS NULL
               AND w.username_key IN (SELECT x.username_key FROM touched x WHERE x.user_id IS NULL)
        ), forms AS (
            SELECT p.user_id, CASE WHEN p.user_id IS NULL THEN lower(p.username) END AS username_key, p.username,
                   sum(p.d24) AS f24, sum(p.d7) AS f7, sum(p.d30) AS f30, max(p.last_at) AS last_at
              FROM parts p
             GROUP BY 1, 2, 3
        )
        SELECT f.user_id, f.username_key, min(f.username),
               sum(f.f24)::bigint, sum(f.f7)::bigint, sum(f.f30)::bigint, max(f.last_at)
          FROM forms f
         WHERE f.f30 > 0
         GROUP BY 1, 2;
END
$$;
COMMENT ON FUNCTION secpolicy.failed_logins_by_user_report() IS
    'Internal: the rows of the view failed_logins_by_user counted at the query (the names touched since the last refresh; all when the rollups are not fresh).';
REVOKE ALL ON FUNCTION secpolicy.failed_logins_by_user_report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.failed_logins_by_user_report() TO secpolicy_analyst, secpolicy_admin;

-- (The stored rows are those whose key is not among the touched names'.)
CREATE VIEW secpolicy.failed_logins_by_user AS
    SELECT p.user_id,
           coalesce(u.username, p.username_typed) AS username,
           p.user_id IS NOT NULL AS known_account,
           p.failures_24h, p.failures_7d, p.failures_30d, p.last_failure_at,
           CASE WHEN u.id IS NOT NULL
                THEN u.reset_required OR u.failed_attempts >= pol.max_failed_attempts
                ELSE coalesce(f.failed_attempts >= pol.max_failed_attempts, false) END AS currently_locked
      FROM (SELECT r.user_id, r.username_key, r.username_typed, r.failures_24h, r.failures_7d, r.failures_30d,
                   r.last_failure_at, false AS stored
              FROM secpolicy.failed_logins_by_user_report() r
            UNION ALL
            SELECT n.user_id, n.username_key, n.username_typed, n.failures_24h, n.failures_7d, n.failures_30d,
                   n.last_failure_at, true
              FROM secpolicy.rollup_user_names n) p
      CROSS JOIN secpolicy.policy pol
      LEFT JOIN secpolicy.users u ON u.id = p.user_id
      LEFT JOIN secpolicy.unknown_user_failures f ON p.user_id IS NULL AND f.username_key = p.username_key
     WHERE NOT p.stored
        OR ((SELECT secpolicy.rollup_windows_fresh())
            AND coalesce(p.user_id::text, 'u:' || p.username_key) NOT IN
                (SELECT k FROM secpolicy.rollup_touched_names() k));
COMMENT ON VIEW secpolicy.failed_logins_by_user IS
    'Per account (or unknown username, case-folded) with failures in the last 30 days: failures in 24 h / 7 d / 30 d, last failure, locked now.';

-- Internal (failed_logins_by_source): the first failure from a source (NULL:
-- no address) in the last 30 days, looked up in the log.  A function, not a
-- correlated subquery: Citus plans no such subquery over a CTE.
CREATE FUNCTION secpolicy.first_failure_from(addr inet) RETURNS timestamptz
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
BEGIN
    IF addr IS NULL THEN
        RETURN (SELECT min(a.attempted_at) FROM secpolicy.login_attempts a
                 WHERE a.client_addr IS NULL AND NOT a.success AND a.attempted_at >= now() - interval '30 days');
    END IF;
    RETURN (SELECT min(a.attempted_at) FROM secpolicy.login_attempts a
             WHERE a.client_addr = addr AND NOT a.success AND a.attempted_at >= now() - interval '30 days');
END
$$;
COMMENT ON FUNCTION secpolicy.first_failure_from(inet) IS
    'Internal: the first failed attempt from a source address (NULL: none) in the last 30 days.';
REVOKE ALL ON FUNCTION secpolicy.first_failure_from(inet) FROM PUBLIC;

-- Internal (failed_logins_by_source): the first failures in the last 30 days
-- from the given addresses (those whose stored first failure left the
-- window).  Each is looked up in the order of attempted_at: the partitions of
-- the window are read one after the other, the window's first day first,
-- until a failure is found, so an address costs the days it had none.  The
-- bounds are values, so that the plan keeps only the partitions of the window
-- (not the default one) and reads them in order.  Only the rollups have
-- stored first failures: an empty list (always, on a distributed log) asks
-- nothing of the log.
CREATE FUNCTION secpolicy.first_failures_from(addrs inet[]) RETURNS TABLE (client_addr inet, first_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    lo timestamptz := now() - interval '30 days';
    hi timestamptz := now();
    got_addr inet[];
    got_at timestamptz[];
BEGIN
    IF coalesce(cardinality(addrs), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(x.addr), array_agg(f.attempted_at) INTO got_addr, got_at
      FROM unnest(addrs) x (addr)
      CROSS JOIN LATERAL (
        SELECT a.attempted_at FROM secpolicy.login_attempts a
         WHERE a.client_addr = x.addr AND NOT a.success AND a.attempted_at >= lo AND a.attempted_at < hi
         ORDER BY a.attempted_at LIMIT 1) f;
    RETURN QUERY SELECT g.addr, g.at FROM unnest(got_addr, got_at) g (addr, at);
    IF coalesce(cardinality(got_addr), 0) < cardinality(addrs) THEN
        -- an address whose failures in the window all lie ahead of now (a
        -- clock that ran ahead): the first of those
        RETURN QUERY
            SELECT a.client_addr, min(a.attempted_at) FROM secpolicy.login_attempts a
             WHERE a.client_addr = ANY (ARRAY(SELECT unnest(addrs) EXCEPT SELECT unnest(got_addr)))
               AND NOT a.success AND a.attempted_at >= hi
             GROUP BY a.client_addr;
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.first_failures_from(inet[]) IS
    'Internal: the first failed attempts from the given source addresses in the last 30 days.';
REVOKE ALL ON FUNCTION secpolicy.first_failures_from(inet[]) FROM PUBLIC;

-- The rows of failed_logins_by_source not read from rollup_sources: those of
-- the sources touched since the last refresh (all of them when the windows
-- are not fresh).
CREATE FUNCTION secpolicy.failed_logins_by_source_report()
    RETURNS TABLE (client_addr inet, failures_24h bigint, failures_30d bigint, distinct_usernames_24h bigint,
                   distinct_usernames_30d bigint, distinct_accounts_30d bigint, first_failure_at timestamptz,
                   last_failure_at timestamptz, spraying boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    fresh boolean := secpolicy.rollup_windows_fresh();
BEGIN
    RETURN QUERY
    -- per source, username and account (rollup_source_names of the touched
    -- sources, moved to now as in failed_logins_by_user), then per source and
    -- username, then per source; a first failure that left the window is
    -- looked up in the log
        WITH changes AS MATERIALIZED (
            SELECT c.client_addr, c.username, c.user_id, c.attempted_at, c.from_24h, c.from_30d, c.last_at
              FROM secpolicy.rollup_window_changes() c
             WHERE fresh AND c.for_sources
            UNION ALL
            -- rollups never built, or not refreshed for a day: the window from the log
            SELECT a.client_addr, a.username, a.user_id, a.attempted_at,
                   timestamptz 'infinity', timestamptz 'infinity', a.attempted_at
              FROM secpolicy.login_attempts a
             WHERE NOT a.success AND a.attempted_at >= now() - interval '30 days'
               AND NOT fresh
        ), touched AS MATERIALIZED (
            SELECT DISTINCT c.client_addr FROM changes c
        ), parts AS (
            SELECT c.client_addr, lower(c.username) AS name, c.user_id,
                   (c.attempted_at >= now() - interval '24 hours')::int - (c.attempted_at >= c.from_24h)::int AS d24,
                   (c.attempted_at >= now() - interval '30 days')::int - (c.attempted_at >= c.from_30d)::int AS d30,
                   CASE WHEN c.attempted_at >= now() - interval '30 days' THEN c.attempted_at END AS first_at,
                   false AS stale, c.last_at
              FROM changes c
            UNION ALL
            SELECT w.client_addr, w.username_key, w.user_id, w.failures_24h, w.failures_30d,
                   CASE WHEN w.first_failure_at >= now() - interval '30 days' THEN w.first_failure_at END,
                   w.first_failure_at < now() - interval '30 days', w.last_failure_at
              FROM secpolicy.rollup_source_names w
             WHERE fresh AND w.client_addr IN (SELECT x.client_addr FROM touched x)
            UNION ALL
            SELECT w.client_addr, w.username_key, w.user_id, w.failures_24h, w.failures_30d,
                   CASE WHEN w.first_failure_at >= now() - interval '30 days' THEN w.first_failure_at END,
                   w.first_failure_at < now() - interval '30 days', w.last_failure_at
              FROM secpolicy.rollup_source_names w
             WHERE fresh AND w.client_addr IS NULL AND EXISTS (SELECT 1 FROM touched x WHERE x.client_addr IS NULL)
        ), triples AS (
            SELECT p.client_addr, p.name, p.user_id, sum(p.d24) AS n24, sum(p.d30) AS n30,
                   min(p.first_at) AS first_at, bool_or(p.stale) AS stale, max(p.last_at) AS last_at
              FROM parts p
             GROUP BY 1, 2, 3
        ), pairs AS (
            SELECT t.client_addr, t.name, max(t.user_id) AS user_id,
                   sum(t.n24) AS n_24h, sum(t.n30) AS n_30d,
                   max(t.last_at) >= now() - (SELECT pol.detection_window FROM secpolicy.policy pol) AS in_window,
                   -- (a triple left with one failure in the window: its last)
                   min(CASE WHEN t.stale AND t.n30 = 1 THEN t.last_at ELSE t.first_at END) AS first_at,
                   bool_or(t.stale AND t.n30 <> 1) AS stale, max(t.last_at) AS last_at
              FROM triples t
             WHERE t.n30 > 0
             GROUP BY t.client_addr, t.name
        ), sources AS (
            SELECT p.client_addr,
                   sum(p.n_24h)::bigint AS failures_24h,
                   sum(p.n_30d)::bigint AS failures_30d,
                   count(p.name) FILTER (WHERE p.n_24h > 0) AS distinct_usernames_24h,
                   count(p.name) AS distinct_usernames_30d,
                   count(DISTINCT p.user_id) AS distinct_accounts_30d,
                   min(p.first_at) AS first_at, bool_or(p.stale) AS stale,
                   max(p.last_at) AS last_failure_at,
                   count(p.name) FILTER (WHERE p.in_window) AS names_in_window
              FROM pairs p
             GROUP BY p.client_addr
        )
        SELECT s.client_addr, s.failures_24h, s.failures_30d, s.distinct_usernames_24h, s.distinct_usernames_30d,
               s.distinct_accounts_30d,
               CASE WHEN NOT s.stale THEN s.first_at
                    WHEN s.client_addr IS NULL THEN secpolicy.first_failure_from(NULL)
                    ELSE f.first_at END AS first_failure_at,
               s.last_failure_at,
               s.client_addr IS NOT NULL
                   AND s.names_in_window >= (SELECT pol.spray_min_accounts FROM secpolicy.policy pol) AS spraying
          FROM sources s
          -- (the first failures that left the window: the next ones, from the log)
          LEFT JOIN secpolicy.first_failures_from(ARRAY(SELECT x.client_addr FROM sources x
                                                        WHERE x.stale AND x.client_addr IS NOT NULL)) f
                 ON f.client_addr = s.client_addr;
END
$$;
COMMENT ON FUNCTION secpolicy.failed_logins_by_source_report() IS
    'Internal: the rows of the view failed_logins_by_source counted at the query (the sources touched since the last refresh; all when the rollups are not fresh).';
REVOKE ALL ON FUNCTION secpolicy.failed_logins_by_source_report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.failed_logins_by_source_report() TO secpolicy_analyst, secpolicy_admin;

-- Internal (failed_logins_by_source): the stored sources that spray now,
-- having failed on spray_min_accounts usernames within detection_window.  A
-- stored source failed on nothing since the last refresh, so the usernames it
-- failed on within the window (at most 7 days) are among those of its 30 days:
-- only the sources with as many there are looked at (through an index).
-- Found once per query: a check per stored row, in the view, made its plan
-- look costly enough (350,000 sources) to be JIT-compiled, 0.2 s of 0.4.
CREATE FUNCTION secpolicy.rollup_spraying_sources() RETURNS SETOF inet
    LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 10
    SET search_path = pg_catalog, pg_temp SET jit = off SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    pol secpolicy.policy;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    RETURN QUERY
        SELECT n.client_addr
          FROM secpolicy.rollup_sources n
         WHERE n.distinct_usernames_30d >= pol.spray_min_accounts
           AND n.client_addr IS NOT NULL
           AND n.last_failure_at >= now() - pol.detection_window
           AND (SELECT count(DISTINCT w.username_key) FROM secpolicy.rollup_source_names w
                 WHERE w.client_addr = n.client_addr AND w.last_failure_at >= now() - pol.detection_window)
               >= pol.spray_min_accounts;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_spraying_sources() IS
    'Internal: the sources of rollup_sources that fail on spray_min_accounts usernames within detection_window now.';
REVOKE ALL ON FUNCTION secpolicy.rollup_spraying_sources() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.rollup_spraying_sources() TO secpolicy_analyst, secpolicy_admin;

-- (The stored rows are those whose address is not among the touched
-- sources'; whether a stored source sprays now depends on the time.)
CREATE VIEW secpolicy.failed_logins_by_source AS
    SELECT s.client_addr, s.failures_24h, s.failures_30d, s.distinct_usernames_24h, s.distinct_usernames_30d,
           s.distinct_accounts_30d, s.first_failure_at, s.last_failure_at,
           CASE WHEN NOT s.stored THEN s.spraying
                ELSE s.client_addr IS NOT NULL
                     AND s.client_addr IN (SELECT t FROM secpolicy.rollup_spraying_sources() t)
           END AS spraying
      FROM (SELECT r.client_addr, r.failures_24h, r.failures_30d, r.distinct_usernames_24h, r.distinct_usernames_30d,
                   r.distinct_accounts_30d, r.first_failure_at, r.last_failure_at, r.spraying, false AS stored
              FROM secpolicy.failed_logins_by_source_report() r
            UNION ALL
            SELECT n.client_addr, n.failures_24h, n.failures_30d, n.distinct_usernames_24h, n.distinct_usernames_30d,
                   n.distinct_accounts_30d, n.first_failure_at, n.last_failure_at, NULL, true
              FROM secpolicy.rollup_sources n) s
     WHERE NOT s.stored
        OR ((SELECT secpolicy.rollup_windows_fresh())
            AND CASE WHEN s.client_addr IS NOT NULL
                     THEN s.client_addr NOT IN (SELECT t FROM secpolicy.rollup_touched_sources() t WHERE t IS NOT NULL)
                     ELSE NOT EXISTS (SELECT 1 FROM secpolicy.rollup_touched_sources() t WHERE t IS NULL) END);
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
    -- its plans are cheap but look costly (one aggregate per bucket): JIT
    -- compilation would cost seconds
    SET jit = off
AS $$
DECLARE
    epoch CONSTANT timestamptz := '2000-01-01 00:00+00';
    starts timestamptz[];
    nb integer;
    unaligned integer;
    st secpolicy.rollup_state;
    cell_lo timestamptz;
    cell_hi timestamptz;
    -- the tail's rows, column by column (what the counts need)
    t_at timestamptz[];
    t_ok boolean[];
    t_lock boolean[];
    t_account text[];
    t_name text[];
    t_source text[];
    tail_hours timestamptz[];
    tail_days timestamptz[];
    cells interval[];
    hows text[];
    rest_empty boolean;
    b_s timestamptz;
    b_e timestamptz;
    v_n bigint; v_f bigint; v_l bigint; v_da bigint; v_du bigint; v_ds bigint;
    c_n bigint; c_f bigint; c_l bigint; c_da bigint; c_du bigint; c_ds bigint;
    k_a bigint; k_u bigint; k_s bigint;
    ka text[]; ku text[]; ks text[];
    o_i integer[] := '{}';
    o_n bigint[] := '{}'; o_f bigint[] := '{}'; o_l bigint[] := '{}';
    o_da bigint[] := '{}'; o_du bigint[] := '{}'; o_ds bigint[] := '{}';
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
    -- buckets follow calendar arithmetic in the session's time zone; an
    -- interval that is positive at 30-day months may still not move forward
    -- on the calendar ('1 mon -29 days' from January 30 comes back to January
    -- 30), so the series is cut after 100001 starts and must increase
    -- (in the select list, where the series stops at the limit: in FROM it
    -- would be built whole first)
    starts := ARRAY(SELECT generate_series(since, until, bucket) LIMIT 100001);
    -- the buckets are the starts before until (an increasing prefix)
    nb := 0;
    FOR i IN 1 .. cardinality(starts) LOOP
        EXIT WHEN starts[i] >= until;
        IF i > 1 AND starts[i] <= starts[i - 1] THEN
            RAISE EXCEPTION 'bucket % does not move forward from %', bucket, starts[i - 1] USING ERRCODE = '22023',
                HINT = 'Use a bucket that leads to later times on the calendar.';
        END IF;
        nb := i;
    END LOOP;
    IF nb > 100000 THEN
        RAISE EXCEPTION 'too many buckets' USING ERRCODE = '54000',
            HINT = 'Use a larger bucket or a shorter range (at most 100000 buckets).';
    END IF;
    starts := starts[1:nb];

    SELECT * INTO st FROM secpolicy.rollup_state;
    -- a bucket that is exactly a UTC hour or a UTC day (the last one may be
    -- cut at until) is answered by the rollups (its cell: 1 hour or 24
    -- hours); any other (no cell) is counted from the log
    cells := ARRAY(
        SELECT CASE WHEN b.s = date_bin('1 hour', b.s, epoch)
                         AND (b.e = b.s + interval '1 hour' OR (b.n = nb AND b.e < b.s + interval '1 hour'))
                    THEN interval '1 hour'
                    WHEN b.s = date_bin('1 day', b.s, epoch)
                         AND (b.e = b.s + interval '24 hours' OR (b.n = nb AND b.e < b.s + interval '24 hours'))
                    THEN interval '24 hours' END
          FROM (SELECT u.n, u.s, coalesce(lead(u.s) OVER (ORDER BY u.n), until) AS e
                  FROM unnest(starts) WITH ORDINALITY u(s, n)) b
         ORDER BY b.n);
    unaligned := cardinality(array_positions(cells, NULL));

    IF NOT st.built OR unaligned > 64 THEN
        -- from the log: only attempts in [since, until) are read (the
        -- partitions of that range), each placed in its bucket by a binary
        -- search of the bucket starts, and aggregated once
        RETURN QUERY
            WITH agg AS (
                SELECT width_bucket(x.attempted_at, starts) AS i,
                       count(*) AS n_attempts,
                       count(*) FILTER (WHERE NOT x.success) AS n_failures,
                       count(DISTINCT x.user_id) FILTER (WHERE NOT x.success) AS n_accounts,
                       count(DISTINCT lower(x.username)) FILTER (WHERE NOT x.success) AS n_usernames,
                       count(DISTINCT x.client_addr) FILTER (WHERE NOT x.success) AS n_sources,
                       count(*) FILTER (WHERE x.outcome = 'lockout') AS n_lockouts
                  FROM secpolicy.login_attempts x
                 WHERE x.attempted_at >= since AND x.attempted_at < until
                 GROUP BY 1
            )
            SELECT s.start, coalesce(lead(s.start) OVER (ORDER BY s.n), until),
                   coalesce(agg.n_attempts, 0), coalesce(agg.n_failures, 0), coalesce(agg.n_accounts, 0),
                   coalesce(agg.n_usernames, 0), coalesce(agg.n_sources, 0), coalesce(agg.n_lockouts, 0)
              FROM unnest(starts) WITH ORDINALITY AS s(start, n)
              LEFT JOIN agg ON agg.i = s.n
             ORDER BY s.n;
        RETURN;
    END IF;

    -- Each bucket is answered by one of:
    --   h, d  the rollup of its UTC hour or day (no row of it in the tail)
    --   t     the rollup of its hour or day plus its rows in the tail, their
    --         keys that the rollup already holds counted once (a keyed hour
    --         or day, or one with no counted row)
    --   r     the log (not a UTC hour or day; a cut last bucket whose cell
    --         holds later rows; tail rows in an hour or day not keyed)
    -- Only the tail and these few buckets read the log: the statements stay
    -- small, and their plans cheap.
    cell_lo := date_bin('1 day', since, epoch);
    cell_hi := date_bin('1 day', until, epoch) + interval '24 hours';
    SELECT coalesce(array_agg(t.attempted_at), '{}'), array_agg(t.success), array_agg(t.outcome = 'lockout'),
           array_agg(t.user_id::text), array_agg(lower(t.username)), array_agg(t.client_addr::text),
           coalesce(array_agg(DISTINCT date_bin('1 hour', t.attempted_at, epoch)), '{}'),
           coalesce(array_agg(DISTINCT date_bin('1 day', t.attempted_at, epoch)), '{}')
      INTO t_at, t_ok, t_lock, t_account, t_name, t_source, tail_hours, tail_days
      FROM secpolicy.rollup_tail(st, cell_lo, cell_hi) t;
    -- a cut last bucket is its cell only if the rest of the cell is empty
    rest_empty := cells[nb] IS NULL OR until >= starts[nb] + cells[nb]
                  OR NOT EXISTS (SELECT 1 FROM secpolicy.login_attempts a
                                  WHERE a.attempted_at >= until AND a.attempted_at < starts[nb] + cells[nb]);
    hows := ARRAY(
        SELECT CASE WHEN c.cell IS NULL OR (c.n = nb AND NOT rest_empty) THEN 'r'
                    WHEN c.cell = interval '1 hour' THEN
                        CASE WHEN c.s <> ALL (tail_hours) THEN 'h'
                             WHEN NOT EXISTS (SELECT 1 FROM secpolicy.rollup_hourly r WHERE r.hour = c.s AND NOT r.keyed) THEN 't'
                             ELSE 'r' END
                    ELSE
                        CASE WHEN c.s <> ALL (tail_days) THEN 'd'
                             WHEN NOT EXISTS (SELECT 1 FROM secpolicy.rollup_daily r
                                               WHERE r.day = (c.s AT TIME ZONE 'UTC')::date AND NOT r.keyed) THEN 't'
                             ELSE 'r' END END
          FROM unnest(starts, cells) WITH ORDINALITY c(s, cell, n)
         ORDER BY c.n);

    -- the buckets with rows in the tail, and those read from the log
    FOR i IN 1 .. nb LOOP
        CONTINUE WHEN hows[i] IN ('h', 'd');
        b_s := starts[i];
        b_e := CASE WHEN i < nb THEN starts[i + 1] ELSE until END;
        IF hows[i] = 'r' THEN
            SELECT count(*), count(*) FILTER (WHERE NOT a.success), count(DISTINCT a.user_id) FILTER (WHERE NOT a.success),
                   count(DISTINCT lower(a.username)) FILTER (WHERE NOT a.success),
                   count(DISTINCT a.client_addr) FILTER (WHERE NOT a.success),
                   count(*) FILTER (WHERE a.outcome = 'lockout')
              INTO v_n, v_f, v_da, v_du, v_ds, v_l
              FROM secpolicy.login_attempts a
             WHERE a.attempted_at >= b_s AND a.attempted_at < b_e;
        ELSE
            SELECT count(*), count(*) FILTER (WHERE NOT t.ok), count(*) FILTER (WHERE t.lock),
                   -- (sorted in byte order, as the keys are stored: half the
                   -- time of the locale's order, and the lookups below too)
                   coalesce(array_agg(DISTINCT t.account COLLATE "C") FILTER (WHERE NOT t.ok AND t.account IS NOT NULL), '{}'),
                   coalesce(array_agg(DISTINCT t.name COLLATE "C") FILTER (WHERE NOT t.ok AND t.name IS NOT NULL), '{}'),
                   coalesce(array_agg(DISTINCT t.source COLLATE "C") FILTER (WHERE NOT t.ok AND t.source IS NOT NULL), '{}')
              INTO v_n, v_f, v_l, ka, ku, ks
              FROM unnest(t_at, t_ok, t_lock, t_account, t_name, t_source) t (at, ok, lock, account, name, source)
             WHERE t.at >= b_s AND t.at < b_e;
            -- the rollup's counts, and how many of the tail's keys it holds
            IF cells[i] = interval '1 hour' THEN
                SELECT r.attempts, r.failures, r.lockouts, r.distinct_accounts, r.distinct_usernames, r.distinct_sources
                  INTO c_n, c_f, c_l, c_da, c_du, c_ds
                  FROM secpolicy.rollup_hourly r WHERE r.hour = b_s;
                SELECT (SELECT count(*) FROM secpolicy.rollup_hour_keys k WHERE k.hour = b_s AND k.kind = 'a' AND k.key = ANY (ka)),
                       (SELECT count(*) FROM secpolicy.rollup_hour_keys k WHERE k.hour = b_s AND k.kind = 'u' AND k.key = ANY (ku)),
                       (SELECT count(*) FROM secpolicy.rollup_hour_keys k WHERE k.hour = b_s AND k.kind = 's' AND k.key = ANY (ks))
                  INTO k_a, k_u, k_s;
            ELSE
                SELECT r.attempts, r.failures, r.lockouts, r.distinct_accounts, r.distinct_usernames, r.distinct_sources
                  INTO c_n, c_f, c_l, c_da, c_du, c_ds
                  FROM secpolicy.rollup_daily r WHERE r.day = (b_s AT TIME ZONE 'UTC')::date;
                SELECT (SELECT count(*) FROM secpolicy.rollup_day_keys k WHERE k.day = (b_s AT TIME ZONE 'UTC')::date AND k.kind = 'a' AND k.key = ANY (ka)),
                       (SELECT count(*) FROM secpolicy.rollup_day_keys k WHERE k.day = (b_s AT TIME ZONE 'UTC')::date AND k.kind = 'u' AND k.key = ANY (ku)),
                       (SELECT count(*) FROM secpolicy.rollup_day_keys k WHERE k.day = (b_s AT TIME ZONE 'UTC')::date AND k.kind = 's' AND k.key = ANY (ks))
                  INTO k_a, k_u, k_s;
            END IF;
            v_n := coalesce(c_n, 0) + v_n;
            v_f := coalesce(c_f, 0) + v_f;
            v_l := coalesce(c_l, 0) + v_l;
            v_da := coalesce(c_da, 0) + cardinality(ka) - k_a;
            v_du := coalesce(c_du, 0) + cardinality(ku) - k_u;
            v_ds := coalesce(c_ds, 0) + cardinality(ks) - k_s;
        END IF;
        o_i := o_i || i;
        o_n := o_n || v_n; o_f := o_f || v_f; o_l := o_l || v_l;
        o_da := o_da || v_da; o_du := o_du || v_du; o_ds := o_ds || v_ds;
    END LOOP;

    RETURN QUERY
        SELECT b.s, b.e,
               coalesce(o.n, h.attempts, d.attempts, 0), coalesce(o.f, h.failures, d.failures, 0),
               coalesce(o.da, h.distinct_accounts, d.distinct_accounts, 0),
               coalesce(o.du, h.distinct_usernames, d.distinct_usernames, 0),
               coalesce(o.ds, h.distinct_sources, d.distinct_sources, 0),
               coalesce(o.l, h.lockouts, d.lockouts, 0)
          -- (hows beside starts: hows[u.n] would subscript the array, planned
          -- as a constant, from its first element at each row)
          FROM (SELECT u.n, u.s, coalesce(lead(u.s) OVER (ORDER BY u.n), until) AS e, u.how
                  FROM unnest(starts, hows) WITH ORDINALITY u(s, how, n)) b
          LEFT JOIN unnest(o_i, o_n, o_f, o_l, o_da, o_du, o_ds) o(i, n, f, l, da, du, ds) ON o.i = b.n
          LEFT JOIN secpolicy.rollup_hourly h ON b.how = 'h' AND h.hour = b.s
          LEFT JOIN secpolicy.rollup_daily d ON b.how = 'd' AND d.day = (b.s AT TIME ZONE 'UTC')::date
         ORDER BY b.n;
END
$$;
COMMENT ON FUNCTION secpolicy.failed_login_report(timestamptz, timestamptz, interval) IS
    'Attempts and failures in [since, until) per bucket (calendar arithmetic in the session time zone), empty buckets included; buckets that are UTC hours or days are read from the rollups.';
REVOKE ALL ON FUNCTION secpolicy.failed_login_report(timestamptz, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.failed_login_report(timestamptz, timestamptz, interval)
    TO secpolicy_analyst, secpolicy_admin;

-- Internal (failed_logins_daily): the first and the last failure, or a span
-- that holds them within the same UTC days (from the daily rollups and the
-- tail when the rollups are built).
CREATE FUNCTION secpolicy.failure_span(OUT lo timestamptz, OUT hi timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
    st secpolicy.rollup_state;
    d_lo date;
    d_hi date;
    t_lo timestamptz;
    t_hi timestamptz;
BEGIN
    SELECT * INTO st FROM secpolicy.rollup_state;
    IF st.built THEN
        SELECT min(r.day), max(r.day) INTO d_lo, d_hi FROM secpolicy.rollup_daily r WHERE r.failures > 0;
        SELECT min(t.attempted_at), max(t.attempted_at) INTO t_lo, t_hi
          FROM secpolicy.rollup_tail_all(st) t WHERE NOT t.success;
        lo := least(d_lo::timestamp AT TIME ZONE 'UTC', t_lo);
        hi := greatest((d_hi + 1)::timestamp AT TIME ZONE 'UTC' - interval '1 microsecond', t_hi);
    ELSE
        -- through the time index of each partition
        lo := (SELECT min(a.attempted_at) FROM secpolicy.login_attempts a WHERE NOT a.success);
        hi := (SELECT max(a.attempted_at) FROM secpolicy.login_attempts a WHERE NOT a.success);
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.failure_span() IS
    'Internal: a span that holds every failed attempt, within the UTC days of the first and the last.';
REVOKE ALL ON FUNCTION secpolicy.failure_span() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.failure_span() TO secpolicy_analyst, secpolicy_admin;

CREATE VIEW secpolicy.failed_logins_daily WITH (security_barrier) AS
    -- days of the session's time zone: failed_login_report() with 1-day
    -- buckets over the days that have failures, read from the UTC days of
    -- the rollups when the session's days are UTC days
    SELECT r.bucket_start::date AS day,
           r.failures,
           r.distinct_accounts,
           r.distinct_usernames,
           r.distinct_sources,
           r.lockouts
      FROM (SELECT date_trunc('day', span.lo) AS lo, date_trunc('day', span.hi) + interval '1 day' AS hi
              FROM secpolicy.failure_span() span WHERE span.lo IS NOT NULL) x
      CROSS JOIN LATERAL secpolicy.failed_login_report(x.lo, x.hi, '1 day') r
     WHERE r.failures > 0;
COMMENT ON VIEW secpolicy.failed_logins_daily IS
    'Failures per day (session time zone): how many, on how many accounts and usernames, from how many sources, and lockouts.';

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
