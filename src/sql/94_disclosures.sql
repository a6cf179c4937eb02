-- The record of disclosures: every reveal() of a protected value, allowed or
-- refused (written by src/disclosures.c through record_disclosure(), one
-- row per statement, table, column, outcome and reader, with the row keys).
-- Append-only like the audit log; partitioned by day (UTC) and retained like
-- login_attempts (policy.disclosure_retention).  The view disclosures is for
-- admins and analysts; disclosures_of() answers a data subject's "who has
-- seen my data", incident_affected_subjects() lists whom an incident concerns.

CREATE TABLE secpolicy.disclosure_log (
    id bigserial NOT NULL,
    disclosed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    db_role text NOT NULL,
    login_role text NOT NULL DEFAULT SESSION_USER,
    client_addr inet DEFAULT pg_catalog.inet_client_addr(),
    user_id bigint,
    session_id bigint,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    access text,
    allowed boolean NOT NULL,
    reveals integer NOT NULL,
    row_keys text[] NOT NULL
) PARTITION BY RANGE (disclosed_at);
COMMENT ON TABLE secpolicy.disclosure_log IS
    'Every reveal() of a protected value: one row per statement, table, column, outcome (allowed or refused) and reader, with the keys of the rows revealed.';
COMMENT ON COLUMN secpolicy.disclosure_log.db_role IS 'The database role that called reveal() (CURRENT_USER).';
COMMENT ON COLUMN secpolicy.disclosure_log.login_role IS 'The database user that connected (SESSION_USER).';
COMMENT ON COLUMN secpolicy.disclosure_log.user_id IS
    'The application user of the session proven in the transaction (session_touch), if any.';
COMMENT ON COLUMN secpolicy.disclosure_log.row_keys IS
    'The primary keys (as text) of the rows revealed or refused; NULL elements for values still in clear read without a row key.';

-- Internal: the indexes of one partition (each partition carries its own, so
-- that pg_dump restores the daily partitions, which are not members of the
-- extension, with exactly theirs).  No index of the row keys: a GIN index
-- over them doubled the cost of revealing many rows, for the rare
-- disclosures_of(), which reads the records of one table.
CREATE FUNCTION secpolicy.index_disclosure_partition(part regclass) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text := (SELECT c.relname FROM pg_class c WHERE c.oid = part);
BEGIN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (disclosed_at)', name || '_time_idx', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (user_id, disclosed_at)', name || '_user_idx', part);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (table_name, table_schema, disclosed_at)', name || '_table_idx', part);
END
$$;
COMMENT ON FUNCTION secpolicy.index_disclosure_partition(regclass) IS
    'Internal: create the indexes of a disclosure_log partition.';
REVOKE ALL ON FUNCTION secpolicy.index_disclosure_partition(regclass) FROM PUBLIC;

CREATE TABLE secpolicy.disclosure_log_default PARTITION OF secpolicy.disclosure_log DEFAULT;
-- (the indexes index_disclosure_partition() makes, written out so that an
-- upgrade replays them)
CREATE INDEX disclosure_log_default_time_idx ON secpolicy.disclosure_log_default (disclosed_at);
CREATE INDEX disclosure_log_default_user_idx ON secpolicy.disclosure_log_default (user_id, disclosed_at);
CREATE INDEX disclosure_log_default_table_idx ON secpolicy.disclosure_log_default (table_name, table_schema, disclosed_at);
SELECT pg_catalog.pg_extension_config_dump('secpolicy.disclosure_log_default', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.disclosure_log_id_seq', '');
GRANT SELECT ON secpolicy.disclosure_log TO secpolicy_admin;

CREATE FUNCTION secpolicy.disclosure_log_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'secpolicy.disclosure_log is append-only'
        USING ERRCODE = '42501', DETAIL = pg_catalog.format('%s refused.', TG_OP);
END
$$;
COMMENT ON FUNCTION secpolicy.disclosure_log_append_only() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the disclosure log (retention drops whole partitions).';
REVOKE ALL ON FUNCTION secpolicy.disclosure_log_append_only() FROM PUBLIC;
CREATE TRIGGER disclosure_log_append_only BEFORE UPDATE OR DELETE ON secpolicy.disclosure_log
    FOR EACH ROW EXECUTE FUNCTION secpolicy.disclosure_log_append_only();
CREATE TRIGGER disclosure_log_no_truncate BEFORE TRUNCATE ON secpolicy.disclosure_log
    FOR EACH STATEMENT EXECUTE FUNCTION secpolicy.disclosure_log_append_only();

-- Internal: append the reveals of one statement, table, column, outcome and
-- reader (called by the C code when the statement ends).
CREATE FUNCTION secpolicy.record_disclosure(db_role text, user_id bigint, session_id bigint, table_schema text,
                                            table_name text, column_name text, allowed boolean, row_keys text[],
                                            disclosed_at timestamptz)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO secpolicy.disclosure_log (disclosed_at, db_role, user_id, session_id, table_schema, table_name,
                                          column_name, access, allowed, reveals, row_keys)
    VALUES ($9, $1, $2, $3, $4, $5, $6,
            (SELECT c.access FROM secpolicy.protected_columns c
              WHERE c.table_schema = $4 AND c.table_name = $5 AND c.column_name = $6),
            $7, pg_catalog.cardinality($8), $8);
$$;
COMMENT ON FUNCTION secpolicy.record_disclosure(text, bigint, bigint, text, text, text, boolean, text[], timestamptz) IS
    'Internal: append the reveals of a statement to secpolicy.disclosure_log.';
REVOKE ALL ON FUNCTION secpolicy.record_disclosure(text, bigint, bigint, text, text, text, boolean, text[], timestamptz)
    FROM PUBLIC;

-- Create the daily partitions from `from_day` to `days_ahead` days after
-- today (UTC); rows already in the default partition for such a day move in.
CREATE FUNCTION secpolicy.create_disclosure_partitions(days_ahead integer DEFAULT 7, from_day date DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' SET session_replication_role = 'replica'
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
        name := 'disclosure_log_p' || pg_catalog.to_char(d, 'YYYYMMDD');
        IF pg_catalog.to_regclass('secpolicy.' || name) IS NULL THEN
            LOCK TABLE secpolicy.disclosure_log_default IN SHARE ROW EXCLUSIVE MODE;
            lo := (d::timestamp AT TIME ZONE 'UTC');
            hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
            EXECUTE pg_catalog.format(
                'CREATE TABLE secpolicy.%I (LIKE secpolicy.disclosure_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            PERFORM secpolicy.index_disclosure_partition(('secpolicy.' || quote_ident(name))::regclass);
            -- (the move is no edit of the log: the append-only trigger is off for it)
            EXECUTE pg_catalog.format(
                'WITH moved AS (DELETE FROM secpolicy.disclosure_log_default WHERE disclosed_at >= %L AND disclosed_at < %L RETURNING *)'
                ' INSERT INTO secpolicy.%I SELECT * FROM moved', lo, hi, name);
            EXECUTE pg_catalog.format(
                'ALTER TABLE secpolicy.disclosure_log ATTACH PARTITION secpolicy.%I FOR VALUES FROM (%L) TO (%L)',
                name, lo, hi);
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION secpolicy.create_disclosure_partitions(integer, date) IS
    'Creates the daily partitions of disclosure_log up to days_ahead days from today (UTC); returns how many it created.';
REVOKE ALL ON FUNCTION secpolicy.create_disclosure_partitions(integer, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.create_disclosure_partitions(integer, date) TO secpolicy_admin;

-- Drop the daily partitions that lie wholly before now - disclosure_retention
-- (each drop is O(1)) and such rows of the default partition.
CREATE FUNCTION secpolicy.apply_disclosure_retention(OUT dropped_partitions integer, OUT deleted_rows bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' SET session_replication_role = 'replica'
AS $$
DECLARE
    keep interval := (SELECT p.disclosure_retention FROM secpolicy.policy p);
    cutoff timestamptz;
    part record;
BEGIN
    dropped_partitions := 0;
    deleted_rows := 0;
    IF keep IS NULL THEN
        RETURN;
    END IF;
    cutoff := now() - keep;
    FOR part IN
        SELECT c.oid::regclass AS rel,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'secpolicy.disclosure_log'::regclass
           AND c.oid <> 'secpolicy.disclosure_log_default'::regclass
    LOOP
        IF part.upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped_partitions := dropped_partitions + 1;
        END IF;
    END LOOP;
    WITH d AS (DELETE FROM secpolicy.disclosure_log_default l WHERE l.disclosed_at < cutoff RETURNING 1)
    SELECT count(*) INTO deleted_rows FROM d;
END
$$;
COMMENT ON FUNCTION secpolicy.apply_disclosure_retention() IS
    'Drops the disclosure_log partitions (and default-partition rows) older than policy.disclosure_retention.';
REVOKE ALL ON FUNCTION secpolicy.apply_disclosure_retention() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.apply_disclosure_retention() TO secpolicy_admin;

-- Internal, for maintain(): partitions ahead, retention, and the worker of
-- protected columns that still have stored values to encrypt (after a
-- crash, a cancel or a restart).
CREATE FUNCTION secpolicy.maintain_protection() RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM secpolicy.apply_disclosure_retention();
    RETURN jsonb_build_object('disclosure_partitions_created', secpolicy.create_disclosure_partitions(7),
                              'disclosure_partitions_dropped', r.dropped_partitions,
                              'disclosure_rows_deleted', r.deleted_rows,
                              'protection_worker', secpolicy.resume_protection());
END
$$;
COMMENT ON FUNCTION secpolicy.maintain_protection() IS
    'Internal (maintain): disclosure partitions and retention; resumes the encryption of stored values.';
REVOKE ALL ON FUNCTION secpolicy.maintain_protection() FROM PUBLIC;

CREATE VIEW secpolicy.disclosures WITH (security_barrier) AS
    SELECT d.id, d.disclosed_at, d.db_role, d.login_role, d.client_addr, d.user_id, u.username, d.session_id,
           d.table_schema, d.table_name, d.column_name, d.access, d.allowed, d.reveals, d.row_keys
      FROM secpolicy.disclosure_log d
      LEFT JOIN secpolicy.users u ON u.id = d.user_id;
COMMENT ON VIEW secpolicy.disclosures IS
    'Every reveal() of protected values, allowed or refused: one row per statement, table, column, outcome and reader, with the row keys.';
GRANT SELECT ON secpolicy.disclosures TO secpolicy_admin, secpolicy_analyst;

CREATE FUNCTION secpolicy.disclosures_of(tbl regclass, row_key text)
    RETURNS TABLE (disclosed_at timestamptz, column_name text, access text, allowed boolean, db_role text,
                   login_role text, user_id bigint, username text, session_id bigint, client_addr inet)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.disclosed_at, d.column_name, d.access, d.allowed, d.db_role, d.login_role, d.user_id, u.username,
           d.session_id, d.client_addr
      FROM secpolicy.disclosure_log d
      JOIN pg_catalog.pg_class c ON c.oid = $1
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN secpolicy.users u ON u.id = d.user_id
     WHERE d.row_keys @> ARRAY[$2]
       AND d.table_schema = n.nspname::text AND d.table_name = c.relname::text
     ORDER BY d.disclosed_at, d.id;
$$;
COMMENT ON FUNCTION secpolicy.disclosures_of(regclass, text) IS
    'Who was shown (or refused) the protected values of one row, and when: a data subject''s "who has seen my data" (GDPR article 15). row_key is the primary key as text.';
REVOKE ALL ON FUNCTION secpolicy.disclosures_of(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.disclosures_of(regclass, text) TO secpolicy_admin, secpolicy_analyst;

-- The data subjects an incident concerns: rows whose protected values were
-- revealed (allowed) within the incident's window to an account the
-- incident names (affected_user_ids), to a session opened from one of its
-- source addresses, or to a database role it names (affected_usernames).
-- The window runs from `since` (by default the first evidence of an attack
-- detection, else detected_at) to `until` (by default closed_at, else open).
CREATE FUNCTION secpolicy.incident_affected_subjects(incident_id bigint, since timestamptz DEFAULT NULL,
                                                     until timestamptz DEFAULT NULL)
    RETURNS TABLE (table_schema text, table_name text, row_key text, columns text[], reveals bigint,
                   first_disclosed_at timestamptz, last_disclosed_at timestamptz, user_ids bigint[],
                   db_roles text[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i secpolicy.incidents;
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT * INTO i FROM secpolicy.incidents x WHERE x.id = incident_affected_subjects.incident_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident % does not exist', incident_affected_subjects.incident_id USING ERRCODE = '42704';
    END IF;
    lo := coalesce(incident_affected_subjects.since, (i.evidence ->> 'first_at')::timestamptz, i.detected_at);
    hi := coalesce(incident_affected_subjects.until, i.closed_at, 'infinity');
    RETURN QUERY
    SELECT d.table_schema, d.table_name, k.row_key, array_agg(DISTINCT d.column_name ORDER BY d.column_name),
           count(*), min(d.disclosed_at), max(d.disclosed_at),
           array_remove(array_agg(DISTINCT d.user_id ORDER BY d.user_id), NULL),
           array_agg(DISTINCT d.db_role ORDER BY d.db_role)
      FROM secpolicy.disclosure_log d
     CROSS JOIN LATERAL unnest(d.row_keys) k(row_key)
     WHERE d.allowed AND d.disclosed_at >= lo AND d.disclosed_at <= hi AND k.row_key IS NOT NULL
       AND (d.user_id = ANY (i.affected_user_ids)
            OR d.db_role = ANY (i.affected_usernames) OR d.login_role = ANY (i.affected_usernames)
            OR EXISTS (SELECT 1 FROM secpolicy.sessions s
                        WHERE s.user_id = d.user_id AND s.id = d.session_id
                          AND s.client_addr <<= ANY (i.source_addrs)))
     GROUP BY d.table_schema, d.table_name, k.row_key
     ORDER BY d.table_schema, d.table_name, k.row_key;
END
$$;
COMMENT ON FUNCTION secpolicy.incident_affected_subjects(bigint, timestamptz, timestamptz) IS
    'The data subjects (table and row key) whose protected values were revealed, within the incident''s window, to the accounts, sessions (by source address) or database roles it names.';
REVOKE ALL ON FUNCTION secpolicy.incident_affected_subjects(bigint, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.incident_affected_subjects(bigint, timestamptz, timestamptz)
    TO secpolicy_admin, secpolicy_analyst;
