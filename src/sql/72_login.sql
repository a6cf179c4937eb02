-- Login: the password check that login() and change_password() share, and
-- login() itself, which answers with a session or a second-factor challenge.

CREATE TYPE secpolicy.login_result AS (
    status text, user_id bigint, session_token text, challenge_token text,
    password_expires_at timestamptz);
COMMENT ON TYPE secpolicy.login_result IS
    'Result of login(): status ok, mfa_required, mfa_enrollment_required, password_expired, password_change_required, invalid_credentials, reset_required or disabled.';

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

CREATE FUNCTION secpolicy.redacted_functions() RETURNS text[]
    AS 'MODULE_PATHNAME', 'secpolicy_redacted_functions'
    LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION secpolicy.redacted_functions() IS
    'The function names whose calls the log redaction hides: the extension''s own and those of secpolicy.redact_functions (wrappers that call them directly are found by reading their bodies).';
REVOKE ALL ON FUNCTION secpolicy.redacted_functions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.redacted_functions() TO secpolicy_admin;

CREATE FUNCTION secpolicy.catalog_reads(OUT relation text, OUT column_name text, OUT type text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'secpolicy_catalog_reads'
    LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION secpolicy.catalog_reads() IS
    'The columns (and an index) of the extension''s tables that its C code reads by name, with their types; a test checks them against the catalog.';
REVOKE ALL ON FUNCTION secpolicy.catalog_reads() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.catalog_reads() TO secpolicy_admin;

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
    PERFORM secpolicy.require_writable(CASE authenticate.stage WHEN 'password' THEN 'login' ELSE authenticate.stage END);
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
