-- Enrolment of a second factor: through a login challenge (the first factor)
-- or a recent two-factor session (replacing one).

CREATE TYPE secpolicy.enrollment AS (secret text, otpauth_uri text);
COMMENT ON TYPE secpolicy.enrollment IS
    'Result of totp_enroll(): the new secret (base32, shown once) and its otpauth:// URI; NULLs for an invalid token.';

CREATE TYPE secpolicy.enrollment_result AS (status text, session_token text, recovery_codes text[]);
COMMENT ON TYPE secpolicy.enrollment_result IS
    'Result of totp_confirm(): status ok, invalid_code, expired_challenge or reset_required.';

-- Internal: whose enrolment does a token authorise?  An enrolment challenge
-- (from login) or an active session (re-enrolment).  Returns the user id and,
-- for a challenge, its id; NULLs when the token authorises nothing.
CREATE FUNCTION secpolicy.enrollment_owner(token text, OUT user_id bigint, OUT challenge_id bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.mfa_challenges := secpolicy.find_challenge(enrollment_owner.token, 'enroll');
    st secpolicy.session_proof;
    lifetime interval;
BEGIN
    IF c.id IS NOT NULL THEN
        user_id := c.user_id;
        challenge_id := c.id;
        RETURN;
    END IF;
    -- on a distributed installation, on this node: the one the token names
    st := secpolicy.session_touch(CASE WHEN secpolicy.distributed()
                                       THEN secpolicy.route_key(substring(enrollment_owner.token FROM '[.]([0-9]+)$')) END,
                                  enrollment_owner.token);
    IF st.status <> 'active' THEN
        RETURN;
    END IF;
    -- replacing a factor takes a session opened with it, recently (a stolen
    -- session cookie alone must not be enough to take the factor over)
    -- (one table per statement: what Citus runs inside a delegated call)
    PERFORM 1 FROM secpolicy.totp_credentials t WHERE t.user_id = st.user_id AND t.confirmed_at IS NOT NULL;
    IF FOUND THEN
        SELECT p.mfa_enrollment_lifetime INTO lifetime FROM secpolicy.policy p;
        PERFORM 1 FROM secpolicy.sessions s
         WHERE s.user_id = st.user_id AND s.id = st.session_id AND s.mfa AND s.created_at > now() - lifetime;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    user_id := st.user_id;
END
$$;
COMMENT ON FUNCTION secpolicy.enrollment_owner(text) IS
    'Internal: the user an enrolment challenge or an active session token belongs to.';
REVOKE ALL ON FUNCTION secpolicy.enrollment_owner(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.totp_enroll(token text) RETURNS secpolicy.enrollment
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
    r secpolicy.enrollment;
BEGIN
    IF secpolicy.distributed() THEN
        -- the worker owning the account answers (Citus delegates by the key)
        PERFORM secpolicy.mark_statement();
        k := secpolicy.route_key(substring(totp_enroll.token FROM '[.]([0-9]+)$'));
        SELECT * INTO r FROM secpolicy.totp_enroll(k, totp_enroll.token);
        RETURN r;
    END IF;
    RETURN secpolicy.totp_enroll(NULL::bigint, totp_enroll.token);
END
$$;
COMMENT ON FUNCTION secpolicy.totp_enroll(text) IS
    'Starts a TOTP enrolment for an enrolment challenge or an active session: a new secret and its otpauth:// URI.';
REVOKE ALL ON FUNCTION secpolicy.totp_enroll(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_enroll(text) TO secpolicy_app;

-- Internal: totp_enroll() where the account lives (delegated by account_key).
CREATE FUNCTION secpolicy.totp_enroll(account_key bigint, token text) RETURNS secpolicy.enrollment
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('totp_enroll');
    o record := secpolicy.enrollment_owner(totp_enroll.token);
    pol secpolicy.policy;
    u secpolicy.users;
    s record;
BEGIN
    IF o.user_id IS NULL THEN
        RETURN ROW(NULL, NULL)::secpolicy.enrollment;
    END IF;
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = o.user_id;
    IF u.disabled_at IS NOT NULL THEN
        RETURN ROW(NULL, NULL)::secpolicy.enrollment;
    END IF;
    -- a login challenge enrols a first factor only; replacing one takes a session
    IF o.challenge_id IS NOT NULL AND EXISTS (SELECT 1 FROM secpolicy.totp_credentials c
                                               WHERE c.user_id = u.id AND c.confirmed_at IS NOT NULL) THEN
        RETURN ROW(NULL, NULL)::secpolicy.enrollment;
    END IF;
    SELECT * INTO pol FROM secpolicy.policy;
    s := secpolicy.totp_new_secret();
    INSERT INTO secpolicy.totp_credentials AS t
        (user_id, pending_secret, pending_algorithm, pending_digits, pending_period, pending_created_at)
    VALUES (u.id, s.sealed, pol.totp_algorithm, pol.totp_digits, pol.totp_period, now())
    ON CONFLICT (user_id) DO UPDATE
       SET pending_secret = EXCLUDED.pending_secret, pending_algorithm = EXCLUDED.pending_algorithm,
           pending_digits = EXCLUDED.pending_digits, pending_period = EXCLUDED.pending_period,
           pending_created_at = EXCLUDED.pending_created_at;
    -- the key URI format allows no colon in the account label
    RETURN ROW(s.secret, secpolicy.otpauth_uri(s.secret, replace(u.username, ':', '_'), pol.totp_issuer,
                                              pol.totp_algorithm, pol.totp_digits, pol.totp_period))::secpolicy.enrollment;
END
$$;
COMMENT ON FUNCTION secpolicy.totp_enroll(bigint, text) IS
    'Internal: totp_enroll() on the node owning the account of account_key (NULL: a single node).';
REVOKE ALL ON FUNCTION secpolicy.totp_enroll(bigint, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.totp_confirm(token text, code text) RETURNS secpolicy.enrollment_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bigint;
    r secpolicy.enrollment_result;
BEGIN
    IF secpolicy.distributed() THEN
        -- the worker owning the account answers (Citus delegates by the key)
        PERFORM secpolicy.mark_statement();
        k := secpolicy.route_key(substring(totp_confirm.token FROM '[.]([0-9]+)$'));
        SELECT * INTO r FROM secpolicy.totp_confirm(k, totp_confirm.token, totp_confirm.code);
        RETURN r;
    END IF;
    RETURN secpolicy.totp_confirm(NULL::bigint, totp_confirm.token, totp_confirm.code);
END
$$;
COMMENT ON FUNCTION secpolicy.totp_confirm(text, text) IS
    'Activates the enrolment started by totp_enroll with a current code; returns recovery codes (shown once) and, after a login challenge, a session.';
REVOKE ALL ON FUNCTION secpolicy.totp_confirm(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_confirm(text, text) TO secpolicy_app;

-- Internal: totp_confirm() where the account lives (delegated by account_key).
CREATE FUNCTION secpolicy.totp_confirm(account_key bigint, token text, code text) RETURNS secpolicy.enrollment_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    writable boolean := secpolicy.require_writable('totp_confirm');
    o record := secpolicy.enrollment_owner(totp_confirm.token);
    pol secpolicy.policy;
    u secpolicy.users;
    c secpolicy.totp_credentials;
    matched bigint;
    codes text[];
    session text;
    ch secpolicy.mfa_challenges;
    refusal text;
BEGIN
    IF o.user_id IS NOT NULL THEN
        SELECT * INTO pol FROM secpolicy.policy;
        SELECT * INTO u FROM secpolicy.users x WHERE x.id = o.user_id FOR UPDATE;
        SELECT * INTO ch FROM secpolicy.mfa_challenges x WHERE x.user_id = u.id AND x.id = o.challenge_id;
        SELECT * INTO c FROM secpolicy.totp_credentials x WHERE x.user_id = u.id FOR UPDATE;
    END IF;
    IF u.id IS NULL THEN
        -- a void token: logged against the account of the challenge it was, if any
        SELECT a.user_id, a.username INTO u.id, u.username FROM secpolicy.challenge_account(totp_confirm.token) a;
        PERFORM secpolicy.record_attempt(u.id, u.username, NULL, NULL, false, 'expired_challenge', 'mfa',
                                         totp_confirm.account_key);
        RETURN ROW('expired_challenge', NULL, NULL)::secpolicy.enrollment_result;
    END IF;
    -- refused: a disabled account; through a login challenge (which opens a
    -- session), a password that has expired since, or an account that has a
    -- factor already (replacing one takes a session); else the guess is
    -- counted (the ledger) before it is evaluated
    refusal := CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled'
                    WHEN ch.id IS NOT NULL AND NOT secpolicy.password_usable(u) THEN 'expired_challenge'
                    WHEN ch.id IS NOT NULL AND c.confirmed_at IS NOT NULL THEN 'expired_challenge'
                    ELSE secpolicy.may_guess(u.id, u.failed_attempts, u.reset_required) END;
    IF refusal <> 'ok' THEN
        UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = u.id AND x.id = ch.id;
        PERFORM secpolicy.record_attempt(u.id, u.username, ch.client_addr, ch.user_agent, false, refusal, 'mfa');
        RETURN ROW(CASE WHEN refusal IN ('locked', 'lockout', 'ledger_full') THEN 'reset_required'
                        ELSE 'expired_challenge' END,
                   NULL, NULL)::secpolicy.enrollment_result;
    END IF;
    IF c.pending_secret IS NOT NULL THEN
        SELECT v.step INTO matched
          FROM secpolicy.totp_verify_sealed(c.pending_secret, secpolicy.compact_code(totp_confirm.code),
                                            now(), -1, pol.totp_window, c.pending_digits,
                                            c.pending_period, c.pending_algorithm) v;
    END IF;
    IF matched IS NULL THEN
        RETURN ROW(secpolicy.code_failure(u.id, u.username, 'invalid_code', ch.client_addr, ch.user_agent),
                   NULL, NULL)::secpolicy.enrollment_result;
    END IF;

    PERFORM secpolicy.guess_end('u:' || u.id);
    UPDATE secpolicy.totp_credentials x
       SET sealed_secret = c.pending_secret, algorithm = c.pending_algorithm, digits = c.pending_digits,
           period = c.pending_period, confirmed_at = now(), last_used_step = matched,
           pending_secret = NULL, pending_algorithm = NULL, pending_digits = NULL,
           pending_period = NULL, pending_created_at = NULL
     WHERE x.user_id = u.id;

    SELECT array_agg(secpolicy.recovery_code()) INTO codes FROM generate_series(1, pol.recovery_code_count);
    DELETE FROM secpolicy.recovery_codes r WHERE r.user_id = u.id;
    INSERT INTO secpolicy.recovery_codes (user_id, code_digest)
    SELECT u.id, secpolicy.token_digest(replace(rc, '-', '')) FROM unnest(codes) AS rc;
    PERFORM secpolicy.audit('mfa_enrolled', u.id, u.username, NULL,
                            jsonb_build_object('algorithm', c.pending_algorithm, 'digits', c.pending_digits,
                                               'period', c.pending_period,
                                               'via', CASE WHEN ch.id IS NULL THEN 'session' ELSE 'challenge' END));

    IF ch.id IS NOT NULL THEN
        UPDATE secpolicy.mfa_challenges x SET used_at = now() WHERE x.user_id = u.id AND x.id = ch.id;
        PERFORM secpolicy.record_attempt(u.id, u.username, ch.client_addr, ch.user_agent, true, 'ok', 'mfa');
        session := secpolicy.complete_login(u.id, ch.client_addr, ch.user_agent, true);
    END IF;
    RETURN ROW('ok', session, codes)::secpolicy.enrollment_result;
END
$$;
COMMENT ON FUNCTION secpolicy.totp_confirm(bigint, text, text) IS
    'Internal: totp_confirm() on the node owning the account of account_key (NULL: a single node).';
REVOKE ALL ON FUNCTION secpolicy.totp_confirm(bigint, text, text) FROM PUBLIC;
