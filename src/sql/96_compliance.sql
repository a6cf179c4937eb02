-- Compliance evidence: one row per policy statement (DESIGN.md section 1)
-- with the current setting, the organisation's target, and how many of the
-- accounts (or objects) in scope comply.  For ISO 27001 audits.

CREATE FUNCTION secpolicy.compliance_report()
    RETURNS TABLE (statement text, setting text, target text, setting_ok boolean,
                   in_scope bigint, compliant bigint, compliant_pct numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol secpolicy.policy;
    key text := (SELECT k.key_id FROM secpolicy.key_status() k);
    chain record := secpolicy.verify_audit_chain();
    -- chained rows, and those before the first broken row (every node's on a
    -- distributed installation)
    chained bigint;
    before_break bigint;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    IF secpolicy.distributed() THEN
        SELECT sum(c.rows_chained), sum(CASE WHEN c.intact THEN c.rows_checked ELSE c.rows_checked - 1 END)
          INTO chained, before_break FROM secpolicy.audit_chains() c;
    ELSE
        chained := (SELECT count(*) FROM secpolicy.audit_log l WHERE l.row_hash IS NOT NULL);
        before_break := CASE WHEN chain.intact THEN chain.rows_checked
                             ELSE (SELECT count(*) FROM secpolicy.audit_log l, secpolicy.audit_log b
                                    WHERE b.id = chain.first_broken_id AND l.row_hash IS NOT NULL
                                      AND coalesce(l.chain_seq, l.id) < coalesce(b.chain_seq, b.id)) END;
    END IF;
    RETURN QUERY
    WITH active AS (
        SELECT u.*,
               u.password_hash LIKE '$argon2id$v=19$m=' || (pol.hash_memlimit / 1024)
                                    || ',t=' || pol.hash_opslimit || ',p=%' AS hash_current,
               u.password_checked_at >= pol.rules_changed_at AS checked_under_rules,
               EXISTS (SELECT 1 FROM secpolicy.totp_credentials t
                        WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS mfa
          FROM secpolicy.users u WHERE u.disabled_at IS NULL
    ), rows (statement, setting, target, setting_ok, in_scope, compliant) AS (
        SELECT 'Only password hashes are stored (argon2id)',
               format('argon2id, t=%s, m=%s KiB', pol.hash_opslimit, pol.hash_memlimit / 1024),
               'argon2id, at least t=2 and 19 MiB',
               pol.hash_opslimit >= 2 AND pol.hash_memlimit >= 19 * 1024 * 1024,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.password_hash LIKE '$argon2id$%')
        UNION ALL
        SELECT 'Password hashes use the current cost',
               format('t=%s, m=%s KiB', pol.hash_opslimit, pol.hash_memlimit / 1024),
               'every hash at the policy cost (rehashed at login)', true,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.hash_current)
        UNION ALL
        SELECT 'Passwords: 12+ characters with upper, lower, digit and symbol',
               format('min %s, max %s, upper %s, lower %s, digit %s, symbol %s, blocklist %s, username %s',
                      pol.min_length, pol.max_length, pol.require_upper, pol.require_lower,
                      pol.require_digit, pol.require_symbol, pol.check_blocklist, pol.check_username),
               'min 12, all four classes, blocklist',
               pol.min_length >= 12 AND pol.require_upper AND pol.require_lower AND pol.require_digit
                   AND pol.require_symbol AND pol.check_blocklist,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.checked_under_rules)
        UNION ALL
        SELECT 'Previous passwords cannot be reused',
               format('history_depth %s', pol.history_depth), 'history_depth at least 5',
               pol.history_depth >= 5,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.checked_under_rules)
        UNION ALL
        SELECT 'Passwords expire every 6 months',
               coalesce(pol.max_password_age::text, 'never'), 'at most 6 months',
               coalesce(pol.max_password_age <= interval '6 months', false),
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a
                 WHERE NOT a.password_expired
                   AND (pol.max_password_age IS NULL OR a.password_changed_at > now() - pol.max_password_age))
        UNION ALL
        SELECT 'A password reset is enforced after 5 failed attempts',
               format('max_failed_attempts %s', pol.max_failed_attempts), 'at most 5',
               pol.max_failed_attempts <= 5,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a
                 WHERE a.failed_attempts < pol.max_failed_attempts OR a.reset_required)
        UNION ALL
        SELECT 'Everyone uses two-factor authentication',
               format('require_mfa %s', pol.require_mfa), 'require_mfa true', pol.require_mfa,
               (SELECT count(*) FROM active),
               (SELECT count(*) FROM active a WHERE a.mfa)
        UNION ALL
        SELECT 'Automatic sign-out after 15 minutes of inactivity',
               format('idle %s, lifetime %s', pol.session_idle_timeout, pol.session_max_lifetime),
               'idle at most 15 minutes', pol.session_idle_timeout <= interval '15 minutes',
               (SELECT count(*) FROM secpolicy.sessions s WHERE s.ended_at IS NULL),
               (SELECT count(*) FROM secpolicy.sessions s
                 WHERE s.ended_at IS NULL AND s.last_seen_at >= now() - pol.session_idle_timeout
                   AND s.created_at >= now() - pol.session_max_lifetime)
        UNION ALL
        SELECT 'Admins manage user access (no dormant account keeps access)',
               format('%s grants', (SELECT count(*) FROM secpolicy.user_access)),
               'access held only by accounts used in the last 90 days', true,
               (SELECT count(DISTINCT x.user_id) FROM secpolicy.user_access x),
               (SELECT count(DISTINCT x.user_id) FROM secpolicy.user_access x
                  JOIN secpolicy.users u ON u.id = x.user_id
                 WHERE u.disabled_at IS NULL AND u.last_login_at >= now() - interval '90 days')
        UNION ALL
        SELECT 'A leaver is disabled at once (no live session or reset token)',
               format('%s disabled accounts', (SELECT count(*) FROM secpolicy.users u WHERE u.disabled_at IS NOT NULL)),
               'no session or reset token survives disabling', true,
               (SELECT count(*) FROM secpolicy.users u WHERE u.disabled_at IS NOT NULL),
               (SELECT count(*) FROM secpolicy.users u
                 WHERE u.disabled_at IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM secpolicy.sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM secpolicy.password_resets r
                                    WHERE r.user_id = u.id AND r.used_at IS NULL AND r.revoked_at IS NULL
                                      AND r.expires_at > now()))
        UNION ALL
        SELECT 'Shared credentials are changed after a holder leaves',
               format('%s shared credentials', (SELECT count(*) FROM secpolicy.shared_credentials)),
               'no credential still due for rotation', true,
               (SELECT count(*) FROM secpolicy.shared_credentials),
               (SELECT count(*) FROM secpolicy.shared_credentials c WHERE c.rotation_due_at IS NULL)
        UNION ALL
        SELECT 'Only staff who need access can see data (least privilege)',
               format('%s admin, %s application and %s analyst members',
                      (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = 'secpolicy_admin'::regrole),
                      (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = 'secpolicy_app'::regrole),
                      (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = 'secpolicy_analyst'::regrole)),
               'nothing granted to PUBLIC; no hash, secret or token readable by a group role',
               NOT EXISTS (
                   SELECT 1 FROM pg_class c
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    CROSS JOIN unnest(ARRAY['public', 'secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst']) g(role)
                    WHERE c.relnamespace = 'secpolicy'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                      AND a.attname IN ('password_hash', 'hash', 'sealed_secret', 'pending_secret',
                                        'code_digest', 'token_digest')
                      AND has_column_privilege(g.role, c.oid, a.attnum, 'SELECT')),
               -- the extension's tables, views, sequences and functions
               (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'secpolicy'::regnamespace
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition)
                 + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'secpolicy'::regnamespace),
               -- ... on which PUBLIC holds no privilege
               (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'secpolicy'::regnamespace
                   AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition
                   AND NOT CASE WHEN c.relkind = 'S'
                                THEN has_sequence_privilege('public', c.oid, 'USAGE, SELECT, UPDATE')
                                ELSE has_table_privilege('public', c.oid,
                                         'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') END)
                 + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'secpolicy'::regnamespace
                       AND NOT has_function_privilege('public', p.oid, 'EXECUTE'))
        UNION ALL
        SELECT 'Failed authentication attempts are logged and reported',
               format('retention %s', coalesce(pol.attempt_retention::text, 'forever')),
               'every attempt kept at least 90 days',
               pol.attempt_retention IS NULL OR pol.attempt_retention >= interval '90 days',
               NULL::bigint, NULL::bigint
        UNION ALL
        SELECT 'Security incidents are reported to the regulator within 72 hours',
               format('%s open incidents', (SELECT count(*) FROM secpolicy.incidents i WHERE i.status <> 'closed')),
               'regulator notified within 72 hours of detection', true,
               (SELECT count(*) FROM secpolicy.incidents i WHERE i.personal_data_breach),
               (SELECT count(*) FROM secpolicy.incidents i
                 WHERE i.personal_data_breach
                   AND (i.regulator_notified_at <= i.detected_at + interval '72 hours'
                        OR (i.regulator_notified_at IS NULL AND now() <= i.detected_at + interval '72 hours')))
        UNION ALL
        SELECT 'Second-factor secrets are encrypted at rest',
               CASE WHEN key IS NULL THEN 'no key configured' ELSE 'a sealing key is configured' END,
               'every secret sealed under the current key',
               key IS NOT NULL,
               (SELECT count(*) FROM secpolicy.totp_credentials t WHERE t.sealed_secret IS NOT NULL),
               (SELECT count(*) FROM secpolicy.totp_credentials t
                 WHERE t.sealed_secret IS NOT NULL AND secpolicy.sealed_key_id(t.sealed_secret) = key)
        UNION ALL
        -- protected columns (93_protected_columns.sql): every stored value
        -- encrypted under the current key, and the trigger on
        SELECT 'Data is encrypted in every database (protected columns)',
               format('%s protected columns, %s still being encrypted or resealed',
                      (SELECT count(*) FROM secpolicy.protected_columns),
                      (SELECT count(*) FROM secpolicy.protected_columns c WHERE c.state <> 'protected')),
               'every protected column encrypted under the current key, its trigger enabled',
               key IS NOT NULL,
               (SELECT count(*) FROM secpolicy.protection_status),
               (SELECT count(*) FROM secpolicy.protection_status s
                 WHERE s.state = 'protected' AND s.key_id = key AND s.trigger_enabled)
        UNION ALL
        SELECT 'The audit trail is complete and tamper-evident',
               CASE WHEN chain.intact THEN 'hash chain intact' ELSE format('chain broken at row %s', chain.first_broken_id) END,
               'hash chain intact', chain.intact,
               chained, before_break
    )
    SELECT r.statement, r.setting, r.target, r.setting_ok, r.in_scope, r.compliant,
           CASE WHEN r.in_scope > 0 THEN round(100.0 * r.compliant / r.in_scope, 1) END
      FROM rows r;
END
$$;
COMMENT ON FUNCTION secpolicy.compliance_report() IS
    'Per policy statement: the setting, the target, whether the setting meets it, and how many in scope comply.';
REVOKE ALL ON FUNCTION secpolicy.compliance_report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.compliance_report() TO secpolicy_analyst, secpolicy_admin;

CREATE VIEW secpolicy.compliance AS SELECT * FROM secpolicy.compliance_report();
COMMENT ON VIEW secpolicy.compliance IS
    'Compliance evidence per policy statement (see compliance_report()).';
GRANT SELECT ON secpolicy.compliance TO secpolicy_analyst, secpolicy_admin;
