-- The audit log: append-only and hash-chained, so that an edited, deleted or
-- re-ordered row breaks the chain that verify_audit_chain() walks.
--
-- A row is written at once, in the transaction that audits, and chained when
-- that transaction commits (src/audit.c calls audit_seal() just before the
-- commit): the chain's lock is held from then until the commit ends, never
-- while the caller's transaction is open, so an application that holds a
-- transaction open (after five wrong logins, say) stalls nobody.  The chain
-- follows the order of the commits: chain_seq (for rows of 1.0, chained at
-- insert, the id) is a row's place in it.

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
    prev_hash bytea,
    row_hash bytea,
    chain_seq bigint,
    CHECK ((prev_hash IS NULL) = (row_hash IS NULL))
);
COMMENT ON TABLE secpolicy.audit_log IS
    'Administrative and security events; row_hash = sha256(prev_hash || audit_row_text(row)), chained in commit order (chain_seq).';
COMMENT ON COLUMN secpolicy.audit_log.actor IS 'The database user that connected (SESSION_USER).';
COMMENT ON COLUMN secpolicy.audit_log.actor_role IS 'The role it had switched to with SET ROLE, if any.';
COMMENT ON COLUMN secpolicy.audit_log.chain_seq IS
    'The row''s place in the chain (NULL for rows of version 1.0, whose place is their id); the hashes are NULL until the transaction that wrote the row commits.';
CREATE INDEX audit_log_user_idx ON secpolicy.audit_log (user_id, id);
CREATE UNIQUE INDEX audit_log_chain_idx ON secpolicy.audit_log ((coalesce(chain_seq, id))) WHERE row_hash IS NOT NULL;
CREATE INDEX audit_log_unsealed_idx ON secpolicy.audit_log (id) WHERE row_hash IS NULL;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.audit_log_id_seq', '');
GRANT SELECT ON secpolicy.audit_log TO secpolicy_admin;

-- The bytes of a text in UTF-8, as the chain hashes them: in a SQL_ASCII
-- database, bytes that are not valid UTF-8 (a username typed by anyone) are
-- written as \xNN, so that every row can be chained (convert_to() raised
-- 22021 there).  Valid text gives exactly what convert_to(text, 'UTF8') gives.
CREATE FUNCTION secpolicy.utf8_bytes(t text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'secpolicy_utf8_bytes'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.utf8_bytes(text) IS
    'The UTF-8 bytes of a text that the audit chain hashes (invalid bytes of a SQL_ASCII database as \xNN).';
REVOKE ALL ON FUNCTION secpolicy.utf8_bytes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.utf8_bytes(text) TO secpolicy_admin;

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

-- The chain's lock: one row that every sealer updates before it reads the
-- newest chained row.  Only the extension's owner can lock it (an advisory
-- lock, which any role may take, would let anyone stall every audited
-- action), and under REPEATABLE READ a concurrent sealer gets a serialization
-- failure (at commit) instead of forking the chain.  It holds no data, so it
-- is not dumped.
CREATE TABLE secpolicy.audit_head (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    writes bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE secpolicy.audit_head IS
    'Internal: the lock that serialises the sealers of the audit chain.';
INSERT INTO secpolicy.audit_head DEFAULT VALUES;

CREATE FUNCTION secpolicy.audit_pending() RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_audit_pending'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.audit_pending() IS
    'Internal: this transaction wrote audit rows; chain them when it commits.';
REVOKE ALL ON FUNCTION secpolicy.audit_pending() FROM PUBLIC;

-- Internal: append one event; it is chained when the transaction commits.
CREATE FUNCTION secpolicy.audit(action text, user_id bigint, username text,
                                reason text DEFAULT NULL, details jsonb DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO secpolicy.audit_log AS a (logged_at, actor, actor_role, client_addr, action, user_id,
                                          username, reason, details)
    VALUES (pg_catalog.clock_timestamp(), SESSION_USER, nullif(pg_catalog.current_setting('role'), 'none'),
            pg_catalog.inet_client_addr(), audit.action, audit.user_id, audit.username, audit.reason,
            audit.details)
    RETURNING a.id INTO id;
    PERFORM secpolicy.audit_pending();
    RETURN id;
END
$$;
COMMENT ON FUNCTION secpolicy.audit(text, bigint, text, text, jsonb) IS
    'Internal: append an event to the audit log (chained when the transaction commits).';
REVOKE ALL ON FUNCTION secpolicy.audit(text, bigint, text, text, jsonb) FROM PUBLIC;

-- Internal: chain this transaction's audit rows onto the chain, in the order
-- they were written; called by the library just before the transaction
-- commits, under the chain's lock, which the commit then releases.
CREATE FUNCTION secpolicy.audit_seal() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r secpolicy.audit_log;
    prev bytea;
    pos bigint;
    n integer := 0;
BEGIN
    -- rows still unchained are this transaction's: every other committed its own chained
    IF NOT EXISTS (SELECT 1 FROM secpolicy.audit_log a WHERE a.row_hash IS NULL) THEN
        RETURN 0;
    END IF;
    UPDATE secpolicy.audit_head SET writes = writes + 1;
    SELECT a.row_hash, coalesce(a.chain_seq, a.id) INTO prev, pos
      FROM secpolicy.audit_log a WHERE a.row_hash IS NOT NULL
     ORDER BY coalesce(a.chain_seq, a.id) DESC LIMIT 1;
    prev := coalesce(prev, decode(repeat('00', 32), 'hex'));
    pos := coalesce(pos, 0);
    FOR r IN SELECT * FROM secpolicy.audit_log a WHERE a.row_hash IS NULL ORDER BY a.id FOR UPDATE LOOP
        pos := pos + 1;
        r.prev_hash := prev;
        r.row_hash := sha256(prev OPERATOR(pg_catalog.||) secpolicy.utf8_bytes(secpolicy.audit_row_text(r)));
        UPDATE secpolicy.audit_log a SET prev_hash = r.prev_hash, row_hash = r.row_hash, chain_seq = pos
         WHERE a.id = r.id;
        prev := r.row_hash;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION secpolicy.audit_seal() IS
    'Internal: chain the audit rows of the committing transaction (the library calls it just before the commit).';
REVOKE ALL ON FUNCTION secpolicy.audit_seal() FROM PUBLIC;

CREATE FUNCTION secpolicy.audit_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- the one change allowed: chaining a row written by this transaction
    IF TG_OP = 'UPDATE' AND OLD.row_hash IS NULL AND NEW.row_hash IS NOT NULL
       AND (NEW.id, NEW.logged_at, NEW.actor, NEW.actor_role, NEW.client_addr, NEW.action, NEW.user_id,
            NEW.username, NEW.reason, NEW.details)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.logged_at, OLD.actor, OLD.actor_role, OLD.client_addr, OLD.action, OLD.user_id,
            OLD.username, OLD.reason, OLD.details) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'secpolicy.audit_log is append-only'
        USING ERRCODE = '42501', DETAIL = pg_catalog.format('%s refused.', TG_OP);
END
$$;
COMMENT ON FUNCTION secpolicy.audit_append_only() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit log (but the chaining of a new row).';
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
    -- in chain order; rows this transaction has not committed yet are not chained
    FOR r IN SELECT * FROM secpolicy.audit_log a WHERE a.row_hash IS NOT NULL
              ORDER BY coalesce(a.chain_seq, a.id) LOOP
        rows_checked := rows_checked + 1;
        IF r.prev_hash OPERATOR(pg_catalog.<>) prev
           OR r.row_hash OPERATOR(pg_catalog.<>) pg_catalog.sha256(
                  prev OPERATOR(pg_catalog.||) secpolicy.utf8_bytes(secpolicy.audit_row_text(r))) THEN
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
