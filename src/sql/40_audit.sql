-- The audit log: append-only and hash-chained, so that an edited, deleted or
-- re-ordered row breaks the chain that verify_audit_chain() walks.

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
    prev_hash bytea NOT NULL,
    row_hash bytea NOT NULL
);
COMMENT ON TABLE secpolicy.audit_log IS
    'Administrative and security events; row_hash = sha256(prev_hash || audit_row_text(row)).';
COMMENT ON COLUMN secpolicy.audit_log.actor IS 'The database user that connected (SESSION_USER).';
COMMENT ON COLUMN secpolicy.audit_log.actor_role IS 'The role it had switched to with SET ROLE, if any.';
CREATE INDEX audit_log_user_idx ON secpolicy.audit_log (user_id, id);
SELECT pg_catalog.pg_extension_config_dump('secpolicy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.audit_log_id_seq', '');
GRANT SELECT ON secpolicy.audit_log TO secpolicy_admin;

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

-- The chain's lock: one row that every writer updates before it reads the
-- newest audit row.  Only the extension's owner can lock it (an advisory lock,
-- which any role may take, would let anyone stall every audited action), and
-- under REPEATABLE READ a concurrent writer gets a serialization failure
-- instead of forking the chain.  It holds no data, so it is not dumped.
CREATE TABLE secpolicy.audit_head (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    writes bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE secpolicy.audit_head IS
    'Internal: the lock that serialises writers of the audit chain.';
INSERT INTO secpolicy.audit_head DEFAULT VALUES;

-- Internal: append one event, chained to the one committed before it.
CREATE FUNCTION secpolicy.audit(action text, user_id bigint, username text,
                                reason text DEFAULT NULL, details jsonb DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r secpolicy.audit_log;
BEGIN
    UPDATE secpolicy.audit_head SET writes = writes + 1;
    SELECT a.row_hash INTO r.prev_hash FROM secpolicy.audit_log a ORDER BY a.id DESC LIMIT 1;
    r.prev_hash := coalesce(r.prev_hash, pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex'));
    r.id := pg_catalog.nextval('secpolicy.audit_log_id_seq');
    r.logged_at := pg_catalog.clock_timestamp();
    r.actor := SESSION_USER;
    r.actor_role := nullif(pg_catalog.current_setting('role'), 'none');
    r.client_addr := pg_catalog.inet_client_addr();
    r.action := audit.action;
    r.user_id := audit.user_id;
    r.username := audit.username;
    r.reason := audit.reason;
    r.details := audit.details;
    r.row_hash := pg_catalog.sha256(r.prev_hash OPERATOR(pg_catalog.||)
                                    pg_catalog.convert_to(secpolicy.audit_row_text(r), 'UTF8'));
    INSERT INTO secpolicy.audit_log VALUES (r.*);
    RETURN r.id;
END
$$;
COMMENT ON FUNCTION secpolicy.audit(text, bigint, text, text, jsonb) IS
    'Internal: append an event to the hash-chained audit log.';
REVOKE ALL ON FUNCTION secpolicy.audit(text, bigint, text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION secpolicy.audit_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'secpolicy.audit_log is append-only'
        USING ERRCODE = '42501', DETAIL = pg_catalog.format('%s refused.', TG_OP);
END
$$;
COMMENT ON FUNCTION secpolicy.audit_append_only() IS
    'Trigger: refuses UPDATE, DELETE and TRUNCATE on the audit log.';
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
    FOR r IN SELECT * FROM secpolicy.audit_log a ORDER BY a.id LOOP
        rows_checked := rows_checked + 1;
        IF r.prev_hash OPERATOR(pg_catalog.<>) prev
           OR r.row_hash OPERATOR(pg_catalog.<>) pg_catalog.sha256(
                  prev OPERATOR(pg_catalog.||) pg_catalog.convert_to(secpolicy.audit_row_text(r), 'UTF8')) THEN
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
