-- Retention and housekeeping: one maintain() call to schedule (pg_cron where
-- installed: see schedule_maintenance()).

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
    forget_before timestamptz;
    keys bigint[];
    ledger text[];
    shard record;
    dropped_before timestamptz;
    deleted_hours timestamptz[];
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
                dropped_before := greatest(dropped_before, part.upper_bound);
            END IF;
        END LOOP;
        WITH d AS (DELETE FROM secpolicy.login_attempts_default a WHERE a.attempted_at < cutoff RETURNING a.attempted_at)
        SELECT count(*), array_agg(DISTINCT date_bin('1 hour', d.attempted_at, timestamptz '2000-01-01 00:00+00'))
          INTO deleted_rows, deleted_hours FROM d;
        -- the rollups forget what the log forgot
        PERFORM secpolicy.rollup_retention(dropped_before, deleted_hours, NULL, NULL);
        -- Failure counters below the limit whose last failure is that old (and
        -- at least 90 days old, so that a short retention cannot turn the
        -- limit into a rate) are forgotten: those of unknown names (typed by
        -- people, sometimes a password in the wrong field, or invented by a
        -- sprayer) and, by the same rule, those of accounts, so that no answer
        -- tells the two apart; the guess ledger forgets them too when this
        -- commits.  A name or an account at the limit stays there until a reset.
        IF secpolicy.distributed() THEN
            -- the same, with each ledger entry cleared by the worker that
            -- counts it, one call per shard (a distributed statement may not
            -- return the result of a volatile function)
            forget_before := least(cutoff, now() - interval '90 days');
            WITH d AS (DELETE FROM secpolicy.unknown_user_failures f
                        WHERE f.failed_attempts < pol.max_failed_attempts
                          AND coalesce(f.last_failed_at, f.first_failed_at) < forget_before
                        RETURNING f.account_key, f.username_key)
            SELECT coalesce(array_agg(d.account_key), '{}'), coalesce(array_agg('n:' || d.username_key), '{}')
              INTO keys, ledger FROM d;
            WITH u AS (UPDATE secpolicy.users x SET failed_attempts = 0
                        WHERE x.failed_attempts > 0 AND x.failed_attempts < pol.max_failed_attempts
                          AND coalesce(x.last_failed_at, x.created_at) < forget_before
                        RETURNING x.id)
            SELECT keys || coalesce(array_agg(u.id), '{}'), ledger || coalesce(array_agg('u:' || u.id), '{}')
              INTO keys, ledger FROM u;
            forgotten_counters := cardinality(keys);
            FOR shard IN EXECUTE 'SELECT min(x.k) AS account_key, array_agg(x.l) AS ledger FROM unnest($1, $2) x(k, l)'
                                 ' GROUP BY pg_catalog.get_shard_id_for_distribution_column(''secpolicy.users'', x.k)'
                         USING keys, ledger LOOP
                PERFORM 1 FROM secpolicy.clear_guesses(shard.account_key, shard.ledger);
            END LOOP;
        ELSE
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
            IF pseudonymised_rows > 0 THEN
                -- fewer distinct sources: the rollups of those hours are recounted
                PERFORM secpolicy.rollup_retention(NULL, NULL, done_until, cutoff);
            END IF;
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION secpolicy.apply_retention() IS
    'Drops attempt partitions and forgets failure counters below the limit older than attempt_retention; pseudonymises attempts older than pseudonymise_after.';
REVOKE ALL ON FUNCTION secpolicy.apply_retention() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.apply_retention() TO secpolicy_admin;

-- Everything periodic, in one call: partitions ahead, retention, expired
-- sessions, spent challenges and reset tokens, attack detection, and the
-- disclosure log and encryption worker of protected columns.
CREATE FUNCTION secpolicy.maintain() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb := '{}';
    r record;
    n bigint;
BEGIN
    result := result || jsonb_build_object('partitions_created', secpolicy.create_attempt_partitions(7));
    SELECT * INTO r FROM secpolicy.refresh_rollups();
    result := result || jsonb_build_object('rollup_rows_counted', r.counted_rows);
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
    DELETE FROM secpolicy.reset_decoys d WHERE d.expires_at < now();
    IF secpolicy.distributed() THEN
        -- each worker keeps reset decoys of its own
        result := result || secpolicy.citus_maintain();
    END IF;
    SELECT count(*) FILTER (WHERE d.new_incident) INTO n FROM secpolicy.detect_attacks() d;
    result := result || jsonb_build_object('incidents_opened', n);
    result := result || secpolicy.maintain_protection();
    UPDATE secpolicy.maintenance_state SET last_run_at = now();
    RETURN result;
END
$$;
COMMENT ON FUNCTION secpolicy.maintain() IS
    'Periodic housekeeping (run every few minutes): partitions, report rollups, retention, session expiry, token clean-up, attack detection.';
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
