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
    stage text NOT NULL DEFAULT 'password',
    logged_xid xid8 DEFAULT pg_catalog.pg_current_xact_id()
) PARTITION BY RANGE (attempted_at);
COMMENT ON TABLE secpolicy.login_attempts IS
    'Every authentication attempt: who (user_id, or NULL for an unknown username kept as typed), from where, and the outcome.';
-- No CHECK constraint on the parent: every partition must carry the parent's
-- constraints, so a partition restored from a dump of an older version (with
-- that version's constraints) could not be attached, or would refuse the
-- values of a newer one.  Only the extension's own functions write the log.
COMMENT ON COLUMN secpolicy.login_attempts.stage IS
    'What was attempted: password (login), mfa (second factor), change_password, reset (a password-reset request), database (a database login).';
COMMENT ON COLUMN secpolicy.login_attempts.logged_xid IS
    'The transaction that logged the attempt (NULL: logged before 1.1); the rollups count a row once its transaction is visible to a refresh (see rollup_state).';

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
    -- the rows the rollups have not counted yet are found through this index
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (logged_xid)', name || '_xid_idx', part);
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

-- Internal: the flows write (attempts, counters, sessions), so they must run
-- on the primary, in a read-write transaction; elsewhere they raise 25006 with
-- a hint instead of failing deep inside.  Returns true (for DECLARE lists).
CREATE FUNCTION secpolicy.require_writable(flow text) RETURNS boolean
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'secpolicy.% must run on the primary: this server is a standby', flow
            USING ERRCODE = '25006',
                  HINT = 'Connect to the primary (libpq: target_session_attrs=read-write); session_touch() answers on a standby, without extending the session.';
    ELSIF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION 'secpolicy.% writes, and this transaction is read-only', flow
            USING ERRCODE = '25006', HINT = 'Call it in a read-write transaction.';
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.require_writable(text) IS
    'Internal: raise 25006 with a hint when a flow is called on a standby or in a read-only transaction.';
REVOKE ALL ON FUNCTION secpolicy.require_writable(text) FROM PUBLIC;

-- Internal: drop the stage CHECK constraint that partitions made by 1.0 carry
-- (1.1 records more stages).  The upgrade runs it; after a restore of an older
-- dump, record_attempt() and create_attempt_partitions() do.  Returns how many
-- partitions it changed.
CREATE FUNCTION secpolicy.repair_attempt_partitions() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    n integer := 0;
BEGIN
    FOR c IN SELECT co.conrelid::regclass AS rel, co.conname
               FROM pg_inherits i JOIN pg_constraint co ON co.conrelid = i.inhrelid
              WHERE i.inhparent = 'secpolicy.login_attempts'::regclass AND co.contype = 'c'
                AND co.conname = 'login_attempts_stage_check' AND co.coninhcount = 0
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.rel, c.conname);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.repair_attempt_partitions() IS
    'Internal: drop the stage constraint that attempt partitions of version 1.0 carry.';
REVOKE ALL ON FUNCTION secpolicy.repair_attempt_partitions() FROM PUBLIC;

-- Internal: append one attempt.  Inputs are cut to a bounded size, so that a
-- megabyte-long username cannot bloat the log.  A partition restored from a
-- dump of 1.0 still refuses the stages 1.1 added: it is repaired once.  On a
-- distributed installation the row also carries its distribution key (the
-- column account_key, which distribute() adds): the account's, else the one
-- the flow was routed by, else the name's.
CREATE FUNCTION secpolicy.record_attempt(user_id bigint, username text, client_addr inet,
                                         user_agent text, success boolean, outcome text,
                                         stage text DEFAULT 'password', account_key bigint DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
BEGIN
    IF secpolicy.distributed() THEN
        k := coalesce(record_attempt.user_id, record_attempt.account_key,
                      secpolicy.account_key(record_attempt.username));
        INSERT INTO secpolicy.login_attempts AS a
            (user_id, username, client_addr, user_agent, success, outcome, stage, account_key)
        VALUES (record_attempt.user_id, left(record_attempt.username, 256), record_attempt.client_addr,
                left(record_attempt.user_agent, 512), record_attempt.success, record_attempt.outcome,
                record_attempt.stage, k);
        RETURN;
    END IF;
    BEGIN
        INSERT INTO secpolicy.login_attempts AS a
            (user_id, username, client_addr, user_agent, success, outcome, stage)
        VALUES (record_attempt.user_id, left(record_attempt.username, 256), record_attempt.client_addr,
                left(record_attempt.user_agent, 512), record_attempt.success, record_attempt.outcome,
                record_attempt.stage);
        RETURN;
    EXCEPTION WHEN check_violation THEN
        IF secpolicy.repair_attempt_partitions() = 0 THEN
            RAISE;
        END IF;
    END;
    INSERT INTO secpolicy.login_attempts
        (user_id, username, client_addr, user_agent, success, outcome, stage)
    VALUES (record_attempt.user_id, left(record_attempt.username, 256), record_attempt.client_addr,
            left(record_attempt.user_agent, 512), record_attempt.success, record_attempt.outcome,
            record_attempt.stage);
END
$$;
COMMENT ON FUNCTION secpolicy.record_attempt(bigint, text, inet, text, boolean, text, text, bigint) IS
    'Internal: append an attempt to secpolicy.login_attempts (account_key: the distribution key of a distributed installation, when neither the account nor the name gives it).';
REVOKE ALL ON FUNCTION secpolicy.record_attempt(bigint, text, inet, text, boolean, text, text, bigint) FROM PUBLIC;

-- Create the daily partitions from `from_day` to `days_ahead` days after today
-- (UTC).  Rows already sitting in the default partition for such a day are
-- moved into the new partition.
CREATE FUNCTION secpolicy.create_attempt_partitions(days_ahead integer DEFAULT 7,
                                                    from_day date DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' SET client_min_messages = warning
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
    PERFORM secpolicy.repair_attempt_partitions();
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
            IF secpolicy.distributed() THEN
                -- Citus moved the rows to the shards: the local copy goes
                EXECUTE 'SELECT pg_catalog.truncate_local_data_after_distributing_table($1)'
                    USING 'secpolicy.' || quote_ident(name);
            END IF;
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

-- A dump of 1.0 holds daily partitions without the column logged_xid (added
-- by 1.1), which ATTACH PARTITION would refuse: when such a table is created
-- in schema secpolicy (by pg_restore, before its data and its ATTACH), the
-- column is added at once.  Rows restored so get NULL there, which the
-- rollups treat as logged before they existed.
CREATE FUNCTION secpolicy.attempt_partition_columns() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT r.objid::regclass AS rel FROM pg_event_trigger_ddl_commands() r
              WHERE r.command_tag = 'CREATE TABLE' AND r.object_type = 'table' AND r.schema_name = 'secpolicy'
                AND r.object_identity LIKE 'secpolicy.login\_attempts\_p%'
                AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                 WHERE a.attrelid = r.objid AND a.attname = 'logged_xid' AND NOT a.attisdropped)
                AND EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = r.objid AND a.attname = 'stage' AND NOT a.attisdropped) LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN logged_xid xid8 DEFAULT pg_catalog.pg_current_xact_id()', c.rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.attempt_partition_columns() IS
    'Event trigger: a 1.0 daily partition of login_attempts created by a restore gets the column logged_xid.';
REVOKE ALL ON FUNCTION secpolicy.attempt_partition_columns() FROM PUBLIC;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'secpolicy_attempt_partition_columns') THEN
        CREATE EVENT TRIGGER secpolicy_attempt_partition_columns ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
            EXECUTE FUNCTION secpolicy.attempt_partition_columns();
    END IF;
END
$$;
