-- pgTAP: who may read protected values (issue 11; reveal() in src/columns.c,
-- the record in src/disclosures.c and src/sql/94_disclosures.sql).
-- reveal() returns the plaintext only when the session proven in the
-- transaction (session_touch) holds the column's access (has_access), or the
-- database role is, or is a member of, a role given it by grant_reveal() (a
-- superuser is not implied); otherwise NULL, never an error, so SELECT *
-- through a revealed view keeps working with NULLs.  Every reveal, allowed or
-- refused, is recorded: one disclosure_log row per statement, table, column,
-- outcome and reader, with the row keys, the role, the user and the session.
-- A value bound to another row (given its row key) or altered fails with
-- XX001 for a reader who may see it; a refused reader gets NULL.  A
-- read-only transaction cannot record, so reveal() raises 25006 there.
-- create_reveal_view() makes a security_invoker view that follows later
-- protect_column/unprotect_column.  grant_reveal/revoke_reveal are audited
-- and carry EXECUTE on reveal().  disclosures_of() answers for one row;
-- incident_affected_subjects() lists the rows revealed to the accounts,
-- sessions (by address) and roles an incident names, within its window.
-- The log is append-only (42501), partitioned by day and retained by
-- policy.disclosure_retention (timestamps moved, not waited for).
BEGIN;
\ir lib/helpers.psql
SELECT plan(65);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false;
SET LOCAL TimeZone = 'UTC';

-- run a query as a role: its first value as text, or 'ERROR <SQLSTATE>'
CREATE FUNCTION pg_temp.value_as(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    BEGIN
        EXECUTE q INTO v;
    EXCEPTION WHEN OTHERS THEN
        v := 'ERROR ' || SQLSTATE;
    END;
    RESET ROLE;
    RETURN v;
END
$$;
-- every batch of a column until it is protected
CREATE FUNCTION pg_temp.encrypt_all(t regclass, c name) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        PERFORM secpolicy.protect_batch(t, c);
        EXIT WHEN (SELECT s.state FROM secpolicy.protection_status s
                    WHERE format('%I.%I', s.table_schema, s.table_name)::regclass = t AND s.column_name = c::text) = 'protected';
    END LOOP;
END
$$;
-- prove a user's session in this transaction (NULL forgets)
CREATE FUNCTION pg_temp.as_session(token text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF token IS NULL THEN
        PERFORM secpolicy.set_current_session(NULL, NULL);
        RETURN 'none';
    END IF;
    RETURN (secpolicy.session_touch(token)).status;
END
$$;
-- the newest disclosure_log row of a column, as text
CREATE FUNCTION pg_temp.last_record(col text) RETURNS text LANGUAGE sql AS $$
    SELECT format('%s|%s|%s|%s|%s', db_role, allowed, coalesce(user_id::text, '-'), reveals,
                  ARRAY(SELECT k FROM unnest(row_keys) k ORDER BY k))
      FROM secpolicy.disclosure_log WHERE column_name = col ORDER BY id DESC LIMIT 1
$$;

CREATE SCHEMA regress_rv;
CREATE TABLE regress_rv.patients (id integer PRIMARY KEY, name text, diagnosis text, email text);
INSERT INTO regress_rv.patients VALUES (1, 'Ada', 'flu', 'ada@example.com'), (2, 'Bo', 'cold', 'bo@example.com'),
                                       (3, 'Cy', NULL, 'cy@example.com');
SELECT secpolicy.protect_column('regress_rv.patients', 'diagnosis', 'medical.read') IS NOT NULL AS protected \gset
SELECT secpolicy.protect_column('regress_rv.patients', 'email', 'patients.contact', true) IS NOT NULL AS protected \gset
SELECT pg_temp.encrypt_all('regress_rv.patients', 'diagnosis'), pg_temp.encrypt_all('regress_rv.patients', 'email');

CREATE ROLE regress_rv_app IN ROLE secpolicy_app;
CREATE ROLE regress_rv_clerk;
CREATE ROLE regress_rv_member IN ROLE regress_rv_clerk;
CREATE ROLE regress_rv_outsider;
GRANT USAGE ON SCHEMA regress_rv TO regress_rv_app, regress_rv_clerk, regress_rv_outsider;
GRANT SELECT ON regress_rv.patients TO regress_rv_app, regress_rv_clerk;

SELECT secpolicy.create_user('regress_rv_doc', 'Quartz-Lantern-47!') AS doc \gset
SELECT secpolicy.create_user('regress_rv_nurse', 'Quartz-Lantern-47!') AS nurse \gset
SELECT secpolicy.grant_access('regress_rv_doc', 'medical.read', 'doctor');
SELECT session_token AS doc_tok FROM secpolicy.login('regress_rv_doc', 'Quartz-Lantern-47!', '203.0.113.5') \gset
SELECT session_token AS nurse_tok FROM secpolicy.login('regress_rv_nurse', 'Quartz-Lantern-47!', '198.51.100.7') \gset
SELECT id AS doc_sid FROM secpolicy.sessions WHERE user_id = :doc \gset

-- ------------------------------------------------ the application's reads --
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT secpolicy.reveal('regress_rv.patients', 'diagnosis', diagnosis) FROM regress_rv.patients WHERE id = 1$$),
          NULL, 'no session proven: NULL');
SELECT is(pg_temp.last_record('diagnosis'), 'regress_rv_app|f|-|1|{1}', '... and the refusal is recorded, with the row key');
SELECT is(pg_temp.as_session(:'doc_tok'), 'active', 'the doctor''s session is proven in this transaction');
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT secpolicy.reveal('regress_rv.patients', 'diagnosis', diagnosis) FROM regress_rv.patients WHERE id = 1$$),
          'flu', 'her session holds medical.read: the plaintext');
SELECT is(pg_temp.last_record('diagnosis'), format('regress_rv_app|t|%s|1|{1}', :doc), '... recorded as allowed, with her user id');
SELECT is((SELECT session_id FROM secpolicy.disclosure_log ORDER BY id DESC LIMIT 1), :doc_sid::bigint, '... and her session');
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email) FROM regress_rv.patients WHERE id = 1$$),
          NULL, 'another access (patients.contact): NULL');
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT string_agg(coalesce(secpolicy.reveal('regress_rv.patients', 'diagnosis', diagnosis, id::text), '-'), ',' ORDER BY id) FROM regress_rv.patients$$),
          'flu,cold,-', 'three rows, one statement (NULL stays NULL)');
SELECT is(pg_temp.last_record('diagnosis'), format('regress_rv_app|t|%s|2|{1,2}', :doc),
          'one record for the statement, with both row keys (NULL values are not disclosures)');
SELECT is(pg_temp.as_session(:'nurse_tok'), 'active', 'now the nurse''s session');
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT secpolicy.reveal('regress_rv.patients', 'diagnosis', diagnosis) FROM regress_rv.patients WHERE id = 2$$),
          NULL, 'she does not hold medical.read: NULL');
SELECT is(pg_temp.last_record('diagnosis'), format('regress_rv_app|f|%s|1|{2}', :nurse), '... recorded as refused, with her user id');
SELECT is(pg_temp.as_session(NULL), 'none', 'no session again');

-- ------------------------------------------------ database roles ---------
SELECT is(secpolicy.grant_reveal('regress_rv_clerk', 'patients.contact', 'front desk'), true, 'grant_reveal(clerk, patients.contact)');
SELECT is(secpolicy.grant_reveal('regress_rv_clerk', 'patients.contact'), false, '... again: false');
SELECT is((SELECT reason FROM secpolicy.audit_log WHERE action = 'reveal_granted' AND details ->> 'role' = 'regress_rv_clerk'),
          'front desk', 'grant_reveal is audited');
SELECT ok(has_function_privilege('regress_rv_clerk', 'secpolicy.reveal(regclass, name, text, text)', 'EXECUTE'),
          'the clerk may now call reveal()');
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email) FROM regress_rv.patients WHERE id = 2$$),
          'bo@example.com', 'the clerk role reveals patients.contact');
SELECT is(pg_temp.value_as('regress_rv_member', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email) FROM regress_rv.patients WHERE id = 2$$),
          'bo@example.com', 'so does a member of it');
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT secpolicy.reveal('regress_rv.patients', 'diagnosis', diagnosis) FROM regress_rv.patients WHERE id = 2$$),
          NULL, '... not medical.read');
SELECT is(secpolicy.reveal('regress_rv.patients', 'email', (SELECT email FROM regress_rv.patients WHERE id = 2)), NULL,
          'a superuser is not implied (NULL)');
SELECT is(pg_temp.value_as('regress_rv_outsider', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', 'x')$$), 'ERROR 42501',
          'a role without EXECUTE on reveal(): 42501');
SELECT is(secpolicy.revoke_reveal('regress_rv_clerk', 'patients.contact', 'moved'), true, 'revoke_reveal');
SELECT is(secpolicy.revoke_reveal('regress_rv_clerk', 'patients.contact'), false, '... again: false');
SELECT ok(NOT has_function_privilege('regress_rv_clerk', 'secpolicy.reveal(regclass, name, text, text)', 'EXECUTE'),
          'the clerk''s EXECUTE on reveal() went with its last grant');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'reveal_revoked'), 1::bigint, 'revoke_reveal is audited');
SELECT secpolicy.grant_reveal('regress_rv_clerk', 'patients.contact');

-- ---------------------------------------------------------- bad input ---
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email, '3') FROM regress_rv.patients WHERE id = 2$$),
          'ERROR XX001', 'given another row''s key: XX001');
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT secpolicy.reveal('regress_rv.patients', 'name', name) FROM regress_rv.patients WHERE id = 2$$),
          'ERROR 42704', 'a column that is not protected: 42704');
SELECT is(secpolicy.reveal('regress_rv.patients', 'email', NULL), NULL, 'NULL reveals as NULL');
SELECT throws_ok($$SELECT secpolicy.reveal(NULL, 'email', 'x')$$, '22004', NULL, 'a NULL table: 22004');
SELECT is(pg_temp.sqlstate_of($$SET LOCAL transaction_read_only = on;
                                SELECT secpolicy.reveal('regress_rv.patients', 'email', email) FROM regress_rv.patients$$),
          '25006', 'a read-only transaction cannot record: 25006');
-- an altered value and a swapped one, stored with the trigger off (as a superuser could)
CREATE TEMP TABLE kept AS SELECT * FROM regress_rv.patients;
SET LOCAL session_replication_role = replica;
UPDATE regress_rv.patients SET email = overlay(email placing CASE WHEN substr(email, 60, 1) = 'A' THEN 'B' ELSE 'A' END FROM 60 FOR 1)
 WHERE id = 1;
UPDATE regress_rv.patients p SET email = (SELECT k.email FROM kept k WHERE k.id = 3) WHERE p.id = 2;
RESET session_replication_role;
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email) FROM regress_rv.patients WHERE id = 1$$),
          'ERROR XX001', 'an altered ciphertext fails authentication: XX001, nothing returned');
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email) FROM regress_rv.patients WHERE id = 1$$),
          NULL, '... a reader without the access just gets NULL');
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT secpolicy.reveal('regress_rv.patients', 'email', email, id::text) FROM regress_rv.patients WHERE id = 2$$),
          'ERROR XX001', 'a value swapped in from row 3, read with its row key: XX001');
UPDATE regress_rv.patients p SET email = k.email FROM kept k WHERE k.id = p.id AND p.id IN (1, 2);

-- ---------------------------------------------------------- the view ----
SELECT is(secpolicy.create_reveal_view('regress_rv.patients')::text, 'regress_rv.patients_revealed', 'create_reveal_view()');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = 'regress_rv.patients_revealed'::regclass), '{security_invoker=true}',
          'the view is security_invoker');
GRANT SELECT ON regress_rv.patients_revealed TO regress_rv_app, regress_rv_clerk, regress_rv_outsider;
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT string_agg(format('%s:%s:%s', id, coalesce(diagnosis, '-'), coalesce(email, '-')), ' ' ORDER BY id)
                                                  FROM regress_rv.patients_revealed$$),
          '1:-:ada@example.com 2:-:bo@example.com 3:-:cy@example.com', 'SELECT * as the clerk: emails, NULL diagnoses');
SELECT is(pg_temp.last_record('diagnosis'), 'regress_rv_clerk|f|-|2|{1,2}', '... the refused diagnoses are recorded');
SELECT is(pg_temp.last_record('email'), 'regress_rv_clerk|t|-|3|{1,2,3}', '... and the revealed emails, one row for the statement');
SELECT is(pg_temp.as_session(:'doc_tok'), 'active', 'the doctor''s session again');
SELECT is(pg_temp.value_as('regress_rv_app', $$SELECT string_agg(format('%s:%s:%s', id, coalesce(diagnosis, '-'), coalesce(email, '-')), ' ' ORDER BY id)
                                                FROM regress_rv.patients_revealed$$),
          '1:flu:- 2:cold:- 3:-:-', 'SELECT * in the application with her session: diagnoses, NULL emails');
SELECT is(pg_temp.value_as('regress_rv_outsider', 'SELECT count(*)::text FROM regress_rv.patients_revealed'), 'ERROR 42501',
          'security_invoker: a reader without SELECT on the table is refused');
SELECT pg_temp.as_session(NULL) AS forgotten \gset
SELECT secpolicy.protect_column('regress_rv.patients', 'name', 'patients.contact') IS NOT NULL AS protected \gset
SELECT ok(pg_get_viewdef('regress_rv.patients_revealed') LIKE '%reveal(''regress_rv.patients''::regclass, ''name''::name, t.name, (t.id)::text)%',
          'protect_column() brings the view up to date');
SELECT is(pg_temp.value_as('regress_rv_clerk', $$SELECT name FROM regress_rv.patients_revealed WHERE id = 1$$), 'Ada',
          '... and the view still reads (a value in clear until its batch)');
SELECT secpolicy.unprotect_column('regress_rv.patients', 'name', 'test');
SELECT ok(pg_get_viewdef('regress_rv.patients_revealed') NOT LIKE '%''name''::name%', 'unprotect_column() too');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = 'regress_rv.patients_revealed'::regclass), '{security_invoker=true}',
          'the view is still security_invoker after being redefined');

-- ------------------------------------------------- disclosures_of -------
SELECT is((SELECT count(*) FROM secpolicy.disclosures_of('regress_rv.patients', '1')),
          (SELECT count(*) FROM secpolicy.disclosure_log WHERE '1' = ANY (row_keys) AND table_name = 'patients'),
          'disclosures_of(patients, 1): every record that names row 1');
SELECT is((SELECT count(*) FILTER (WHERE allowed) || '/' || count(*) FILTER (WHERE NOT allowed)
             FROM secpolicy.disclosures_of('regress_rv.patients', '3')), '1/1',
          'row 3 (its diagnosis is NULL: never a disclosure): its email shown to the clerk once, refused to the doctor once');
SELECT is((SELECT string_agg(DISTINCT username, ',') FROM secpolicy.disclosures_of('regress_rv.patients', '1') WHERE allowed AND column_name = 'diagnosis'),
          'regress_rv_doc', 'row 1''s diagnosis was shown to the doctor only');
SELECT is((SELECT count(*) FROM secpolicy.disclosures_of('regress_rv.patients', '42')), 0::bigint, 'a row never read: none');

-- ------------------------------------------------- incident subjects ----
SELECT secpolicy.open_incident('account_compromise', 'high', 'doctor account phished', NULL, ARRAY['regress_rv_doc'],
                               now() - interval '1 hour') AS inc_doc \gset
SELECT is((SELECT string_agg(row_key || ':' || array_to_string(columns, '+'), ' ' ORDER BY row_key)
             FROM secpolicy.incident_affected_subjects(:inc_doc)),
          '1:diagnosis 2:diagnosis', 'the rows revealed to the named account within the window');
SELECT is((SELECT count(*) FROM secpolicy.incident_affected_subjects(:inc_doc, now() + interval '1 hour')), 0::bigint,
          'none in a window after the reveals');
SELECT secpolicy.open_incident('account_compromise', 'high', 'nurse account', NULL, ARRAY['regress_rv_nurse'],
                               now() - interval '1 hour') AS inc_nurse \gset
SELECT is((SELECT count(*) FROM secpolicy.incident_affected_subjects(:inc_nurse)), 0::bigint,
          'refusals are no disclosures: the nurse saw nothing');
SELECT secpolicy.open_incident('credential_leak', 'high', 'clerk role password leaked', NULL, ARRAY['regress_rv_clerk'],
                               now() - interval '1 hour') AS inc_clerk \gset
SELECT is((SELECT string_agg(row_key, ',' ORDER BY row_key) FROM secpolicy.incident_affected_subjects(:inc_clerk)), '1,2,3',
          'a database role named by the incident: the rows it revealed');
SELECT secpolicy.open_incident('stuffing', 'high', 'logins from a botnet', NULL, NULL, now() - interval '1 hour') AS inc_addr \gset
UPDATE secpolicy.incidents SET source_addrs = '{203.0.113.0/24}' WHERE id = :inc_addr;
SELECT is((SELECT string_agg(row_key, ',' ORDER BY row_key) FROM secpolicy.incident_affected_subjects(:inc_addr)), '1,2',
          'an incident''s source network: the rows revealed to sessions opened from it');
SELECT throws_ok('SELECT * FROM secpolicy.incident_affected_subjects(-1)', '42704', NULL, 'an unknown incident: 42704');

-- ------------------------------------------- append-only, retention ----
SELECT throws_ok('UPDATE secpolicy.disclosure_log SET allowed = true', '42501', NULL, 'the log refuses UPDATE');
SELECT throws_ok('DELETE FROM secpolicy.disclosure_log', '42501', NULL, '... DELETE');
SELECT throws_ok('TRUNCATE secpolicy.disclosure_log', '42501', NULL, '... and TRUNCATE');
SELECT is(secpolicy.create_disclosure_partitions(1, (now() - interval '3 days')::date), 5,
          'create_disclosure_partitions: 3 days back to tomorrow');
SELECT is((SELECT count(*) FROM secpolicy.disclosure_log_default), 0::bigint, 'the rows moved out of the default partition');
SELECT secpolicy.record_disclosure('regress_rv_app', NULL, NULL, 'regress_rv', 'patients', 'email', true, '{9}', now() - interval '3 days');
SELECT secpolicy.record_disclosure('regress_rv_app', NULL, NULL, 'regress_rv', 'patients', 'email', true, '{9}', now() - interval '10 days');
UPDATE secpolicy.policy SET disclosure_retention = '2 days';
SELECT results_eq('SELECT * FROM secpolicy.apply_disclosure_retention()', $$VALUES (1, 1::bigint)$$,
                  'retention drops the partition of 3 days ago and the older row of the default partition');
SELECT is((SELECT count(*) FROM secpolicy.disclosure_log WHERE '9' = ANY (row_keys)), 0::bigint, 'both records are gone');
SELECT ok((SELECT count(*) FROM secpolicy.disclosure_log) > 10, '... the recent ones are kept');
SELECT ok(secpolicy.maintain() ?& ARRAY['disclosure_partitions_created', 'disclosure_partitions_dropped', 'protection_worker'],
          'maintain() runs the partitions, the retention and the worker of protected columns');

SELECT * FROM finish();
ROLLBACK;
