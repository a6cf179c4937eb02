-- Attack detection and the incident register (with the 72-hour regulator
-- deadline of a personal-data breach).  Listeners: LISTEN secpolicy_incident
-- and LISTEN secpolicy_lockout receive {"incident_id": n} or {"audit_id": n}
-- on every new incident and every lockout, at commit; anyone may LISTEN, so
-- the details stay in the tables, for secpolicy_admin.

CREATE TABLE secpolicy.incidents (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    severity text NOT NULL DEFAULT 'medium' CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'investigating', 'contained', 'closed')),
    title text NOT NULL CHECK (title <> ''),
    description text,
    detected_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    opened_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    opened_by text NOT NULL DEFAULT SESSION_USER,
    affected_user_ids bigint[] NOT NULL DEFAULT '{}',
    affected_usernames text[] NOT NULL DEFAULT '{}',
    source_addrs inet[] NOT NULL DEFAULT '{}',
    personal_data_breach boolean NOT NULL DEFAULT true,
    regulator_notified_at timestamptz,
    subjects_notified_at timestamptz,
    closed_at timestamptz,
    resolution text,
    dedup_key text,
    evidence jsonb,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
COMMENT ON TABLE secpolicy.incidents IS
    'Security incident register.  A personal-data breach must be reported to the regulator within 72 hours of detection.';
COMMENT ON COLUMN secpolicy.incidents.dedup_key IS
    'Detections with the same key update the open incident instead of opening another.';
CREATE UNIQUE INDEX incidents_open_dedup_key ON secpolicy.incidents (dedup_key)
    WHERE status <> 'closed' AND dedup_key IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('secpolicy.incidents', '');
SELECT pg_catalog.pg_extension_config_dump('secpolicy.incidents_id_seq', '');
GRANT SELECT ON secpolicy.incidents TO secpolicy_admin;

-- What analysts and auditors see of the register (they read views only).
CREATE VIEW secpolicy.incident_report WITH (security_barrier) AS
    SELECT i.id, i.kind, i.severity, i.status, i.title, i.description, i.detected_at, i.opened_at,
           i.opened_by, i.affected_user_ids, i.affected_usernames, i.source_addrs,
           i.personal_data_breach, i.detected_at + interval '72 hours' AS regulator_deadline,
           i.regulator_notified_at, i.subjects_notified_at, i.closed_at, i.resolution, i.evidence,
           i.updated_at
      FROM secpolicy.incidents i;
COMMENT ON VIEW secpolicy.incident_report IS
    'The incident register with each incident''s regulator deadline (detected_at + 72 hours).';
GRANT SELECT ON secpolicy.incident_report TO secpolicy_admin, secpolicy_analyst;

-- Internal: audit and announce a new incident.  The functions that open
-- incidents call it (not a trigger: restoring a dump loads incidents and the
-- audit log as they were, and must not write either again).
CREATE FUNCTION secpolicy.incident_opened(incident secpolicy.incidents) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- LISTEN needs no privilege: the payload carries the id only
    PERFORM pg_notify('secpolicy_incident', jsonb_build_object('incident_id', incident.id)::text);
    PERFORM secpolicy.audit('incident_opened', NULL, NULL, NULL,
                            jsonb_build_object('incident', incident.id, 'kind', incident.kind,
                                               'severity', incident.severity));
END
$$;
COMMENT ON FUNCTION secpolicy.incident_opened(secpolicy.incidents) IS
    'Internal: NOTIFY secpolicy_incident and audit a new incident.';
REVOKE ALL ON FUNCTION secpolicy.incident_opened(secpolicy.incidents) FROM PUBLIC;

CREATE FUNCTION secpolicy.open_incident(kind text, severity text, title text, description text DEFAULT NULL,
                                        affected_usernames text[] DEFAULT NULL,
                                        detected_at timestamptz DEFAULT NULL,
                                        personal_data_breach boolean DEFAULT true)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i secpolicy.incidents;
    -- read first (on a distributed installation the accounts are distributed
    -- and the register is a reference table)
    ids bigint[] := coalesce((SELECT array_agg(u.id ORDER BY u.id) FROM secpolicy.users u
                               WHERE lower(u.username) = ANY (SELECT lower(n) FROM unnest(open_incident.affected_usernames) n)),
                             '{}');
BEGIN
    INSERT INTO secpolicy.incidents (kind, severity, title, description, detected_at, affected_usernames,
                                     affected_user_ids, personal_data_breach)
    VALUES (open_incident.kind, open_incident.severity, open_incident.title, open_incident.description,
            coalesce(open_incident.detected_at, now()), coalesce(open_incident.affected_usernames, '{}'),
            ids, coalesce(open_incident.personal_data_breach, true))
    RETURNING * INTO i;
    PERFORM secpolicy.incident_opened(i);
    RETURN i.id;
END
$$;
COMMENT ON FUNCTION secpolicy.open_incident(text, text, text, text, text[], timestamptz, boolean) IS
    'Records a security incident; returns its id.  The regulator deadline is detected_at + 72 hours.';
REVOKE ALL ON FUNCTION secpolicy.open_incident(text, text, text, text, text[], timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.open_incident(text, text, text, text, text[], timestamptz, boolean)
    TO secpolicy_admin;

CREATE FUNCTION secpolicy.update_incident(incident_id bigint, status text DEFAULT NULL,
                                          severity text DEFAULT NULL, note text DEFAULT NULL,
                                          regulator_notified_at timestamptz DEFAULT NULL,
                                          subjects_notified_at timestamptz DEFAULT NULL,
                                          personal_data_breach boolean DEFAULT NULL)
    RETURNS secpolicy.incidents
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i secpolicy.incidents;
    -- the note as it is appended (made here: the update takes values)
    line text := to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC": ') || update_incident.note;
BEGIN
    SELECT * INTO i FROM secpolicy.incidents x WHERE x.id = update_incident.incident_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident % does not exist', update_incident.incident_id USING ERRCODE = '42704';
    END IF;
    IF i.status = 'closed' THEN
        RAISE EXCEPTION 'incident % is closed', i.id USING ERRCODE = '55000';
    END IF;
    IF update_incident.status = 'closed' THEN
        RAISE EXCEPTION 'close incidents with close_incident()' USING ERRCODE = '22023';
    END IF;
    UPDATE secpolicy.incidents x
       SET status = coalesce(update_incident.status, x.status),
           severity = coalesce(update_incident.severity, x.severity),
           description = CASE WHEN line IS NULL THEN x.description
                              ELSE coalesce(x.description || E'\n', '') || line END,
           regulator_notified_at = coalesce(update_incident.regulator_notified_at, x.regulator_notified_at),
           subjects_notified_at = coalesce(update_incident.subjects_notified_at, x.subjects_notified_at),
           personal_data_breach = coalesce(update_incident.personal_data_breach, x.personal_data_breach),
           updated_at = now()
     WHERE x.id = i.id
    RETURNING * INTO i;
    PERFORM secpolicy.audit('incident_updated', NULL, NULL, update_incident.note,
                            jsonb_strip_nulls(jsonb_build_object('incident', i.id, 'status', update_incident.status,
                                'severity', update_incident.severity,
                                'regulator_notified_at', update_incident.regulator_notified_at,
                                'subjects_notified_at', update_incident.subjects_notified_at)));
    RETURN i;
END
$$;
COMMENT ON FUNCTION secpolicy.update_incident(bigint, text, text, text, timestamptz, timestamptz, boolean) IS
    'Moves an open incident along (status, severity, a note) and records when the regulator and the affected people were notified.';
REVOKE ALL ON FUNCTION secpolicy.update_incident(bigint, text, text, text, timestamptz, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.update_incident(bigint, text, text, text, timestamptz, timestamptz, boolean)
    TO secpolicy_admin;

CREATE FUNCTION secpolicy.close_incident(incident_id bigint, resolution text) RETURNS secpolicy.incidents
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    i secpolicy.incidents;
BEGIN
    PERFORM secpolicy.require_reason(close_incident.resolution);
    SELECT * INTO i FROM secpolicy.incidents x WHERE x.id = close_incident.incident_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'incident % does not exist', close_incident.incident_id USING ERRCODE = '42704';
    END IF;
    IF i.status = 'closed' THEN
        RAISE EXCEPTION 'incident % is already closed', i.id USING ERRCODE = '55000';
    END IF;
    UPDATE secpolicy.incidents x
       SET status = 'closed', closed_at = now(), resolution = close_incident.resolution, updated_at = now()
     WHERE x.id = i.id
    RETURNING * INTO i;
    PERFORM secpolicy.audit('incident_closed', NULL, NULL, close_incident.resolution,
                            jsonb_build_object('incident', i.id));
    RETURN i;
END
$$;
COMMENT ON FUNCTION secpolicy.close_incident(bigint, text) IS 'Closes an incident with its resolution.';
REVOKE ALL ON FUNCTION secpolicy.close_incident(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.close_incident(bigint, text) TO secpolicy_admin;

CREATE VIEW secpolicy.incidents_due WITH (security_barrier) AS
    SELECT i.id, i.kind, i.severity, i.status, i.title, i.detected_at,
           i.detected_at + interval '72 hours' AS regulator_deadline,
           i.detected_at + interval '72 hours' - now() AS time_left,
           CASE WHEN now() > i.detected_at + interval '72 hours' THEN 'overdue'
                WHEN now() > i.detected_at + interval '48 hours' THEN 'due_soon'
                ELSE 'pending' END AS deadline_state,
           cardinality(i.affected_user_ids) AS affected_accounts
      FROM secpolicy.incidents i
     WHERE i.personal_data_breach AND i.regulator_notified_at IS NULL;
COMMENT ON VIEW secpolicy.incidents_due IS
    'Personal-data-breach incidents not yet reported to the regulator, with the 72-hour deadline: pending, due_soon (< 24 h left) or overdue.';
GRANT SELECT ON secpolicy.incidents_due TO secpolicy_admin, secpolicy_analyst;

-- The four patterns, over the attempts of [until - detection_window, until).
CREATE FUNCTION secpolicy.attack_patterns(until timestamptz DEFAULT NULL)
    RETURNS TABLE (kind text, subject text, failures bigint, first_at timestamptz, last_at timestamptz,
                   usernames text[], user_ids bigint[], sources inet[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol secpolicy.policy;
    hi timestamptz := coalesce(attack_patterns.until, now());
    lo timestamptz;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    lo := hi - pol.detection_window;
    RETURN QUERY
    WITH w AS (
        SELECT a.attempted_at, a.id, a.user_id, lower(a.username) AS name, a.client_addr, a.success, a.outcome
          FROM secpolicy.login_attempts a
         WHERE a.attempted_at >= lo AND a.attempted_at < hi AND a.username IS NOT NULL
    ), f AS (
        SELECT * FROM w WHERE NOT w.success
    )
    -- password spraying: one source, many usernames
    SELECT 'password_spraying', host(f.client_addr), count(*), min(f.attempted_at), max(f.attempted_at),
           array_agg(DISTINCT f.name), array_remove(array_agg(DISTINCT f.user_id), NULL),
           ARRAY[f.client_addr]
      FROM f WHERE f.client_addr IS NOT NULL
     GROUP BY f.client_addr
    HAVING count(DISTINCT f.name) >= pol.spray_min_accounts
    UNION ALL
    -- credential stuffing: one username, many sources
    SELECT 'credential_stuffing', f.name, count(*), min(f.attempted_at), max(f.attempted_at),
           ARRAY[f.name], array_remove(array_agg(DISTINCT f.user_id), NULL),
           array_agg(DISTINCT f.client_addr) FILTER (WHERE f.client_addr IS NOT NULL)
      FROM f
     GROUP BY f.name
    HAVING count(DISTINCT f.client_addr) >= pol.stuffing_min_sources
    UNION ALL
    -- brute force: many failures on one username
    SELECT 'brute_force', f.name, count(*), min(f.attempted_at), max(f.attempted_at),
           ARRAY[f.name], array_remove(array_agg(DISTINCT f.user_id), NULL),
           coalesce(array_agg(DISTINCT f.client_addr) FILTER (WHERE f.client_addr IS NOT NULL), '{}')
      FROM f
     GROUP BY f.name
    HAVING count(*) >= pol.brute_force_min_failures
    UNION ALL
    -- possible compromise: a complete login right after a run of failures.
    -- Each account's attempts split into runs at every complete login (seg
    -- counts the logins before a row); a run ending in a login is a match.
    SELECT 'compromise_suspected', r.name, r.run, r.run_start, r.ok_at,
           ARRAY[r.name], ARRAY[r.user_id], coalesce(r.sources, '{}')
      FROM (
        SELECT s.user_id, s.seg, max(s.name) AS name,
               count(*) FILTER (WHERE NOT s.success) AS run,
               min(s.attempted_at) FILTER (WHERE NOT s.success) AS run_start,
               array_agg(DISTINCT s.client_addr) FILTER (WHERE NOT s.success AND s.client_addr IS NOT NULL) AS sources,
               max(s.attempted_at) FILTER (WHERE s.outcome = 'ok') AS ok_at
          FROM (SELECT w.*,
                       count(*) FILTER (WHERE w.outcome = 'ok')
                           OVER (PARTITION BY w.user_id ORDER BY w.attempted_at, w.id
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS seg
                  FROM w WHERE w.user_id IS NOT NULL) s
         GROUP BY s.user_id, s.seg
      ) r
     WHERE r.ok_at IS NOT NULL AND r.run >= pol.compromise_min_failures;
END
$$;
COMMENT ON FUNCTION secpolicy.attack_patterns(timestamptz) IS
    'Password spraying, credential stuffing, brute force and possible compromise found in the detection window ending at until (default now).';
REVOKE ALL ON FUNCTION secpolicy.attack_patterns(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.attack_patterns(timestamptz) TO secpolicy_analyst, secpolicy_admin;

-- Record what attack_patterns() finds as incidents, one open incident per
-- pattern and subject (a repeat detection updates it).  For a scheduler.
CREATE FUNCTION secpolicy.detect_attacks(until timestamptz DEFAULT NULL)
    RETURNS TABLE (incident_id bigint, kind text, subject text, new_incident boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    key text;
    existing bigint;
    cur secpolicy.incidents;
    names text[];
    ids bigint[];
    addrs inet[];
    opened secpolicy.incidents;
    severity text;
    breach boolean;
BEGIN
    -- one detection run at a time (maintain() and a manual call may overlap);
    -- a row only the owner can lock, not an advisory lock any role could hold
    PERFORM 1 FROM secpolicy.maintenance_state FOR UPDATE;
    FOR p IN SELECT * FROM secpolicy.attack_patterns(detect_attacks.until) LOOP
        key := p.kind || ':' || p.subject;
        SELECT * INTO cur FROM secpolicy.incidents i
         WHERE i.dedup_key = key AND i.status <> 'closed' FOR UPDATE;
        existing := cur.id;
        IF FOUND THEN
            -- the merged lists are made here, and the row written with them
            -- (an update of a distributed installation's reference table
            -- takes values, not subqueries)
            names := ARRAY(SELECT DISTINCT x FROM unnest(cur.affected_usernames || p.usernames) x ORDER BY 1);
            ids := ARRAY(SELECT DISTINCT x FROM unnest(cur.affected_user_ids || p.user_ids) x ORDER BY 1);
            addrs := ARRAY(SELECT DISTINCT x FROM unnest(cur.source_addrs || p.sources) x ORDER BY 1);
            UPDATE secpolicy.incidents i
               SET evidence = jsonb_build_object('failures', p.failures, 'first_at', p.first_at,
                                                 'last_at', p.last_at, 'sources', p.sources),
                   affected_usernames = names, affected_user_ids = ids, source_addrs = addrs,
                   updated_at = now()
             WHERE i.id = existing;
            PERFORM secpolicy.audit('incident_updated', NULL, NULL, 'repeat detection',
                                    jsonb_build_object('incident', existing, 'failures', p.failures,
                                                       'last_at', p.last_at));
            incident_id := existing;
            new_incident := false;
        ELSE
            -- computed first: Citus deparses a simple CASE of a variable wrongly
            -- when it sends the statement to the nodes of a reference table
            severity := CASE WHEN p.kind IN ('compromise_suspected', 'credential_stuffing') THEN 'high' ELSE 'medium' END;
            breach := p.kind = 'compromise_suspected';
            INSERT INTO secpolicy.incidents (kind, severity, title, description, detected_at,
                                             affected_usernames, affected_user_ids, source_addrs,
                                             personal_data_breach, dedup_key, evidence, opened_by)
            VALUES (p.kind, severity, replace(p.kind, '_', ' ') || ': ' || p.subject,
                    format('%s failures between %s and %s', p.failures, p.first_at, p.last_at),
                    p.last_at, p.usernames, p.user_ids, p.sources, breach, key,
                    jsonb_build_object('failures', p.failures, 'first_at', p.first_at, 'last_at', p.last_at,
                                       'sources', p.sources),
                    'secpolicy.detect_attacks')
            RETURNING * INTO opened;
            PERFORM secpolicy.incident_opened(opened);
            incident_id := opened.id;
            new_incident := true;
        END IF;
        kind := p.kind;
        subject := p.subject;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION secpolicy.detect_attacks(timestamptz) IS
    'Runs attack_patterns() and opens (or updates) one incident per pattern and subject; returns what it found.';
REVOKE ALL ON FUNCTION secpolicy.detect_attacks(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.detect_attacks(timestamptz) TO secpolicy_admin;
