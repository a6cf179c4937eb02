-- Lockout: the failure counter of accounts and unknown usernames, the ledger
-- of guesses in shared memory, and the announcement of a lockout.
--
-- Flows return a status instead of raising, so that the failure counter and
-- the attempt row commit with the caller's statement: call them in
-- autocommit (a caller that rolls back its own transaction also rolls back
-- its own failure; the ledger still counts it when the library is
-- preloaded).  Every flow locks the account row (FOR UPDATE) before it
-- evaluates a guess, so concurrent guesses on one account are serialised and
-- never more than max_failed_attempts of them are evaluated.

-- The ledger of guesses in shared memory (src/ledger.c; active when secpolicy
-- is in shared_preload_libraries): a caller's ROLLBACK cannot erase what it
-- counts.  Keys: 'u:<user id>' for accounts, 'r:<reset id>' for reset tokens,
-- 'n:<lower-cased name>' for unknown usernames.
CREATE FUNCTION secpolicy.guess_check(key text, lim integer, committed integer, label text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_guess_check'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.guess_check(text, integer, integer, text) IS
    'Internal: count a guess in the shared-memory ledger before it is evaluated: ok; limit (at the failure limit); full (no room: refused).';
REVOKE ALL ON FUNCTION secpolicy.guess_check(text, integer, integer, text) FROM PUBLIC;

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

CREATE FUNCTION secpolicy.ledger_status(OUT active boolean, OUT size integer, OUT used integer,
                                        OUT pinned integer)
    AS 'MODULE_PATHNAME', 'secpolicy_ledger_status'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.ledger_status() IS
    'How full the guess ledger is: entries in use, and pinned ones (holding guesses a caller rolled back; when a neighbourhood is all pinned, guesses there are refused).';
REVOKE ALL ON FUNCTION secpolicy.ledger_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.ledger_status() TO secpolicy_admin;

-- Internal: lock an account out (its row locked by the caller): a reset is
-- required, its sessions end, and the lockout is audited and announced.
CREATE FUNCTION secpolicy.lock_account(user_id bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text;
    lim integer := (SELECT p.max_failed_attempts FROM secpolicy.policy p);
BEGIN
    UPDATE secpolicy.users u
       SET failed_attempts = greatest(u.failed_attempts, lim),
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
-- out now; 'ledger_full' when the ledger has no room to count the guess
-- (refused, the account stays as it is).  The answer is also the outcome to
-- record.
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
    CASE secpolicy.guess_check('u:' || user_id, lim, failed, 'account ' || user_id)
        WHEN 'ok' THEN
            RETURN 'ok';
        WHEN 'limit' THEN
            PERFORM secpolicy.lock_account(user_id);
            RETURN 'lockout';
        ELSE
            RETURN 'ledger_full';
    END CASE;
END
$$;
COMMENT ON FUNCTION secpolicy.may_guess(bigint, integer, boolean) IS
    'Internal: ok, or locked / lockout when the account is at the failure limit (in the table, or now in the ledger), or ledger_full.';
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
    -- on a distributed installation, where the name's account would live
    ak bigint := CASE WHEN secpolicy.distributed() THEN secpolicy.account_key(unknown_user_attempt.username) END;
    n integer;
    lim integer := (SELECT p.max_failed_attempts FROM secpolicy.policy p);
BEGIN
    INSERT INTO secpolicy.unknown_user_failures AS f (username_key, account_key) VALUES (k, ak)
    ON CONFLICT ON CONSTRAINT unknown_user_failures_pkey DO UPDATE SET failed_attempts = f.failed_attempts
    RETURNING f.failed_attempts INTO n;
    IF n >= lim THEN
        RETURN 'reset_required';
    END IF;
    CASE secpolicy.guess_check('n:' || k, lim, n, 'an unknown username')
        WHEN 'ok' THEN
            NULL;
        WHEN 'limit' THEN
            -- rolled-back failures reached the limit, as for an account
            UPDATE secpolicy.unknown_user_failures f SET failed_attempts = lim, last_failed_at = now()
             WHERE f.username_key = k AND (ak IS NULL OR f.account_key = ak);
            PERFORM secpolicy.lockout_event(NULL, unknown_user_attempt.username);
            RETURN 'reset_required';
        ELSE
            RETURN 'reset_required';    -- no room in the ledger: refused, as for an account
    END CASE;
    PERFORM secpolicy.verify_password(unknown_user_attempt.password, d.hash) FROM secpolicy.dummy_hash d;
    UPDATE secpolicy.unknown_user_failures f
       SET failed_attempts = n + 1, last_failed_at = now()
     WHERE f.username_key = k AND (ak IS NULL OR f.account_key = ak);
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
