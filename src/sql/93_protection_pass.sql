-- The pass that encrypts the values a protected column already holds (after
-- protect_column) or reseals them (after reseal_columns): batches run by the
-- background worker (src/protect_worker.c), one per transaction, and the
-- view of their progress.

-- --------------------------------------------------- the encryption pass --

-- Start the background worker that encrypts stored values, unless one runs
-- for this database or nothing is left to do.  Returns whether one runs.
CREATE FUNCTION secpolicy.resume_protection() RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM secpolicy.protected_columns c WHERE c.state <> 'protected') THEN
        RETURN false;
    END IF;
    PERFORM pg_stat_clear_snapshot();
    IF EXISTS (SELECT 1 FROM pg_stat_activity a
                WHERE a.backend_type = 'secpolicy encryption'
                  AND a.datid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())) THEN
        RETURN true;
    END IF;
    RETURN secpolicy.start_protection_worker((SELECT e.extowner FROM pg_extension e WHERE e.extname = 'secpolicy'));
END
$$;
COMMENT ON FUNCTION secpolicy.resume_protection() IS
    'Starts the background worker that encrypts (or reseals) stored values of protected columns, unless one runs or nothing is left; true when one runs. maintain() calls it.';
REVOKE ALL ON FUNCTION secpolicy.resume_protection() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.resume_protection() TO secpolicy_admin;

-- One batch of the pass over a protected column: the rows of the next
-- blocks (about batch_rows rows) whose value is in clear or under an old
-- key are rewritten through the trigger (UPDATE ... SET col = col), and the
-- pass moves on.  A pass that reaches the end of the table checks that no
-- value was left behind (written while the trigger was disabled, or moved
-- by CLUSTER or VACUUM FULL) and then marks the column protected, or starts
-- again.  Each batch commits with its caller: the worker runs one per
-- transaction.  Returns how many values it rewrote.
CREATE FUNCTION secpolicy.protect_batch(tbl regclass, col name, batch_rows integer DEFAULT 10000)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p secpolicy.protected_columns;
    cur text := (SELECT k.key_id FROM secpolicy.key_status() k);
    nblocks bigint;
    per_block float8;
    span bigint;
    n integer;
    left_behind boolean;
BEGIN
    IF tbl IS NULL OR col IS NULL OR batch_rows IS NULL OR batch_rows < 1 THEN
        RAISE EXCEPTION 'protect_batch needs a table, a column and a positive batch size' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO p FROM secpolicy.protected_columns c
     WHERE secpolicy.protected_table(c) = tbl AND c.column_name = col::text FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table % is not protected', col, tbl USING ERRCODE = '42704';
    END IF;
    IF p.state = 'protected' THEN
        RETURN 0;
    END IF;
    IF cur IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = tbl AND t.tgname = 'zz_secpolicy_protect'
                      AND t.tgenabled <> 'D') THEN
        RAISE EXCEPTION 'the trigger zz_secpolicy_protect of % is missing or disabled', tbl USING ERRCODE = '55000',
            HINT = 'ALTER TABLE ... ENABLE TRIGGER zz_secpolicy_protect; the values are encrypted by it.';
    END IF;
    IF p.key_id IS DISTINCT FROM cur THEN
        -- the sealing key changed during the pass: start again under the new one
        p.key_id := cur;
        p.next_block := 0;
    END IF;
    nblocks := pg_relation_size(tbl) / current_setting('block_size')::bigint;
    IF p.next_block >= nblocks THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s t WHERE secpolicy.needs_encryption(t.%I, $1))', tbl, col)
           INTO left_behind USING cur;
        IF left_behind THEN
            UPDATE secpolicy.protected_columns c
               SET key_id = cur, next_block = 0, last_batch_at = now() WHERE c.id = p.id;
        ELSE
            UPDATE secpolicy.protected_columns c
               SET state = 'protected', key_id = cur, next_block = 0, last_batch_at = now(), pass_finished_at = now()
             WHERE c.id = p.id;
            PERFORM secpolicy.audit(CASE p.state WHEN 'encrypting' THEN 'column_encrypted' ELSE 'column_resealed' END,
                                    NULL, NULL, NULL,
                                    jsonb_build_object('table', tbl::text, 'column', col, 'key_id', cur,
                                                       'values_written', p.values_written));
        END IF;
        RETURN 0;
    END IF;
    SELECT CASE WHEN c.relpages > 0 AND c.reltuples > 0 THEN c.reltuples / c.relpages ELSE 50 END
      INTO per_block FROM pg_class c WHERE c.oid = tbl;
    span := greatest(1, ceil(batch_rows / per_block))::bigint;
    PERFORM secpolicy.set_reseal_target(tbl, col);
    EXECUTE format('UPDATE %s t SET %I = t.%I WHERE t.ctid >= $1 AND t.ctid < $2 AND secpolicy.needs_encryption(t.%I, $3)',
                   tbl, col, col, col)
       USING format('(%s,0)', p.next_block)::tid, format('(%s,0)', least(p.next_block + span, 4294967295))::tid, cur;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM secpolicy.set_reseal_target(NULL, NULL);
    UPDATE secpolicy.protected_columns c
       SET key_id = cur, next_block = p.next_block + span, values_written = c.values_written + n,
           last_batch_at = now()
     WHERE c.id = p.id;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.protect_batch(regclass, name, integer) IS
    'Encrypts (or reseals) the stored values of the next batch of rows of a protected column; returns how many it rewrote. The background worker calls it; call it yourself where no worker can run.';
REVOKE ALL ON FUNCTION secpolicy.protect_batch(regclass, name, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.protect_batch(regclass, name, integer) TO secpolicy_admin;

-- Internal: what the worker runs in each of its transactions; false when no
-- column has work left.
CREATE FUNCTION secpolicy.protection_step(batch_rows integer DEFAULT 10000) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p secpolicy.protected_columns;
BEGIN
    SELECT * INTO p FROM secpolicy.protected_columns c
     WHERE c.state <> 'protected' AND secpolicy.protected_table(c) IS NOT NULL
     ORDER BY c.id LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM secpolicy.protect_batch(secpolicy.protected_table(p), p.column_name::name, batch_rows);
    RETURN true;
END
$$;
COMMENT ON FUNCTION secpolicy.protection_step(integer) IS
    'Internal (the background worker): one batch of the first column with work left; false when there is none.';
REVOKE ALL ON FUNCTION secpolicy.protection_step(integer) FROM PUBLIC;

CREATE FUNCTION secpolicy.reseal_columns() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur text := (SELECT k.key_id FROM secpolicy.key_status() k);
    n integer;
BEGIN
    IF cur IS NULL THEN
        RAISE EXCEPTION 'no sealing key is configured' USING ERRCODE = '55000',
            HINT = 'Set secpolicy.key_file to the new key and secpolicy.previous_key_file to the old one.';
    END IF;
    -- the blind index keys: resealed now (the blind indexes stay as they are)
    UPDATE secpolicy.protected_columns c SET index_key = secpolicy.reseal(c.index_key)
     WHERE c.index_key IS NOT NULL AND secpolicy.sealed_key_id(c.index_key) IS DISTINCT FROM cur;
    -- the values: a pass over every column, by the worker
    UPDATE secpolicy.protected_columns c
       SET state = CASE WHEN c.state = 'encrypting' THEN 'encrypting' ELSE 'resealing' END,
           key_id = cur, next_block = 0, values_written = 0, pass_started_at = now(),
           last_batch_at = NULL, pass_finished_at = NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM secpolicy.audit('columns_resealed', NULL, NULL, NULL, jsonb_build_object('key_id', cur, 'columns', n));
    PERFORM secpolicy.resume_protection();
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.reseal_columns() IS
    'Key rotation: re-encrypts every protected column under the current key (secpolicy.key_file), online, in batches, by the background worker; returns how many columns it covers. Keep secpolicy.previous_key_file until protection_status shows them protected.';
REVOKE ALL ON FUNCTION secpolicy.reseal_columns() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.reseal_columns() TO secpolicy_admin;

CREATE VIEW secpolicy.protection_status AS
    SELECT c.table_schema, c.table_name, c.column_name, c.access, c.searchable, c.state, c.key_id,
           coalesce((SELECT t.tgenabled <> 'D' FROM pg_catalog.pg_trigger t
                      WHERE t.tgrelid = secpolicy.protected_table(c) AND t.tgname = 'zz_secpolicy_protect'), false)
               AS trigger_enabled,
           c.next_block AS blocks_done,
           pg_catalog.pg_relation_size(secpolicy.protected_table(c))
               / pg_catalog.current_setting('block_size')::bigint AS blocks_total,
           CASE WHEN c.state = 'protected' THEN 100.0
                ELSE round(100.0 * least(c.next_block, greatest(1, pg_catalog.pg_relation_size(secpolicy.protected_table(c))
                                                                     / pg_catalog.current_setting('block_size')::bigint))
                           / greatest(1, pg_catalog.pg_relation_size(secpolicy.protected_table(c))
                                         / pg_catalog.current_setting('block_size')::bigint), 1) END AS progress_pct,
           c.values_written, c.pass_started_at, c.last_batch_at, c.pass_finished_at, c.protected_at, c.protected_by,
           (SELECT a.pid FROM pg_catalog.pg_stat_activity a
             WHERE a.backend_type = 'secpolicy encryption'
               AND a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
             LIMIT 1) AS worker_pid
      FROM secpolicy.protected_columns c;
COMMENT ON VIEW secpolicy.protection_status IS
    'Per protected column: its access, whether its trigger is enabled, and the progress of the pass that encrypts (or reseals) its stored values.';
GRANT SELECT ON secpolicy.protection_status TO secpolicy_admin, secpolicy_analyst;
