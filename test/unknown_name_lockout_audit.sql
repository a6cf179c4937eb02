-- pgTAP: an unknown username that reaches the failure limit is locked out
-- like an account, and its lockout is audited like one.  Five wrong passwords
-- answer what they answer on a real account (reset_required at the fifth);
-- the fifth writes one 'account_locked' audit row with user_id NULL, the
-- username as typed, and the action, reason and details of an account's
-- lockout; a sixth failure (in another case) writes no second row; the audit
-- chain stays intact.  The notifications of these lockouts:
-- test/scenarios/lockout_notifications.sh.
BEGIN;
\ir lib/helpers.psql
SELECT plan(7);

UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false, max_failed_attempts = 5;

SELECT secpolicy.create_user('regress_lockout_real', 'Bittern-Reed-52!') AS real_uid \gset
CREATE TEMP TABLE tries_unknown AS
    SELECT i, pg_temp.status('Regress.Ghost_Typed', 'Wrong-Guess-' || i || '!x') AS st FROM generate_series(1, 5) i;
CREATE TEMP TABLE tries_real AS
    SELECT i, pg_temp.status('regress_lockout_real', 'Wrong-Guess-' || i || '!x') AS st FROM generate_series(1, 5) i;
SELECT is((SELECT string_agg(st, ',' ORDER BY i) FROM tries_unknown),
          'invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required',
          'five wrong passwords on an unknown name end in reset_required');
SELECT is((SELECT string_agg(st, ',' ORDER BY i) FROM tries_unknown), (SELECT string_agg(st, ',' ORDER BY i) FROM tries_real),
          'as they do on a real account');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND user_id IS NULL
              AND username = 'Regress.Ghost_Typed'), 1::bigint,
          'the unknown name''s lockout writes one account_locked row, user_id NULL, the username as typed');
SELECT is((SELECT ROW(a.action, a.reason, a.details)::text FROM secpolicy.audit_log a
            WHERE a.action = 'account_locked' AND a.username = 'Regress.Ghost_Typed'),
          (SELECT ROW(a.action, a.reason, a.details)::text FROM secpolicy.audit_log a
            WHERE a.action = 'account_locked' AND a.user_id = :real_uid),
          'with the action, reason and details of an account''s lockout');
SELECT is(pg_temp.status('REGRESS.GHOST_TYPED', 'Wrong-Guess-6!x'), 'reset_required',
          'a sixth failure (other case) answers reset_required');
SELECT is((SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked' AND user_id IS NULL
              AND lower(username) = 'regress.ghost_typed'), 1::bigint,
          'and writes no second account_locked row');
SELECT is((SELECT intact FROM secpolicy.verify_audit_chain()), true, 'the audit chain is intact');

SELECT * FROM finish();
ROLLBACK;
