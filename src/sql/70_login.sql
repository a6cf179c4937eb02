-- Login: password, lockout, the second factor, and the enrolment of one.
--
-- Flows return a status instead of raising, so that the failure counter and
-- the attempt row commit with the caller's statement: call them in
-- autocommit (a caller that rolls back its own transaction also rolls back
-- its own failure).  Every flow locks the account row (FOR UPDATE) before it
-- evaluates a guess, so concurrent guesses on one account are serialised and
-- never more than max_failed_attempts of them are evaluated.

CREATE TYPE secpolicy.login_result AS (
    status text, user_id bigint, session_token text, challenge_token text,
    password_expires_at timestamptz);
COMMENT ON TYPE secpolicy.login_result IS
    'Result of login(): status ok, mfa_required, mfa_enrollment_required, password_expired, password_change_required, invalid_credentials, reset_required or disabled.';

CREATE TYPE secpolicy.mfa_result AS (status text, user_id bigint, session_token text);
COMMENT ON TYPE secpolicy.mfa_result IS
    'Result of verify_mfa(): status ok, invalid_code, expired_challenge or reset_required.';

CREATE TYPE secpolicy.enrollment AS (secret text, otpauth_uri text);
COMMENT ON TYPE secpolicy.enrollment IS
    'Result of totp_enroll(): the new secret (base32, shown once) and its otpauth:// URI; NULLs for an invalid token.';

CREATE TYPE secpolicy.enrollment_result AS (status text, session_token text, recovery_codes text[]);
COMMENT ON TYPE secpolicy.enrollment_result IS
    'Result of totp_confirm(): status ok, invalid_code, expired_challenge or reset_required.';

-- The ledger of guesses in shared memory (src/ledger.c; active when secpolicy
-- is in shared_preload_libraries): a caller's ROLLBACK cannot erase what it
-- counts.  Keys: 'u:<user id>' for accounts, 'n:<lower-cased name>' for
-- unknown usernames.
CREATE FUNCTION secpolicy.guess_begin(key text, lim integer, committed integer, label text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_guess_begin'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_begin(text, integer, integer, text) IS
    'Internal: count a guess in the shared-memory ledger before it is evaluated; false at the limit.';
REVOKE ALL ON FUNCTION secpolicy.guess_begin(text, integer, integer, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.guess_end(key text) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_guess_end'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_end(text) IS
    'Internal: the guess was right; give its count back to the ledger.';
REVOKE ALL ON FUNCTION secpolicy.guess_end(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.guess_clear(key text) RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_guess_clear'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_clear(text) IS
    'Internal: clear a key''s ledger count when the transaction commits.';
REVOKE ALL ON FUNCTION secpolicy.guess_clear(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.ledger_active() RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_ledger_active'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.ledger_active() IS
    'Is the shared-memory ledger of guesses in use (secpolicy in shared_preload_libraries)?';
REVOKE ALL ON FUNCTION secpolicy.ledger_active() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.ledger_active() TO secpolicy_admin;

-- Internal: lock an account out (its row locked by the caller): a reset is
-- required, its sessions end, and the lockout is audited and announced.
CREATE FUNCTION secpolicy.lock_account(user_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text;
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = greatest(u.failed_attempts, (SELECT p.max_failed_attempts FROM secpolicy.policy p)),
           reset_required = true, locked_at = now(), last_failed_at = now()
     WHERE u.id = lock_account.user_id
    RETURNING u.username INTO name;
    PERFORM secpolicy.end_sessions(lock_account.user_id, 'lockout');
    PERFORM secpolicy.lockout_event(lock_account.user_id, name);
END
$$;
COMMENT ON FUNCTION secpolicy.lock_account(bigint) IS
    'Internal: require a reset of an account, end its sessions, audit and announce the lockout.';
REVOKE ALL ON FUNCTION secpolicy.lock_account(bigint) FROM PUBLIC;

-- Internal: may one more guess (password or code) be evaluated on this
-- locked account row?  'ok' when it may; 'locked' when the table counts the
-- limit already (or the account needs a reset anyway, for the second-factor
-- flows); 'lockout' when the ledger (active with shared_preload_libraries),
-- where rolled-back failures still count, reaches it: the account is locked
-- out now.  The answer is also the outcome to record.
CREATE FUNCTION secpolicy.may_guess(user_id bigint, failed integer, reset_required boolean DEFAULT false)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lim integer := (SELECT p.max_failed_attempts FROM secpolicy.policy p);
BEGIN
    IF user_id IS NULL OR failed IS NULL OR failed >= lim OR coalesce(reset_required, true) THEN
        RETURN 'locked';
    END IF;
    IF NOT secpolicy.guess_begin('u:' || user_id, lim, failed, 'account ' || user_id) THEN
        PERFORM secpolicy.lock_account(user_id);
        RETURN 'lockout';
    END IF;
    RETURN 'ok';
END
$$;
COMMENT ON FUNCTION secpolicy.may_guess(bigint, integer, boolean) IS
    'Internal: ok, or locked / lockout when the account is at the failure limit (in the table, or now in the ledger).';
REVOKE ALL ON FUNCTION secpolicy.may_guess(bigint, integer, boolean) FROM PUBLIC;

-- Internal: count a failed guess on an account whose row the caller has
-- locked.  At the limit the account is locked out.  Returns the status to
-- answer: invalid_credentials or reset_required.
CREATE FUNCTION secpolicy.register_failure(user_id bigint) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = u.failed_attempts + 1, last_failed_at = now()
     WHERE u.id = register_failure.user_id
    RETURNING u.failed_attempts INTO n;
    IF n < (SELECT p.max_failed_attempts FROM secpolicy.policy p) THEN
        RETURN 'invalid_credentials';
    END IF;
    PERFORM secpolicy.lock_account(register_failure.user_id);
    RETURN 'reset_required';
END
$$;
COMMENT ON FUNCTION secpolicy.register_failure(bigint) IS
    'Internal: count a failed guess on a locked account row; at the limit lock the account out.';
REVOKE ALL ON FUNCTION secpolicy.register_failure(bigint) FROM PUBLIC;

-- Internal: a lockout (of an account, or of an unknown name: user_id NULL)
-- is audited and announced with NOTIFY secpolicy_lockout.  Anyone may LISTEN,
-- so the payload is the audit row's id only, and unknown names announce their
-- lockout exactly as accounts do.
CREATE FUNCTION secpolicy.lockout_event(user_id bigint, username text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    audit_id bigint := secpolicy.audit('account_locked', lockout_event.user_id,
                                       left(lockout_event.username, 256), 'failure limit reached');
BEGIN
    PERFORM pg_notify('secpolicy_lockout', jsonb_build_object('audit_id', audit_id)::text);
END
$$;
COMMENT ON FUNCTION secpolicy.lockout_event(bigint, text) IS
    'Internal: audit and announce that an account (or an unknown name) reached the failure limit.';
REVOKE ALL ON FUNCTION secpolicy.lockout_event(bigint, text) FROM PUBLIC;

-- Internal: the unknown-username path.  It mirrors an existing account step
-- for step (row lock, limit check, one argon2 verification against a dummy
-- hash at the policy's cost, counter update), so that neither the status
-- nor the time tells whether the account exists.
CREATE FUNCTION secpolicy.unknown_user_attempt(username text, password text) RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text := lower(left(unknown_user_attempt.username, 256));
    n integer;
    lim integer := (SELECT p.max_failed_attempts FROM secpolicy.policy p);
BEGIN
    INSERT INTO secpolicy.unknown_user_failures AS f (username_key) VALUES (k)
    ON CONFLICT (username_key) DO UPDATE SET failed_attempts = f.failed_attempts
    RETURNING f.failed_attempts INTO n;
    IF n >= lim THEN
        RETURN 'reset_required';
    END IF;
    IF NOT secpolicy.guess_begin('n:' || k, lim, n, 'an unknown username') THEN
        -- rolled-back failures reached the limit, as for an account
        UPDATE secpolicy.unknown_user_failures f SET failed_attempts = lim, last_failed_at = now()
         WHERE f.username_key = k;
        PERFORM secpolicy.lockout_event(NULL, unknown_user_attempt.username);
        RETURN 'reset_required';
    END IF;
    PERFORM secpolicy.verify_password(unknown_user_attempt.password, d.hash) FROM secpolicy.dummy_hash d;
    UPDATE secpolicy.unknown_user_failures f
       SET failed_attempts = n + 1, last_failed_at = now()
     WHERE f.username_key = k;
    IF n + 1 < lim THEN
        RETURN 'invalid_credentials';
    END IF;
    PERFORM secpolicy.lockout_event(NULL, unknown_user_attempt.username);
    RETURN 'reset_required';
END
$$;
COMMENT ON FUNCTION secpolicy.unknown_user_attempt(text, text) IS
    'Internal: answer for an unknown username exactly as for an existing account with a wrong password.';
REVOKE ALL ON FUNCTION secpolicy.unknown_user_attempt(text, text) FROM PUBLIC;

-- Internal: issue a single-use challenge after a correct password.
CREATE FUNCTION secpolicy.issue_challenge(user_id bigint, purpose text, client_addr inet, user_agent text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token text := secpolicy.random_token('spc');
    pol secpolicy.policy;
BEGIN
    SELECT * INTO pol FROM secpolicy.policy;
    INSERT INTO secpolicy.mfa_challenges (user_id, token_digest, purpose, expires_at, client_addr, user_agent)
    VALUES (issue_challenge.user_id, secpolicy.token_digest(token), issue_challenge.purpose,
            now() + CASE WHEN issue_challenge.purpose = 'enroll' THEN pol.mfa_enrollment_lifetime
                         ELSE pol.mfa_challenge_lifetime END,
            issue_challenge.client_addr, left(issue_challenge.user_agent, 512));
    RETURN token;
END
$$;
COMMENT ON FUNCTION secpolicy.issue_challenge(bigint, text, inet, text) IS
    'Internal: a challenge token (verify: policy mfa_challenge_lifetime; enroll: mfa_enrollment_lifetime).';
REVOKE ALL ON FUNCTION secpolicy.issue_challenge(bigint, text, inet, text) FROM PUBLIC;

-- Internal: the end of a complete login: the failure counter clears and a
-- session opens.
CREATE FUNCTION secpolicy.complete_login(user_id bigint, client_addr inet, user_agent text, mfa boolean)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = 0, last_login_at = now(), last_login_addr = complete_login.client_addr
     WHERE u.id = complete_login.user_id;
    PERFORM secpolicy.guess_clear('u:' || complete_login.user_id);
    RETURN secpolicy.start_session(complete_login.user_id, complete_login.client_addr,
                                   complete_login.user_agent, complete_login.mfa);
END
$$;
COMMENT ON FUNCTION secpolicy.complete_login(bigint, inet, text, boolean) IS
    'Internal: clear the failure counter, stamp the login and open a session.';
REVOKE ALL ON FUNCTION secpolicy.complete_login(bigint, inet, text, boolean) FROM PUBLIC;

CREATE FUNCTION secpolicy.mark_statement() RETURNS void
    AS 'MODULE_PATHNAME', 'secpolicy_mark_statement'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.mark_statement() IS
    'Internal: mark the running statement as carrying a secret, for the log redaction.';
REVOKE ALL ON FUNCTION secpolicy.mark_statement() FROM PUBLIC;

-- Internal: the password check that login() and change_password() share.
-- It locks the account row (FOR UPDATE: concurrent guesses on one account
-- queue here), answers an unknown name exactly as a real one, refuses at the
-- failure limit without evaluating anything, and verifies the password (an
-- account without one against the dummy hash, in the same time; an empty
-- password never passes), counting a failure.  status is 'password_ok' when
-- the password is right (the row stays locked, nothing is recorded yet, user_id
-- is set, rehash tells that the hash is of unnormalised bytes); otherwise it
-- is the answer to give, and the attempt is recorded.
CREATE FUNCTION secpolicy.authenticate(username text, password text, client_addr inet, user_agent text,
                                       stage text, OUT status text, OUT user_id bigint,
                                       OUT rehash boolean)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    u secpolicy.users;
    form text;
    refusal text;
BEGIN
    -- the statement carries a password: keep it out of the log, whatever the answer
    PERFORM secpolicy.mark_statement();
    status := 'invalid_credentials';
    IF authenticate.username IS NULL OR authenticate.username = '' OR authenticate.password IS NULL THEN
        PERFORM secpolicy.record_attempt(NULL, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false, 'invalid_input', authenticate.stage);
        RETURN;
    END IF;

    SELECT * INTO u FROM secpolicy.users x
     WHERE lower(x.username) = lower(authenticate.username) FOR UPDATE;
    IF NOT FOUND THEN
        status := secpolicy.unknown_user_attempt(authenticate.username, authenticate.password);
        PERFORM secpolicy.record_attempt(NULL, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false, 'unknown_user', authenticate.stage);
        RETURN;
    END IF;

    refusal := secpolicy.may_guess(u.id, u.failed_attempts);
    IF refusal <> 'ok' THEN
        status := 'reset_required';
        PERFORM secpolicy.record_attempt(u.id, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false, refusal, authenticate.stage);
        RETURN;
    END IF;

    -- a statement of its own, so that nothing can skip the verification
    form := secpolicy.password_match(authenticate.password,
                                     coalesce(u.password_hash, (SELECT d.hash FROM secpolicy.dummy_hash d)));
    IF form IS NULL OR u.password_hash IS NULL OR authenticate.password = '' THEN
        status := secpolicy.register_failure(u.id);
        PERFORM secpolicy.record_attempt(u.id, authenticate.username, authenticate.client_addr,
                                         authenticate.user_agent, false,
                                         CASE status WHEN 'reset_required' THEN 'lockout' ELSE 'invalid_password' END,
                                         authenticate.stage);
        RETURN;
    END IF;
    PERFORM secpolicy.guess_end('u:' || u.id);
    status := 'password_ok';
    user_id := u.id;
    rehash := form = 'as_received';
END
$$;
COMMENT ON FUNCTION secpolicy.authenticate(text, text, inet, text, text) IS
    'Internal: lock the account, check the password (or answer for an unknown name), count failures.';
REVOKE ALL ON FUNCTION secpolicy.authenticate(text, text, inet, text, text) FROM PUBLIC;

CREATE FUNCTION secpolicy.login(username text, password text, client_addr inet DEFAULT NULL,
                                user_agent text DEFAULT NULL)
    RETURNS secpolicy.login_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pol secpolicy.policy;
    u secpolicy.users;
    a record := secpolicy.authenticate(login.username, login.password, login.client_addr,
                                       login.user_agent, 'password');
    st text;
    expires timestamptz;
    enrolled boolean;
BEGIN
    IF a.status <> 'password_ok' THEN
        RETURN ROW(a.status, NULL, NULL, NULL, NULL)::secpolicy.login_result;
    END IF;
    SELECT * INTO pol FROM secpolicy.policy;
    SELECT * INTO u FROM secpolicy.users x WHERE x.id = a.user_id;

    -- the password is right: only now may the account's state show
    IF u.disabled_at IS NOT NULL OR u.reset_required THEN
        st := CASE WHEN u.disabled_at IS NOT NULL THEN 'disabled' ELSE 'reset_required' END;
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent, false, st);
        RETURN ROW(st, NULL, NULL, NULL, NULL)::secpolicy.login_result;
    END IF;

    IF a.rehash OR secpolicy.password_needs_rehash(u.password_hash) THEN
        PERFORM secpolicy.write_password(u.id, secpolicy.hash_password(login.password), 'rehash');
    END IF;

    expires := u.password_changed_at + pol.max_password_age;
    IF u.password_expired OR expires <= now() THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         false, 'password_expired');
        RETURN ROW('password_expired', u.id, NULL, NULL, least(coalesce(expires, now()), now()))::secpolicy.login_result;
    END IF;
    IF u.must_change_password THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         false, 'password_change_required');
        RETURN ROW('password_change_required', u.id, NULL, NULL, expires)::secpolicy.login_result;
    END IF;

    SELECT c.confirmed_at IS NOT NULL INTO enrolled FROM secpolicy.totp_credentials c WHERE c.user_id = u.id;
    IF coalesce(enrolled, false) THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         true, 'mfa_required');
        RETURN ROW('mfa_required', u.id, NULL,
                   secpolicy.issue_challenge(u.id, 'verify', login.client_addr, login.user_agent), expires)::secpolicy.login_result;
    ELSIF pol.require_mfa THEN
        PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent,
                                         true, 'mfa_enrollment_required');
        RETURN ROW('mfa_enrollment_required', u.id, NULL,
                   secpolicy.issue_challenge(u.id, 'enroll', login.client_addr, login.user_agent), expires)::secpolicy.login_result;
    END IF;

    PERFORM secpolicy.record_attempt(u.id, login.username, login.client_addr, login.user_agent, true, 'ok');
    RETURN ROW('ok', u.id, secpolicy.complete_login(u.id, login.client_addr, login.user_agent, false), NULL, expires)::secpolicy.login_result;
END
$$;
COMMENT ON FUNCTION secpolicy.login(text, text, inet, text) IS
    'First step of a login: checks the password under the policy and answers with a status, a session or a second-factor challenge.';
REVOKE ALL ON FUNCTION secpolicy.login(text, text, inet, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.login(text, text, inet, text) TO secpolicy_app;

-- Internal: a second-factor code as typed, in NFKC in a UTF-8 database
-- (digits and letters from a full-width keyboard or an input method are the
-- ASCII ones), without spaces and hyphens.  Codes are short: input of more
-- than 256 bytes is not normalised.
CREATE FUNCTION secpolicy.compact_code(code text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c text := coalesce(compact_code.code, '');
BEGIN
    IF octet_length(c) <= 256 AND octet_length(c) > length(c) AND getdatabaseencoding() = 'UTF8' THEN
        c := normalize(c, NFKC);
    END IF;
    RETURN regexp_replace(c, '[[:space:]-]', '', 'g');
END
$$;
COMMENT ON FUNCTION secpolicy.compact_code(text) IS
    'Internal: a second-factor code without spaces and hyphens, in NFKC in a UTF-8 database.';
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
    IF length(compact) > 64 THEN
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
                                       client_addr inet, user_agent text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text := secpolicy.register_failure(code_failure.user_id);
BEGIN
    PERFORM secpolicy.record_attempt(code_failure.user_id, code_failure.username, code_failure.client_addr,
                                     code_failure.user_agent, false,
                                     CASE st WHEN 'reset_required' THEN 'lockout' ELSE code_failure.outcome END,
                                     'mfa');
    RETURN CASE st WHEN 'reset_required' THEN 'reset_required' ELSE 'invalid_code' END;
END
$$;
COMMENT ON FUNCTION secpolicy.code_failure(bigint, text, text, inet, text) IS
    'Internal: count and record a wrong second-factor code; returns invalid_code or reset_required.';
REVOKE ALL ON FUNCTION secpolicy.code_failure(bigint, text, text, inet, text) FROM PUBLIC;

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
        RETURN ROW(CASE WHEN outcome IN ('locked', 'lockout') THEN 'reset_required' ELSE 'expired_challenge' END,
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

-- Internal: whose enrolment does a token authorise?  An enrolment challenge
-- (from login) or an active session (re-enrolment).  Returns the user id and,
-- for a challenge, its id; NULLs when the token authorises nothing.
CREATE FUNCTION secpolicy.enrollment_owner(token text, OUT user_id bigint, OUT challenge_id bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c secpolicy.mfa_challenges := secpolicy.find_challenge(enrollment_owner.token, 'enroll');
    st secpolicy.session_status;
BEGIN
    IF c.id IS NOT NULL THEN
        user_id := c.user_id;
        challenge_id := c.id;
        RETURN;
    END IF;
    st := secpolicy.session_touch(enrollment_owner.token);
    IF st.status <> 'active' THEN
        RETURN;
    END IF;
    -- replacing a factor takes a session opened with it, recently (a stolen
    -- session cookie alone must not be enough to take the factor over)
    IF EXISTS (SELECT 1 FROM secpolicy.totp_credentials t
                WHERE t.user_id = st.user_id AND t.confirmed_at IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM secpolicy.sessions s, secpolicy.policy p
                        WHERE s.user_id = st.user_id AND s.id = secpolicy.current_session_id()
                          AND s.mfa AND s.created_at > now() - p.mfa_enrollment_lifetime) THEN
        RETURN;
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
COMMENT ON FUNCTION secpolicy.totp_enroll(text) IS
    'Starts a TOTP enrolment for an enrolment challenge or an active session: a new secret and its otpauth:// URI.';
REVOKE ALL ON FUNCTION secpolicy.totp_enroll(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_enroll(text) TO secpolicy_app;

CREATE FUNCTION secpolicy.totp_confirm(token text, code text) RETURNS secpolicy.enrollment_result
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
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
        PERFORM secpolicy.record_attempt(u.id, u.username, NULL, NULL, false, 'expired_challenge', 'mfa');
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
        RETURN ROW(CASE WHEN refusal IN ('locked', 'lockout') THEN 'reset_required' ELSE 'expired_challenge' END,
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
COMMENT ON FUNCTION secpolicy.totp_confirm(text, text) IS
    'Activates the enrolment started by totp_enroll with a current code; returns recovery codes (shown once) and, after a login challenge, a session.';
REVOKE ALL ON FUNCTION secpolicy.totp_confirm(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.totp_confirm(text, text) TO secpolicy_app;
