-- Rollups of the attempt log, so that reports cost what they show rather than
-- what the log holds.  Maintained by refresh_rollups() (run by maintain())
-- from a watermark, exactly once, with no lock that a login waits for.
--
-- The watermark is a snapshot.  Every attempt row carries the transaction
-- that logged it (login_attempts.logged_xid), and a row is counted by the
-- first refresh whose snapshot sees that transaction as finished; rows of
-- transactions still running then (a long transaction, whose rows may carry
-- any id and a time long past) stay in the "tail" and are counted by a later
-- refresh, in the bucket of their own time.  A row is thus counted once,
-- whenever it commits, and nothing waits: the refresh reads the log as of
-- its snapshot and locks only rollup_state, which no login touches.
--
-- What the rollups hold (all in UTC):
--   rollup_hourly        per hour: attempts, failures, lockouts, and exact
--                        distinct accounts, usernames and sources that failed
--   rollup_hour_keys     the distinct keys of the open hours (the hour before
--                        the last refresh's and later), so that the current
--                        hour's distinct counts grow with the tail
--   rollup_outcomes      per hour, stage, outcome and success: attempts
--   rollup_daily         per UTC day: the same as rollup_hourly
--   rollup_day_keys      the distinct keys of the open days (yesterday, today
--                        and later), so that today's distinct counts grow
--                        with the tail without reading the day again
--   rollup_user_windows  per account or unknown username (and form typed):
--                        failures in the 24 hours, 7 and 30 days before the
--                        last refresh, last failure
--   rollup_user_names    per account or unknown username: the forms of
--                        rollup_user_windows summed, as failed_logins_by_user
--                        shows them
--   rollup_source_names  per source address, username and account: failures
--                        in 24 hours and 30 days, first and last failure
--   rollup_sources       per source address: the same summed as the view
--                        failed_logins_by_source shows it (failures, distinct
--                        usernames and accounts, first and last failure)
-- The reports add the tail (rows not counted yet) to the rollups, and move
-- the sliding windows from the last refresh to now with the rows in between,
-- so that they are exact and up to the moment of the query.  A bucket that
-- is not exactly a UTC hour or a UTC day is counted from the log.

CREATE TABLE secpolicy.rollup_state (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    built boolean NOT NULL DEFAULT false,
    snap_xmax xid8,
    snap_xip xid8[],
    self_xid xid8,
    self_max_id bigint,
    refreshed_at timestamptz,
    from_24h timestamptz,
    from_7d timestamptz,
    from_30d timestamptz,
    CHECK (NOT built OR (snap_xmax IS NOT NULL AND snap_xip IS NOT NULL AND refreshed_at IS NOT NULL
                         AND from_24h IS NOT NULL AND from_7d IS NOT NULL AND from_30d IS NOT NULL))
);
COMMENT ON TABLE secpolicy.rollup_state IS
    'Internal: the watermark of the rollups.  A row is counted when logged_xid is NULL, or is the refreshing transaction (self_xid) with id <= self_max_id, or is another transaction below snap_xmax and not in snap_xip.  Not built: nothing is counted (the reports read the log).';
INSERT INTO secpolicy.rollup_state DEFAULT VALUES ON CONFLICT DO NOTHING;

CREATE TABLE secpolicy.rollup_hourly (
    hour timestamptz PRIMARY KEY,
    attempts bigint NOT NULL,
    failures bigint NOT NULL,
    lockouts bigint NOT NULL,
    distinct_accounts bigint NOT NULL,
    distinct_usernames bigint NOT NULL,
    distinct_sources bigint NOT NULL,
    keyed boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE secpolicy.rollup_hourly IS
    'Rollup: per UTC hour, the counted attempts, failures, lockouts and the distinct accounts, usernames (case-folded) and sources of the failures; keyed hours have their distinct keys in rollup_hour_keys.';

CREATE TABLE secpolicy.rollup_hour_keys (
    hour timestamptz NOT NULL,
    kind "char" NOT NULL CHECK (kind IN ('a', 'u', 's')),
    -- (byte order: a report looks up each key of its tail here, and "C"
    -- compares them without the locale)
    key text COLLATE "C" NOT NULL,
    PRIMARY KEY (hour, kind, key)
);
COMMENT ON TABLE secpolicy.rollup_hour_keys IS
    'Rollup: the distinct accounts (a), usernames (u) and sources (s) of the failures of the open UTC hours.';

CREATE TABLE secpolicy.rollup_outcomes (
    hour timestamptz NOT NULL,
    stage text NOT NULL,
    outcome text NOT NULL,
    success boolean NOT NULL,
    attempts bigint NOT NULL,
    PRIMARY KEY (hour, stage, outcome, success)
);
COMMENT ON TABLE secpolicy.rollup_outcomes IS
    'Rollup: per UTC hour, stage, outcome and success, the counted attempts.';

CREATE TABLE secpolicy.rollup_daily (
    day date PRIMARY KEY,
    attempts bigint NOT NULL,
    failures bigint NOT NULL,
    lockouts bigint NOT NULL,
    distinct_accounts bigint NOT NULL,
    distinct_usernames bigint NOT NULL,
    distinct_sources bigint NOT NULL,
    keyed boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE secpolicy.rollup_daily IS
    'Rollup: per UTC day, as rollup_hourly; keyed days have their distinct keys in rollup_day_keys.';

CREATE TABLE secpolicy.rollup_day_keys (
    day date NOT NULL,
    kind "char" NOT NULL CHECK (kind IN ('a', 'u', 's')),
    key text COLLATE "C" NOT NULL,
    PRIMARY KEY (day, kind, key)
);
COMMENT ON TABLE secpolicy.rollup_day_keys IS
    'Rollup: the distinct accounts (a), usernames (u) and sources (s) of the failures of the open UTC days.';

CREATE TABLE secpolicy.rollup_user_windows (
    user_id bigint,
    username_key text,
    username text,
    failures_24h bigint NOT NULL,
    failures_7d bigint NOT NULL,
    failures_30d bigint NOT NULL,
    last_failure_at timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (user_id, username_key, username)
);
COMMENT ON TABLE secpolicy.rollup_user_windows IS
    'Rollup: per account (or unknown username, case-folded) and form typed, the failures since rollup_state.from_24h, from_7d and from_30d, and the last failure.';
-- (a refresh deletes the rows whose windows emptied: found through this)
CREATE INDEX rollup_user_windows_emptied_idx ON secpolicy.rollup_user_windows (user_id) WHERE failures_30d <= 0;

CREATE TABLE secpolicy.rollup_user_names (
    user_id bigint,
    username_key text,
    username_typed text,
    failures_24h bigint NOT NULL,
    failures_7d bigint NOT NULL,
    failures_30d bigint NOT NULL,
    last_failure_at timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (user_id, username_key)
);
COMMENT ON TABLE secpolicy.rollup_user_names IS
    'Rollup: per account (or unknown username, case-folded), rollup_user_windows summed over the forms typed: failures since rollup_state.from_24h, from_7d and from_30d, the last failure, and the first form typed (in sort order).';
-- (failed_logins_by_user, ordered by failures, reads the stored rows in this order)
CREATE INDEX rollup_user_names_failures_idx ON secpolicy.rollup_user_names (failures_30d);

CREATE TABLE secpolicy.rollup_source_names (
    client_addr inet,
    username_key text,
    user_id bigint,
    failures_24h bigint NOT NULL,
    failures_30d bigint NOT NULL,
    first_failure_at timestamptz NOT NULL,
    last_failure_at timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (client_addr, username_key, user_id)
);
COMMENT ON TABLE secpolicy.rollup_source_names IS
    'Rollup: per source address, username (case-folded) and account, the failures since rollup_state.from_24h and from_30d, the first since from_30d and the last.';
-- (a refresh deletes the rows whose windows emptied, and finds those whose
-- first failure left the window, through these)
CREATE INDEX rollup_source_names_emptied_idx ON secpolicy.rollup_source_names (client_addr) WHERE failures_30d <= 0;
CREATE INDEX rollup_source_names_first_idx ON secpolicy.rollup_source_names (first_failure_at);

CREATE TABLE secpolicy.rollup_sources (
    client_addr inet,
    failures_24h bigint NOT NULL,
    failures_30d bigint NOT NULL,
    distinct_usernames_24h bigint NOT NULL,
    distinct_usernames_30d bigint NOT NULL,
    distinct_accounts_30d bigint NOT NULL,
    first_failure_at timestamptz NOT NULL,
    last_failure_at timestamptz NOT NULL,
    UNIQUE NULLS NOT DISTINCT (client_addr)
);
COMMENT ON TABLE secpolicy.rollup_sources IS
    'Rollup: per source address, rollup_source_names summed: failures since rollup_state.from_24h and from_30d, distinct usernames (case-folded) in each, distinct accounts, first and last failure.';
-- (failed_logins_by_source, ordered by failures, reads the stored rows in this order)
CREATE INDEX rollup_sources_failures_idx ON secpolicy.rollup_sources (failures_30d);
-- (failed_logins_by_source finds the stored sources that may spray through this)
CREATE INDEX rollup_sources_names_idx ON secpolicy.rollup_sources (distinct_usernames_30d);

-- Whether an attempt row a is still outside the rollups of watermark w (in
-- the tail) is written out where it is needed, as
--   NOT w.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = w.self_xid
--       THEN a.id > w.self_max_id ELSE a.logged_xid >= w.snap_xmax OR a.logged_xid = ANY (w.snap_xip) END)
-- with, to find such rows through the logged_xid index, the condition
--   a.logged_xid >= w.snap_xmax OR a.logged_xid = ANY (w.snap_xip) OR a.logged_xid = w.self_xid.
-- (A function would not be inlined: functions pin search_path.)

-- Internal: a watermark at the current snapshot (not stored).  The calling
-- transaction counts its own rows logged so far (self_xid, self_max_id): its
-- later rows stay in the tail until the next refresh.
CREATE FUNCTION secpolicy.rollup_watermark() RETURNS secpolicy.rollup_state
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    snap pg_snapshot := pg_current_snapshot();
    w secpolicy.rollup_state;
BEGIN
    w.singleton := true;
    w.built := true;
    w.snap_xmax := pg_snapshot_xmax(snap);
    w.snap_xip := ARRAY(SELECT x FROM pg_snapshot_xip(snap) x ORDER BY x);
    w.self_xid := pg_current_xact_id_if_assigned();
    w.self_max_id := coalesce((SELECT max(a.id) FROM secpolicy.login_attempts a WHERE a.logged_xid = w.self_xid), 0);
    w.refreshed_at := now();
    w.from_24h := now() - interval '24 hours';
    w.from_7d := now() - interval '7 days';
    w.from_30d := now() - interval '30 days';
    RETURN w;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_watermark() IS 'Internal: a rollup watermark at the current snapshot.';
REVOKE ALL ON FUNCTION secpolicy.rollup_watermark() FROM PUBLIC;

-- Internal: the rows that the watermark w has not counted (the tail), through
-- the logged_xid index of every partition, with a plan made once per session
-- (for the reports over the whole log: planned at each call, every partition
-- of the retention would be weighed again).
CREATE FUNCTION secpolicy.rollup_tail_all(w secpolicy.rollup_state) RETURNS SETOF secpolicy.login_attempts
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan
    -- the generic plan must not guess a sequential scan (the tail is small),
    -- nor compile for the rows it guesses
    SET enable_seqscan = off SET jit = off
AS $$
BEGIN
    RETURN QUERY
        SELECT a.* FROM secpolicy.login_attempts a
         WHERE (a.logged_xid >= w.snap_xmax OR a.logged_xid = ANY (w.snap_xip) OR a.logged_xid = w.self_xid)
           AND CASE WHEN a.logged_xid = w.self_xid THEN a.id > w.self_max_id
                    ELSE a.logged_xid >= w.snap_xmax OR a.logged_xid = ANY (w.snap_xip) END;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_tail_all(secpolicy.rollup_state) IS
    'Internal: the attempt rows a built rollup watermark has not counted, in every partition.';
REVOKE ALL ON FUNCTION secpolicy.rollup_tail_all(secpolicy.rollup_state) FROM PUBLIC;

-- Internal: the rows that the watermark w has not counted (the tail) with
-- attempted_at in [lo, hi) (hi infinite: no upper bound).  A short range (the
-- reports of the last day or week) is read through the logged_xid index of its
-- partitions: the rows of the transactions begun after the refresh, then
-- (when there are any) those of the transactions it saw in progress and its
-- own later rows, each a plain condition on values, planned at each call with
-- the bounds known, so that the plan keeps the partitions of the range (a
-- report of the last day reads two, not the whole retention) and its planning
-- costs what the read does (the condition written out as an OR made the
-- planner weigh three index paths per partition).  Planning costs ~75 us per
-- partition kept, and the plan of rollup_tail_all, made once per session,
-- ~18 us per partition of the log at each call: a range of D days up to now
-- is read with the latter when 4 (D + 4) exceeds the partitions of the log
-- (the last 30 days of a 34-day log: 0.8 ms instead of 2.8 ms; of a 93-day
-- log 1.8 ms instead of 3.4 ms; a year's log keeps the planned read).  For a
-- watermark that is not built every row is in the tail.
CREATE FUNCTION secpolicy.rollup_tail(w secpolicy.rollup_state, lo timestamptz, hi timestamptz)
    RETURNS SETOF secpolicy.login_attempts
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_custom_plan SET jit = off
AS $$
BEGIN
    IF NOT coalesce(w.built, false) THEN
        RETURN QUERY SELECT a.* FROM secpolicy.login_attempts a WHERE a.attempted_at >= lo AND (a.attempted_at < hi OR hi = 'infinity');
        RETURN;
    END IF;
    -- (a CASE: an infinite lo must not reach the subtraction)
    IF (CASE WHEN NOT (lo >= now() - interval '32 days') THEN true
             ELSE 4 * (extract(epoch FROM least(hi, now() + interval '1 day') - lo) / 86400 + 4)
                  > (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = 'secpolicy.login_attempts'::regclass) END) THEN
        RETURN QUERY SELECT t.* FROM secpolicy.rollup_tail_all(w) t
                      WHERE t.attempted_at >= lo AND (t.attempted_at < hi OR hi = 'infinity');
        RETURN;
    END IF;
    RETURN QUERY
        SELECT a.* FROM secpolicy.login_attempts a
         WHERE a.logged_xid >= w.snap_xmax AND a.attempted_at >= lo AND (a.attempted_at < hi OR hi = 'infinity')
           AND (w.self_xid IS NULL OR a.logged_xid <> w.self_xid OR a.id > w.self_max_id);
    IF cardinality(w.snap_xip) > 0 OR w.self_xid < w.snap_xmax THEN
        RETURN QUERY
            SELECT a.* FROM secpolicy.login_attempts a
             WHERE a.logged_xid = ANY (w.snap_xip || w.self_xid) AND a.logged_xid < w.snap_xmax
               AND a.attempted_at >= lo AND (a.attempted_at < hi OR hi = 'infinity')
               AND (w.self_xid IS NULL OR a.logged_xid <> w.self_xid OR a.id > w.self_max_id);
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_tail(secpolicy.rollup_state, timestamptz, timestamptz) IS
    'Internal: the attempt rows a rollup watermark has not counted, attempted in [lo, hi).';
REVOKE ALL ON FUNCTION secpolicy.rollup_tail(secpolicy.rollup_state, timestamptz, timestamptz) FROM PUBLIC;

-- Internal: recount the given UTC hours, then the given UTC days, from the
-- rows the stored watermark counts.  A day is keyed (its distinct keys kept)
-- when it is no older than the day before the watermark's.
CREATE FUNCTION secpolicy.rollup_recount(hours timestamptz[], days date[]) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    st secpolicy.rollup_state;
    open_from date;
    open_hour timestamptz;
BEGIN
    SELECT * INTO st FROM secpolicy.rollup_state;
    open_from := (st.refreshed_at AT TIME ZONE 'UTC')::date - 1;
    open_hour := date_bin('1 hour', st.refreshed_at, timestamptz '2000-01-01 00:00+00') - interval '1 hour';
    IF cardinality(hours) > 0 THEN
        DELETE FROM secpolicy.rollup_hour_keys k WHERE k.hour = ANY (hours);
        DELETE FROM secpolicy.rollup_hourly r WHERE r.hour = ANY (hours);
        DELETE FROM secpolicy.rollup_outcomes r WHERE r.hour = ANY (hours);
        INSERT INTO secpolicy.rollup_hour_keys
        SELECT DISTINCT h.h, k.kind, k.key
          FROM unnest(hours) h(h)
          JOIN secpolicy.login_attempts a ON a.attempted_at >= h.h AND a.attempted_at < h.h + interval '1 hour'
          CROSS JOIN LATERAL (VALUES ('a'::"char", a.user_id::text), ('u', lower(a.username)), ('s', a.client_addr::text)) k(kind, key)
         WHERE h.h >= open_hour AND NOT a.success AND k.key IS NOT NULL
           AND NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END));
        INSERT INTO secpolicy.rollup_hourly
        SELECT h.h, x.n, x.f, x.l, x.da, x.du, x.ds, coalesce(h.h >= open_hour, false)
          FROM unnest(hours) h(h),
               LATERAL (SELECT count(*) AS n,
                               count(*) FILTER (WHERE NOT a.success) AS f,
                               count(*) FILTER (WHERE a.outcome = 'lockout') AS l,
                               count(DISTINCT a.user_id) FILTER (WHERE NOT a.success) AS da,
                               count(DISTINCT lower(a.username)) FILTER (WHERE NOT a.success) AS du,
                               count(DISTINCT a.client_addr) FILTER (WHERE NOT a.success) AS ds
                          FROM secpolicy.login_attempts a
                         WHERE a.attempted_at >= h.h AND a.attempted_at < h.h + interval '1 hour'
                           AND NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END))) x
         WHERE x.n > 0;
        INSERT INTO secpolicy.rollup_outcomes
        SELECT h.h, a.stage, a.outcome, a.success, count(*)
          FROM unnest(hours) h(h)
          JOIN secpolicy.login_attempts a ON a.attempted_at >= h.h AND a.attempted_at < h.h + interval '1 hour'
         WHERE NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END))
         GROUP BY 1, 2, 3, 4;
    END IF;
    IF cardinality(days) > 0 THEN
        DELETE FROM secpolicy.rollup_day_keys k WHERE k.day = ANY (days);
        DELETE FROM secpolicy.rollup_daily r WHERE r.day = ANY (days);
        INSERT INTO secpolicy.rollup_day_keys
        SELECT DISTINCT d.d, k.kind, k.key
          FROM unnest(days) d(d)
          JOIN secpolicy.login_attempts a ON a.attempted_at >= d.d::timestamptz AND a.attempted_at < (d.d + 1)::timestamptz
          CROSS JOIN LATERAL (VALUES ('a'::"char", a.user_id::text), ('u', lower(a.username)), ('s', a.client_addr::text)) k(kind, key)
         WHERE d.d >= open_from AND NOT a.success AND k.key IS NOT NULL
           AND NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END));
        INSERT INTO secpolicy.rollup_daily
        SELECT d.d, h.n, h.f, h.l,
               CASE WHEN d.d >= open_from THEN k.a ELSE x.da END,
               CASE WHEN d.d >= open_from THEN k.u ELSE x.du END,
               CASE WHEN d.d >= open_from THEN k.s ELSE x.ds END,
               d.d >= open_from
          FROM unnest(days) d(d),
               LATERAL (SELECT sum(r.attempts)::bigint AS n, sum(r.failures)::bigint AS f, sum(r.lockouts)::bigint AS l
                          FROM secpolicy.rollup_hourly r
                         WHERE r.hour >= d.d::timestamptz AND r.hour < (d.d + 1)::timestamptz) h,
               LATERAL (SELECT count(*) FILTER (WHERE k.kind = 'a') AS a, count(*) FILTER (WHERE k.kind = 'u') AS u,
                               count(*) FILTER (WHERE k.kind = 's') AS s
                          FROM secpolicy.rollup_day_keys k WHERE k.day = d.d AND d.d >= open_from) k,
               LATERAL (SELECT count(DISTINCT a.user_id) AS da, count(DISTINCT lower(a.username)) AS du,
                               count(DISTINCT a.client_addr) AS ds
                          FROM secpolicy.login_attempts a
                         WHERE d.d < open_from AND NOT a.success
                           AND a.attempted_at >= d.d::timestamptz AND a.attempted_at < (d.d + 1)::timestamptz
                           AND NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END))) x
         WHERE h.n > 0;
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_recount(timestamptz[], date[]) IS
    'Internal: recounts the given UTC hours and days of the rollups from the log.';
REVOKE ALL ON FUNCTION secpolicy.rollup_recount(timestamptz[], date[]) FROM PUBLIC;

-- Internal: recount every hour and day that meets [lo, hi) (whole UTC hours
-- and days) and the sliding windows, from the log.
CREATE FUNCTION secpolicy.rollup_recount_range(lo timestamptz, hi timestamptz) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    first_at timestamptz;
    last_at timestamptz;
    hours timestamptz[];
    days date[];
BEGIN
    SELECT min(a.attempted_at), max(a.attempted_at) INTO first_at, last_at
      FROM secpolicy.login_attempts a WHERE a.attempted_at >= lo AND (a.attempted_at < hi OR hi = 'infinity');
    first_at := date_bin('1 hour', first_at, timestamptz '2000-01-01 00:00+00');
    hours := ARRAY(SELECT r.hour FROM secpolicy.rollup_hourly r
                    WHERE r.hour >= date_bin('1 hour', greatest(lo, '1900-01-01'), timestamptz '2000-01-01 00:00+00')
                      AND r.hour < hi
                   UNION
                   SELECT g FROM generate_series(first_at, last_at, interval '1 hour') g);
    days := ARRAY(SELECT r.day FROM secpolicy.rollup_daily r
                   WHERE r.day >= (greatest(lo, '1900-01-01') AT TIME ZONE 'UTC')::date
                     AND r.day::timestamptz < hi
                  UNION
                  SELECT g::date FROM generate_series(date_trunc('day', first_at), last_at, interval '1 day') g);
    PERFORM secpolicy.rollup_recount(hours, days);
    PERFORM secpolicy.rollup_windows_rebuild();
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_recount_range(timestamptz, timestamptz) IS
    'Internal: recounts the rollups of the UTC hours and days that meet [lo, hi), and the sliding windows.';
REVOKE ALL ON FUNCTION secpolicy.rollup_recount_range(timestamptz, timestamptz) FROM PUBLIC;

-- Internal: rollup_user_names of every name (all) or of the names in
-- pg_temp.rollup_moves, summed from rollup_user_windows.
CREATE FUNCTION secpolicy.rollup_user_names_recount("all" boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
BEGIN
    IF "all" THEN
        DELETE FROM secpolicy.rollup_user_names;
        INSERT INTO secpolicy.rollup_user_names
        SELECT w.user_id, w.username_key, min(w.username), sum(w.failures_24h), sum(w.failures_7d),
               sum(w.failures_30d), max(w.last_failure_at)
          FROM secpolicy.rollup_user_windows w
         GROUP BY w.user_id, w.username_key;
        RETURN;
    END IF;
    CREATE TEMP TABLE rollup_moved_names ON COMMIT DROP AS
        SELECT DISTINCT m.user_id, CASE WHEN m.user_id IS NULL THEN lower(m.username) END AS username_key
          FROM pg_temp.rollup_moves m
         WHERE m.user_id IS NOT NULL OR m.username IS NOT NULL;
    DELETE FROM secpolicy.rollup_user_names n
     WHERE n.user_id IN (SELECT m.user_id FROM pg_temp.rollup_moved_names m);
    DELETE FROM secpolicy.rollup_user_names n
     WHERE n.user_id IS NULL AND n.username_key IN (SELECT m.username_key FROM pg_temp.rollup_moved_names m WHERE m.user_id IS NULL);
    INSERT INTO secpolicy.rollup_user_names
    SELECT w.user_id, w.username_key, min(w.username), sum(w.failures_24h), sum(w.failures_7d),
           sum(w.failures_30d), max(w.last_failure_at)
      FROM secpolicy.rollup_user_windows w
     WHERE w.user_id IN (SELECT m.user_id FROM pg_temp.rollup_moved_names m)
     GROUP BY w.user_id, w.username_key
    UNION ALL
    SELECT w.user_id, w.username_key, min(w.username), sum(w.failures_24h), sum(w.failures_7d),
           sum(w.failures_30d), max(w.last_failure_at)
      FROM secpolicy.rollup_user_windows w
     WHERE w.user_id IS NULL AND w.username_key IN (SELECT m.username_key FROM pg_temp.rollup_moved_names m WHERE m.user_id IS NULL)
     GROUP BY w.user_id, w.username_key;
    DROP TABLE pg_temp.rollup_moved_names;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_user_names_recount(boolean) IS
    'Internal: sums rollup_user_windows into rollup_user_names, for every name or those of pg_temp.rollup_moves.';
REVOKE ALL ON FUNCTION secpolicy.rollup_user_names_recount(boolean) FROM PUBLIC;

-- Internal: rollup_sources of every source (all) or of the sources in
-- pg_temp.rollup_moves, summed from rollup_source_names.
CREATE FUNCTION secpolicy.rollup_sources_recount("all" boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
BEGIN
    IF "all" THEN
        DELETE FROM secpolicy.rollup_sources;
        INSERT INTO secpolicy.rollup_sources
        SELECT p.client_addr, sum(p.n24), sum(p.n30), count(p.name) FILTER (WHERE p.n24 > 0), count(p.name),
               count(DISTINCT p.user_id), min(p.first_at), max(p.last_at)
          FROM (SELECT w.client_addr, w.username_key AS name, max(w.user_id) AS user_id,
                       sum(w.failures_24h) AS n24, sum(w.failures_30d) AS n30,
                       min(w.first_failure_at) AS first_at, max(w.last_failure_at) AS last_at
                  FROM secpolicy.rollup_source_names w
                 GROUP BY w.client_addr, w.username_key) p
         GROUP BY p.client_addr;
        RETURN;
    END IF;
    CREATE TEMP TABLE rollup_moved_sources ON COMMIT DROP AS
        SELECT DISTINCT m.client_addr FROM pg_temp.rollup_moves m;
    DELETE FROM secpolicy.rollup_sources s
     WHERE s.client_addr IN (SELECT m.client_addr FROM pg_temp.rollup_moved_sources m);
    DELETE FROM secpolicy.rollup_sources s
     WHERE s.client_addr IS NULL AND EXISTS (SELECT 1 FROM pg_temp.rollup_moved_sources m WHERE m.client_addr IS NULL);
    INSERT INTO secpolicy.rollup_sources
    SELECT p.client_addr, sum(p.n24), sum(p.n30), count(p.name) FILTER (WHERE p.n24 > 0), count(p.name),
           count(DISTINCT p.user_id), min(p.first_at), max(p.last_at)
      FROM (SELECT w.client_addr, w.username_key AS name, max(w.user_id) AS user_id,
                   sum(w.failures_24h) AS n24, sum(w.failures_30d) AS n30,
                   min(w.first_failure_at) AS first_at, max(w.last_failure_at) AS last_at
              FROM secpolicy.rollup_source_names w
             WHERE w.client_addr IN (SELECT m.client_addr FROM pg_temp.rollup_moved_sources m)
             GROUP BY w.client_addr, w.username_key
            UNION ALL
            SELECT w.client_addr, w.username_key, max(w.user_id), sum(w.failures_24h), sum(w.failures_30d),
                   min(w.first_failure_at), max(w.last_failure_at)
              FROM secpolicy.rollup_source_names w
             WHERE w.client_addr IS NULL AND EXISTS (SELECT 1 FROM pg_temp.rollup_moved_sources m WHERE m.client_addr IS NULL)
             GROUP BY w.client_addr, w.username_key) p
     GROUP BY p.client_addr;
    DROP TABLE pg_temp.rollup_moved_sources;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_sources_recount(boolean) IS
    'Internal: sums rollup_source_names into rollup_sources, for every source or those of pg_temp.rollup_moves.';
REVOKE ALL ON FUNCTION secpolicy.rollup_sources_recount(boolean) FROM PUBLIC;

-- Internal: the per-account and per-source windows, anew from the log.
CREATE FUNCTION secpolicy.rollup_windows_rebuild() RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    st secpolicy.rollup_state;
BEGIN
    SELECT * INTO st FROM secpolicy.rollup_state;
    DELETE FROM secpolicy.rollup_user_windows;
    DELETE FROM secpolicy.rollup_source_names;
    DELETE FROM secpolicy.rollup_sources;
    DELETE FROM secpolicy.rollup_user_names;
    IF NOT st.built THEN
        RETURN;
    END IF;
    INSERT INTO secpolicy.rollup_user_windows
    SELECT a.user_id, CASE WHEN a.user_id IS NULL THEN lower(a.username) END, a.username,
           count(*) FILTER (WHERE a.attempted_at >= st.from_24h),
           count(*) FILTER (WHERE a.attempted_at >= st.from_7d),
           count(*), max(a.attempted_at)
      FROM secpolicy.login_attempts a
     WHERE NOT a.success AND a.attempted_at >= st.from_30d AND (a.user_id IS NOT NULL OR a.username IS NOT NULL)
       AND NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END))
     GROUP BY 1, 2, 3;
    INSERT INTO secpolicy.rollup_source_names
    SELECT a.client_addr, lower(a.username), a.user_id,
           count(*) FILTER (WHERE a.attempted_at >= st.from_24h), count(*),
           min(a.attempted_at), max(a.attempted_at)
      FROM secpolicy.login_attempts a
     WHERE NOT a.success AND a.attempted_at >= st.from_30d
       AND NOT (NOT st.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = st.self_xid THEN a.id > st.self_max_id ELSE a.logged_xid >= st.snap_xmax OR a.logged_xid = ANY (st.snap_xip) END))
     GROUP BY 1, 2, 3;
    PERFORM secpolicy.rollup_sources_recount(true);
    PERFORM secpolicy.rollup_user_names_recount(true);
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_windows_rebuild() IS
    'Internal: rebuilds rollup_user_windows and rollup_source_names from the log.';
REVOKE ALL ON FUNCTION secpolicy.rollup_windows_rebuild() FROM PUBLIC;

-- Internal: move the windows from watermark o to the stored one (n): add
-- the rows counted since (pg_temp.rollup_delta), and move the rows counted
-- before whose time lies between the old and the new lower bounds.
CREATE FUNCTION secpolicy.rollup_windows_advance(o secpolicy.rollup_state) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    n secpolicy.rollup_state;
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT * INTO n FROM secpolicy.rollup_state;
    CREATE TEMP TABLE rollup_moves ON COMMIT DROP AS
    WITH r AS (
        SELECT d.user_id, d.username, d.client_addr, d.attempted_at AS at, true AS fresh
          FROM pg_temp.rollup_delta d WHERE NOT d.success
        UNION ALL
        SELECT a.user_id, a.username, a.client_addr, a.attempted_at, false
          FROM secpolicy.login_attempts a
         WHERE NOT a.success
           AND ((a.attempted_at >= o.from_24h AND a.attempted_at < n.from_24h)
                OR (a.attempted_at >= o.from_7d AND a.attempted_at < n.from_7d)
                OR (a.attempted_at >= o.from_30d AND a.attempted_at < n.from_30d))
           AND NOT (NOT o.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = o.self_xid THEN a.id > o.self_max_id ELSE a.logged_xid >= o.snap_xmax OR a.logged_xid = ANY (o.snap_xip) END))
    )
    SELECT r.user_id, r.username, r.client_addr, r.at, r.fresh,
           (r.at >= n.from_24h)::int - CASE WHEN r.fresh THEN 0 ELSE (r.at >= o.from_24h)::int END AS d24,
           (r.at >= n.from_7d)::int - CASE WHEN r.fresh THEN 0 ELSE (r.at >= o.from_7d)::int END AS d7,
           (r.at >= n.from_30d)::int - CASE WHEN r.fresh THEN 0 ELSE (r.at >= o.from_30d)::int END AS d30
      FROM r;

    INSERT INTO secpolicy.rollup_user_windows AS w
    SELECT m.user_id, CASE WHEN m.user_id IS NULL THEN lower(m.username) END, m.username,
           sum(m.d24), sum(m.d7), sum(m.d30),
           coalesce(max(m.at) FILTER (WHERE m.fresh AND m.at >= n.from_30d), '-infinity')
      FROM pg_temp.rollup_moves m
     WHERE m.user_id IS NOT NULL OR m.username IS NOT NULL
     GROUP BY 1, 2, 3
    HAVING max(m.at) FILTER (WHERE m.fresh AND m.at >= n.from_30d) IS NOT NULL
        OR sum(abs(m.d24) + abs(m.d7) + abs(m.d30)) > 0
    ON CONFLICT (user_id, username_key, username) DO UPDATE
       SET failures_24h = w.failures_24h + excluded.failures_24h,
           failures_7d = w.failures_7d + excluded.failures_7d,
           failures_30d = w.failures_30d + excluded.failures_30d,
           last_failure_at = greatest(w.last_failure_at, excluded.last_failure_at);
    DELETE FROM secpolicy.rollup_user_windows w WHERE w.failures_30d <= 0;

    INSERT INTO secpolicy.rollup_source_names AS s
    SELECT m.client_addr, lower(m.username), m.user_id, sum(m.d24), sum(m.d30),
           coalesce(min(m.at) FILTER (WHERE m.fresh AND m.at >= n.from_30d), 'infinity'),
           coalesce(max(m.at) FILTER (WHERE m.fresh AND m.at >= n.from_30d), '-infinity')
      FROM pg_temp.rollup_moves m
     GROUP BY 1, 2, 3
    HAVING max(m.at) FILTER (WHERE m.fresh AND m.at >= n.from_30d) IS NOT NULL
        OR sum(abs(m.d24) + abs(m.d30)) > 0
    ON CONFLICT (client_addr, username_key, user_id) DO UPDATE
       SET failures_24h = s.failures_24h + excluded.failures_24h,
           failures_30d = s.failures_30d + excluded.failures_30d,
           first_failure_at = least(s.first_failure_at, excluded.first_failure_at),
           last_failure_at = greatest(s.last_failure_at, excluded.last_failure_at);
    DELETE FROM secpolicy.rollup_source_names s WHERE s.failures_30d <= 0;
    -- a first failure that left the window: the next one, from the log, by
    -- address through the address index (the NULL address apart), in the
    -- order of attempted_at: first in [from_30d, refreshed_at), bounds given
    -- as values so that the plan keeps only those partitions and reads them
    -- one after the other until a failure is found (a merge of every
    -- partition's first row cost ~4 ms per triple: 11 s at 30 M attempts);
    -- then, for a triple with none there (marked infinity), ahead of the
    -- refresh (a clock ahead).  A triple left with one failure in the
    -- window: its last.
    FOR pass IN 1 .. 2 LOOP
        lo := CASE pass WHEN 1 THEN n.from_30d ELSE n.refreshed_at END;
        hi := CASE pass WHEN 1 THEN n.refreshed_at ELSE 'infinity' END;
        UPDATE secpolicy.rollup_source_names s
           SET first_failure_at = CASE WHEN s.failures_30d = 1 AND pass = 1 THEN s.last_failure_at ELSE
                                   coalesce((SELECT a.attempted_at FROM secpolicy.login_attempts a
                                    WHERE a.client_addr = s.client_addr
                                      AND lower(a.username) IS NOT DISTINCT FROM s.username_key
                                      AND a.user_id IS NOT DISTINCT FROM s.user_id
                                      AND NOT a.success AND a.attempted_at >= lo AND (a.attempted_at < hi OR hi = 'infinity')
                                      AND NOT (NOT n.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = n.self_xid THEN a.id > n.self_max_id ELSE a.logged_xid >= n.snap_xmax OR a.logged_xid = ANY (n.snap_xip) END))
                                    ORDER BY a.attempted_at LIMIT 1),
                                            CASE pass WHEN 1 THEN 'infinity' ELSE s.first_failure_at END) END
         WHERE s.client_addr IS NOT NULL
           AND CASE pass WHEN 1 THEN s.first_failure_at < n.from_30d ELSE s.first_failure_at = 'infinity' END;
        UPDATE secpolicy.rollup_source_names s
           SET first_failure_at = CASE WHEN s.failures_30d = 1 AND pass = 1 THEN s.last_failure_at ELSE
                                   coalesce((SELECT a.attempted_at FROM secpolicy.login_attempts a
                                    WHERE a.client_addr IS NULL
                                      AND lower(a.username) IS NOT DISTINCT FROM s.username_key
                                      AND a.user_id IS NOT DISTINCT FROM s.user_id
                                      AND NOT a.success AND a.attempted_at >= lo AND (a.attempted_at < hi OR hi = 'infinity')
                                      AND NOT (NOT n.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = n.self_xid THEN a.id > n.self_max_id ELSE a.logged_xid >= n.snap_xmax OR a.logged_xid = ANY (n.snap_xip) END))
                                    ORDER BY a.attempted_at LIMIT 1),
                                            CASE pass WHEN 1 THEN 'infinity' ELSE s.first_failure_at END) END
         WHERE s.client_addr IS NULL
           AND CASE pass WHEN 1 THEN s.first_failure_at < n.from_30d ELSE s.first_failure_at = 'infinity' END;
    END LOOP;
    PERFORM secpolicy.rollup_sources_recount(false);
    PERFORM secpolicy.rollup_user_names_recount(false);
    DROP TABLE pg_temp.rollup_moves;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_windows_advance(secpolicy.rollup_state) IS
    'Internal: moves the per-account and per-source windows from the previous watermark to the stored one.';
REVOKE ALL ON FUNCTION secpolicy.rollup_windows_advance(secpolicy.rollup_state) FROM PUBLIC;

-- Count the rows logged since the last refresh (by transactions finished
-- since its snapshot) into the rollups, and move the watermark.
CREATE FUNCTION secpolicy.refresh_rollups(OUT counted_rows bigint, OUT hours_refreshed integer,
                                          OUT days_refreshed integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    o secpolicy.rollup_state;
    n secpolicy.rollup_state;
    hours timestamptz[];
    days date[];
    keyed_days date[];
    keyed_hours timestamptz[];
    open_from date;
BEGIN
    IF secpolicy.distributed() THEN
        -- a distributed attempt log has no single snapshot to count from (each
        -- worker numbers its own transactions): the rollups stay unbuilt and
        -- the reports read the log, in parallel on the workers
        counted_rows := 0;
        hours_refreshed := 0;
        days_refreshed := 0;
        RETURN;
    END IF;
    -- one refresh at a time: a row that only refreshes lock, never a login
    SELECT * INTO o FROM secpolicy.rollup_state FOR UPDATE;
    n := secpolicy.rollup_watermark();
    UPDATE secpolicy.rollup_state s
       SET built = true, snap_xmax = n.snap_xmax, snap_xip = n.snap_xip, self_xid = n.self_xid, self_max_id = n.self_max_id,
           refreshed_at = n.refreshed_at, from_24h = n.from_24h, from_7d = n.from_7d, from_30d = n.from_30d;
    IF NOT o.built THEN
        -- never built (a new install, a restore): everything, from the log
        DELETE FROM secpolicy.rollup_hourly;
        DELETE FROM secpolicy.rollup_hour_keys;
        DELETE FROM secpolicy.rollup_outcomes;
        DELETE FROM secpolicy.rollup_daily;
        DELETE FROM secpolicy.rollup_day_keys;
        PERFORM secpolicy.rollup_recount_range('-infinity', 'infinity');
        SELECT coalesce(sum(r.attempts), 0), count(*) INTO counted_rows, hours_refreshed FROM secpolicy.rollup_hourly r;
        SELECT count(*) INTO days_refreshed FROM secpolicy.rollup_daily;
        RETURN;
    END IF;

    IF to_regclass('pg_temp.rollup_delta') IS NOT NULL THEN
        DROP TABLE pg_temp.rollup_delta;
    END IF;
    CREATE TEMP TABLE rollup_delta ON COMMIT DROP AS
    SELECT a.id, a.attempted_at, a.user_id, a.username, a.client_addr, a.success, a.outcome, a.stage
      FROM secpolicy.login_attempts a
     WHERE (a.logged_xid >= o.snap_xmax OR a.logged_xid = ANY (o.snap_xip) OR a.logged_xid = o.self_xid)
       AND (NOT o.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = o.self_xid THEN a.id > o.self_max_id ELSE a.logged_xid >= o.snap_xmax OR a.logged_xid = ANY (o.snap_xip) END))
       AND NOT (NOT n.built OR (a.logged_xid IS NOT NULL AND CASE WHEN a.logged_xid = n.self_xid THEN a.id > n.self_max_id ELSE a.logged_xid >= n.snap_xmax OR a.logged_xid = ANY (n.snap_xip) END));
    SELECT count(*) INTO counted_rows FROM pg_temp.rollup_delta;

    -- hours: a keyed hour takes the new rows and keys, any other is recounted
    hours := ARRAY(SELECT DISTINCT date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00')
                     FROM pg_temp.rollup_delta d);
    hours_refreshed := cardinality(hours);
    keyed_hours := ARRAY(SELECT r.hour FROM secpolicy.rollup_hourly r WHERE r.hour = ANY (hours) AND r.keyed);
    WITH k AS (
        INSERT INTO secpolicy.rollup_hour_keys
        SELECT DISTINCT date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00'), k.kind, k.key
          FROM pg_temp.rollup_delta d
          CROSS JOIN LATERAL (VALUES ('a'::"char", d.user_id::text), ('u', lower(d.username)), ('s', d.client_addr::text)) k(kind, key)
         WHERE NOT d.success AND k.key IS NOT NULL
           AND date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00') = ANY (keyed_hours)
        ON CONFLICT DO NOTHING
        RETURNING hour, kind
    ), c AS (
        SELECT k.hour, count(*) FILTER (WHERE k.kind = 'a') AS a, count(*) FILTER (WHERE k.kind = 'u') AS u,
               count(*) FILTER (WHERE k.kind = 's') AS s
          FROM k GROUP BY k.hour
    ), x AS (
        SELECT date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00') AS hour, count(*) AS n,
               count(*) FILTER (WHERE NOT d.success) AS f, count(*) FILTER (WHERE d.outcome = 'lockout') AS l
          FROM pg_temp.rollup_delta d
         WHERE date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00') = ANY (keyed_hours)
         GROUP BY 1
    )
    UPDATE secpolicy.rollup_hourly r
       SET attempts = r.attempts + x.n, failures = r.failures + x.f, lockouts = r.lockouts + x.l,
           distinct_accounts = r.distinct_accounts + coalesce(c.a, 0),
           distinct_usernames = r.distinct_usernames + coalesce(c.u, 0),
           distinct_sources = r.distinct_sources + coalesce(c.s, 0)
      FROM x LEFT JOIN c ON c.hour = x.hour
     WHERE r.hour = x.hour;
    INSERT INTO secpolicy.rollup_outcomes AS ro
    SELECT date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00'), d.stage, d.outcome, d.success, count(*)
      FROM pg_temp.rollup_delta d
     WHERE date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00') = ANY (keyed_hours)
     GROUP BY 1, 2, 3, 4
    ON CONFLICT (hour, stage, outcome, success) DO UPDATE SET attempts = ro.attempts + excluded.attempts;
    PERFORM secpolicy.rollup_recount(ARRAY(SELECT x FROM unnest(hours) x EXCEPT SELECT y FROM unnest(keyed_hours) y), '{}');

    -- days: a keyed day takes the new keys, any other is recounted
    days := ARRAY(SELECT DISTINCT (d.attempted_at AT TIME ZONE 'UTC')::date FROM pg_temp.rollup_delta d);
    days_refreshed := cardinality(days);
    keyed_days := ARRAY(SELECT r.day FROM secpolicy.rollup_daily r WHERE r.day = ANY (days) AND r.keyed);
    WITH k AS (
        INSERT INTO secpolicy.rollup_day_keys
        SELECT DISTINCT (d.attempted_at AT TIME ZONE 'UTC')::date, k.kind, k.key
          FROM pg_temp.rollup_delta d
          CROSS JOIN LATERAL (VALUES ('a'::"char", d.user_id::text), ('u', lower(d.username)), ('s', d.client_addr::text)) k(kind, key)
         WHERE NOT d.success AND k.key IS NOT NULL AND (d.attempted_at AT TIME ZONE 'UTC')::date = ANY (keyed_days)
        ON CONFLICT DO NOTHING
        RETURNING day, kind
    ), c AS (
        SELECT k.day, count(*) FILTER (WHERE k.kind = 'a') AS a, count(*) FILTER (WHERE k.kind = 'u') AS u,
               count(*) FILTER (WHERE k.kind = 's') AS s
          FROM k GROUP BY k.day
    ), h AS (
        SELECT (x.hour AT TIME ZONE 'UTC')::date AS day, sum(x.attempts)::bigint AS n,
               sum(x.failures)::bigint AS f, sum(x.lockouts)::bigint AS l
          FROM secpolicy.rollup_hourly x
         WHERE (x.hour AT TIME ZONE 'UTC')::date = ANY (keyed_days)
         GROUP BY 1
    )
    UPDATE secpolicy.rollup_daily r
       SET attempts = h.n, failures = h.f, lockouts = h.l,
           distinct_accounts = r.distinct_accounts + coalesce(c.a, 0),
           distinct_usernames = r.distinct_usernames + coalesce(c.u, 0),
           distinct_sources = r.distinct_sources + coalesce(c.s, 0)
      FROM h LEFT JOIN c ON c.day = h.day
     WHERE r.day = h.day;
    PERFORM secpolicy.rollup_recount('{}', ARRAY(SELECT x FROM unnest(days) x EXCEPT SELECT y FROM unnest(keyed_days) y));

    -- days that are no longer open keep their counts and drop their keys
    open_from := (n.refreshed_at AT TIME ZONE 'UTC')::date - 1;
    DELETE FROM secpolicy.rollup_day_keys k WHERE k.day < open_from;
    UPDATE secpolicy.rollup_daily r SET keyed = false WHERE r.keyed AND r.day < open_from;
    -- so do hours
    DELETE FROM secpolicy.rollup_hour_keys k
     WHERE k.hour < date_bin('1 hour', n.refreshed_at, timestamptz '2000-01-01 00:00+00') - interval '1 hour';
    UPDATE secpolicy.rollup_hourly r SET keyed = false
     WHERE r.keyed AND r.hour < date_bin('1 hour', n.refreshed_at, timestamptz '2000-01-01 00:00+00') - interval '1 hour';

    -- the sliding windows: after a long pause, anew
    IF n.refreshed_at - o.refreshed_at > interval '1 day' THEN
        PERFORM secpolicy.rollup_windows_rebuild();
    ELSE
        PERFORM secpolicy.rollup_windows_advance(o);
    END IF;
    DROP TABLE pg_temp.rollup_delta;
END
$$;
COMMENT ON FUNCTION secpolicy.refresh_rollups() IS
    'Counts the attempts logged since the last refresh into the rollups (exactly once, whenever their transaction commits) and moves the watermark; run by maintain().';
REVOKE ALL ON FUNCTION secpolicy.refresh_rollups() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.refresh_rollups() TO secpolicy_admin;

-- Recount the rollups from the log for every UTC hour and day from since on
-- (after a bug, a restore, rows edited or deleted by hand), and the windows.
CREATE FUNCTION secpolicy.rebuild_rollups(since timestamptz) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    r record;
    result jsonb;
BEGIN
    IF since IS NULL THEN
        RAISE EXCEPTION 'since must not be NULL' USING ERRCODE = '22004',
            HINT = 'Use ''-infinity'' to rebuild everything.';
    END IF;
    -- first count what is new (the watermark moves exactly), then recount
    SELECT * INTO r FROM secpolicy.refresh_rollups();
    PERFORM secpolicy.rollup_recount_range(since, 'infinity');
    result := jsonb_build_object('since', since, 'counted_rows', r.counted_rows,
                                 'hours', (SELECT count(*) FROM secpolicy.rollup_hourly h
                                            WHERE h.hour >= date_bin('1 hour', greatest(since, '1900-01-01'), timestamptz '2000-01-01 00:00+00')),
                                 'days', (SELECT count(*) FROM secpolicy.rollup_daily d
                                           WHERE d.day >= (greatest(since, '1900-01-01') AT TIME ZONE 'UTC')::date));
    PERFORM secpolicy.audit('rollups_rebuilt', NULL, NULL, NULL, result);
    RETURN result;
END
$$;
COMMENT ON FUNCTION secpolicy.rebuild_rollups(timestamptz) IS
    'Recounts the report rollups from the attempt log for every UTC hour and day from since on (''-infinity'': all), and the per-account and per-source windows; audited.';
REVOKE ALL ON FUNCTION secpolicy.rebuild_rollups(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.rebuild_rollups(timestamptz) TO secpolicy_admin;

-- Internal (apply_retention): the rows before dropped_before are gone (whole
-- partitions), some rows of the given hours were deleted, and the addresses
-- in [pseudonymised_from, pseudonymised_to) were cut to their networks.
CREATE FUNCTION secpolicy.rollup_retention(dropped_before timestamptz, deleted_hours timestamptz[],
                                           pseudonymised_from timestamptz, pseudonymised_to timestamptz)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET jit = off
AS $$
DECLARE
    st secpolicy.rollup_state;
    rebuild_windows boolean := false;
BEGIN
    SELECT * INTO st FROM secpolicy.rollup_state FOR UPDATE;
    IF NOT st.built THEN
        RETURN;
    END IF;
    IF dropped_before IS NOT NULL THEN
        DELETE FROM secpolicy.rollup_hourly r WHERE r.hour < dropped_before;
        DELETE FROM secpolicy.rollup_hour_keys r WHERE r.hour < dropped_before;
        DELETE FROM secpolicy.rollup_outcomes r WHERE r.hour < dropped_before;
        DELETE FROM secpolicy.rollup_daily r WHERE r.day::timestamptz < dropped_before;
        DELETE FROM secpolicy.rollup_day_keys r WHERE r.day::timestamptz < dropped_before;
        rebuild_windows := dropped_before > st.from_30d;
    END IF;
    IF cardinality(deleted_hours) > 0 THEN
        PERFORM secpolicy.rollup_recount(deleted_hours,
                                         ARRAY(SELECT DISTINCT (h AT TIME ZONE 'UTC')::date FROM unnest(deleted_hours) h));
        rebuild_windows := rebuild_windows OR (SELECT max(h) FROM unnest(deleted_hours) h) + interval '1 hour' > st.from_30d;
    END IF;
    IF pseudonymised_to IS NOT NULL THEN
        PERFORM secpolicy.rollup_recount(
            ARRAY(SELECT r.hour FROM secpolicy.rollup_hourly r
                   WHERE r.hour >= date_bin('1 hour', greatest(pseudonymised_from, '1900-01-01'), timestamptz '2000-01-01 00:00+00')
                     AND r.hour < pseudonymised_to AND r.failures > 0),
            ARRAY(SELECT r.day FROM secpolicy.rollup_daily r
                   WHERE r.day >= (greatest(pseudonymised_from, '1900-01-01') AT TIME ZONE 'UTC')::date
                     AND r.day::timestamptz < pseudonymised_to AND r.failures > 0));
        rebuild_windows := rebuild_windows OR pseudonymised_to > st.from_30d;
    END IF;
    IF rebuild_windows THEN
        PERFORM secpolicy.rollup_windows_rebuild();
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.rollup_retention(timestamptz, timestamptz[], timestamptz, timestamptz) IS
    'Internal: brings the rollups in line with what apply_retention() dropped, deleted and pseudonymised.';
REVOKE ALL ON FUNCTION secpolicy.rollup_retention(timestamptz, timestamptz[], timestamptz, timestamptz) FROM PUBLIC;

-- How fresh the rollups are, for admins.
CREATE VIEW secpolicy.rollup_status AS
    SELECT s.built, s.refreshed_at, now() - s.refreshed_at AS age,
           (SELECT count(*) FROM secpolicy.rollup_hourly) AS hours,
           (SELECT count(*) FROM secpolicy.rollup_daily) AS days,
           (SELECT min(h.hour) FROM secpolicy.rollup_hourly h) AS first_hour,
           (SELECT max(h.hour) FROM secpolicy.rollup_hourly h) AS last_hour
      FROM secpolicy.rollup_state s;
COMMENT ON VIEW secpolicy.rollup_status IS
    'Whether the report rollups are built, when they were last refreshed, and the hours and days they hold.';
GRANT SELECT ON secpolicy.rollup_status TO secpolicy_admin, secpolicy_analyst;
