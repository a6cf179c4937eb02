-- The second step of a login: a TOTP or recovery code for a challenge.

CREATE TYPE secpolicy.mfa_result AS (status text, user_id bigint, session_token text);
COMMENT ON TYPE secpolicy.mfa_result IS
    'Result of verify_mfa(): status ok, invalid_code, expired_challenge or reset_required.';

-- Internal: a second-factor code as typed, in NFKC in a UTF-8 database
-- (digits and letters from a full-width keyboard or an input method are the
-- ASCII ones), without spaces and hyphens.  Codes are short: input of more
-- than 256 bytes is no code at all (NULL), and is not looked at further.
CREATE FUNCTION secpolicy.compact_code(code text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c text := coalesce(compact_code.code, '');
BEGIN
    IF octet_length(c) > 256 THEN
        RETURN NULL;
    END IF;
    IF octet_length(c) > length(c) AND getdatabaseencoding() = 'UTF8' THEN
        c := normalize(c, NFKC);
    END IF;
    RETURN regexp_replace(c, '[[:space:]-]', '', 'g');
END
$$;
COMMENT ON FUNCTION secpolicy.compact_code(text) IS
    'Internal: a second-factor code without spaces and hyphens, in NFKC in a UTF-8 database; NULL for more than 256 bytes.';
REVOKE ALL ON FUNCTION secpolicy.compact_code(text) FROM PUBLIC;

-- Internal: check a second-factor code (TOTP, or a recovery code) for a user
-- whose account and credential rows the caller has locked.  Returns the
-- method that matched ('totp', 'recovery_code') or the failure outcome
-- ('invalid_code', 'replayed_code').
CREATE FUNCTION secpolicy.check_second_factor(user_id bigint, code text) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.totp_credentials;
    pol secpolicy.policy;
    m record;
    compact text := secpolicy.compact_code(check_second_factor.code);
BEGIN
    IF compact IS NULL OR length(compact) > 64 THEN
        RETURN 'invalid_code';
    END IF;
    IF compact ~ '^[0-9]{6,8}$' THEN
        SELECT * INTO c FROM secpolicy.totp_credentials x
         WHERE x.user_id = check_second_factor.user_id AND x.confirmed_at IS NOT NULL FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 'invalid_code';
        END IF;
        SELECT * INTO pol FROM secpolicy.policy;
        SELECT * INTO m FROM secpolicy.totp_verify_sealed(c.sealed_secret, compact, now(), c.last_used_step,
                                                          pol.totp_window, c.digits, c.period, c.algorithm);
        IF m.step IS NULL THEN
            RETURN CASE WHEN m.replayed THEN 'replayed_code' ELSE 'invalid_code' END;
        END IF;
        UPDATE secpolicy.totp_credentials x SET last_used_step = m.step
         WHERE x.user_id = check_second_factor.user_id;
        RETURN 'totp';
    END IF;

    UPDATE secpolicy.recovery_codes r SET used_at = now()
     WHERE r.user_id = check_second_factor.user_id AND r.used_at IS NULL
       AND r.code_digest = secpolicy.token_digest(lower(compact));
    RETURN CASE WHEN FOUND THEN 'recovery_code' ELSE 'invalid_code' END;
END
$$;
COMMENT ON FUNCTION secpolicy.check_second_factor(bigint, text) IS
    'Internal: accept a TOTP code once (replay guard) or a recovery code once.';
REVOKE ALL ON FUNCTION secpolicy.check_second_factor(bigint, text) FROM PUBLIC;

-- Internal: a wrong second-factor code on a locked account row: count it,
-- record it (outcome invalid_code or replayed_code, or lockout at the limit)
-- and return the status to answer: invalid_code or reset_required.
CREATE FUNCTION secpolicy.code_failure(user_id bigint, username text, outcome text,
                                       client_addr inet, user_agent text, stage text DEFAULT 'mfa')
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text := secpolicy.register_failure(code_failure.user_id);
BEGIN
    PERFORM secpolicy.record_attempt(code_failure.user_id, code_failure.username, code_failure.client_addr,
                                     code_failure.user_agent, false,
                                     CASE st WHEN 'reset_required' THEN 'lockout' ELSE code_failure.outcome END,
                                     code_failure.stage);
    RETURN CASE st WHEN 'reset_required' THEN 'reset_required' ELSE 'invalid_code' END;
END
$$;
COMMENT ON FUNCTION secpolicy.code_failure(bigint, text, text, inet, text, text) IS
    'Internal: count and record a wrong second-factor code; returns invalid_code or reset_required.';
REVOKE ALL ON FUNCTION secpolicy.code_failure(bigint, text, text, inet, text, text) FROM PUBLIC;

-- Internal: find a live challenge by token, or NULL.  It locks the account
-- first and the challenge second, the order of everything else that touches
-- both (password changes end challenges with the account locked), so that
-- the two cannot deadlock.
CREATE FUNCTION secpolicy.find_challenge(token text, purpose text) RETURNS secpolicy.mfa_challenges
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.mfa_challenges;
BEGIN
    IF token IS NULL OR length(token) > 128 THEN
        RETURN NULL;
    END IF;
    SELECT * INTO c FROM secpolicy.mfa_challenges x
     WHERE x.token_digest = secpolicy.token_digest(find_challenge.token);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM secpolicy.users u WHERE u.id = c.user_id FOR UPDATE;
    SELECT * INTO c FROM secpolicy.mfa_challenges x WHERE x.user_id = c.user_id AND x.id = c.id FOR UPDATE;
    IF c.purpose <> find_challenge.purpose OR c.used_at IS NOT NULL OR c.expires_at <= now() THEN
        RETURN NULL;
    END IF;
    RETURN c;
END
$$;
COMMENT ON FUNCTION secpolicy.find_challenge(text, text) IS
    'Internal: the unused, unexpired challenge of a purpose with this token, locked after its account; NULL otherwise.';
REVOKE ALL ON FUNCTION secpolicy.find_challenge(text, text) FROM PUBLIC;

-- Internal: the account a challenge token was issued to, whatever its state
-- (used, expired): attempts with a void challenge are logged against it.
CREATE FUNCTION secpolicy.challenge_account(token text, OUT user_id bigint, OUT username text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, u.username FROM secpolicy.mfa_challenges x JOIN secpolicy.users u ON u.id = x.user_id
     WHERE length(token) <= 128 AND x.token_digest = secpolicy.token_digest(token);
$$;
COMMENT ON FUNCTION secpolicy.challenge_account(text) IS
    'Internal: the account (id, username) a challenge token belongs to, used or not; NULLs when none.';
REVOKE ALL ON FUNCTION secpolicy.challenge_account(text) FROM PUBLIC;

-- Internal: may this account's password open a session now?  Not when it
-- has expired (by age or by an admin) or must be changed.
CREATE FUNCTION secpolicy.password_usable(u secpolicy.users) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT (u.password_expired OR u.must_change_password
                OR coalesce(u.password_changed_at + p.max_password_age <= now(), false))
      FROM secpolicy.policy p;
$$;
COMMENT ON FUNCTION secpolicy.password_usable(secpolicy.users) IS
    'Internal: false when the password has expired or must be changed.';
REVOKE ALL ON FUNCTION secpolicy.password_usable(secpolicy.users) FROM PUBLIC;

CREATE FUNCTION secpolicy.verify_mfa(challenge_token text, code text, client_addr inet DEFAULT NULL)
    RETURNS secpolicy.mfa_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('verify_mfa');
    c secpolicy.mfa_challenges := secpolicy.find_challenge(verify_mfa.challenge_token, 'verify');
    u secpolicy.users;
    addr inet;
    outcome text;
BEGIN
    IF c.id IS NULL THEN
        PERFORM secpolicy.record_attempt(a.user_id, a.username, verify_mfa.client_addr, NULL, false,
                                         'expired_challenge', 'mfa')
           FROM secpolicy.challenge_account(verify_mfa.challenge_token) a;
        RETURN ROW('expired_challenge', NULL, NULL)::secpolicy.mfa_result;
    END IF;
    addr := coalesce(verify_mfa.client_addr, c.client_addr);
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = c.user_id FOR UPDATE;
    -- disabled, or the password expired or was replaced by an admin, since
    -- the challenge; else counted before it is evaluated (the ledger), so the
    -- guess must come last
    outcome := CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled'
                    WHEN NOT secpolicy.password_usable(u) THEN 'expired_challenge'
                    ELSE secpolicy.may_guess(u.id, u.failed_attempts, u.reset_required) END;
    IF outcome <> 'ok' THEN
        UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = c.user_id AND x.id = c.id;
        PERFORM secpolicy.record_attempt(u.id, u.username, addr, c.user_agent, false, outcome, 'mfa');
        RETURN ROW(CASE WHEN outcome IN ('locked', 'lockout', 'ledger_full') THEN 'reset_required'
                        ELSE 'expired_challenge' END,
                   NULL, NULL)::secpolicy.mfa_result;
    END IF;

    outcome := secpolicy.check_second_factor(u.id, verify_mfa.code);
    IF outcome IN ('invalid_code', 'replayed_code') THEN
        IF outcome = 'replayed_code' THEN
            PERFORM secpolicy.audit('totp_replay_rejected', u.id, u.username);
        END IF;
        RETURN ROW(secpolicy.code_failure(u.id, u.username, outcome, addr, c.user_agent),
                   NULL, NULL)::secpolicy.mfa_result;
    END IF;

    PERFORM secpolicy.guess_end('u:' || u.id);
    UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = c.user_id AND x.id = c.id;
    PERFORM secpolicy.record_attempt(u.id, u.username, addr, c.user_agent, true, 'ok', 'mfa');
    IF outcome = 'recovery_code' THEN
        PERFORM secpolicy.audit('recovery_code_used', u.id, u.username, NULL,
                                jsonb_build_object('remaining',
                                    (SELECT count(*) FROM secpolicy.recovery_codes r
                                      WHERE r.user_id = u.id AND r.used_at IS NULL)));
    END IF;
    RETURN ROW('ok', u.id, secpolicy.complete_login(u.id, addr, c.user_agent, true))::secpolicy.mfa_result;
END
$$;
COMMENT ON FUNCTION secpolicy.verify_mfa(text, text, inet) IS
    'Second step of a login: a TOTP or recovery code for the challenge from login(); issues the session.';
REVOKE ALL ON FUNCTION secpolicy.verify_mfa(text, text, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.verify_mfa(text, text, inet) TO secpolicy_app;
