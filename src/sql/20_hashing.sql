-- Building blocks in C: argon2id hashes, the password rules, tokens.

CREATE FUNCTION secpolicy.hash_password(password text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_hash_password'
    LANGUAGE C STRICT VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.hash_password(text) IS
    'argon2id PHC string of a password, at the cost set in secpolicy.policy.';
REVOKE ALL ON FUNCTION secpolicy.hash_password(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.hash_password(text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.verify_password(password text, hash text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_verify_password'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.verify_password(text, text) IS
    'Constant-time argon2id verification; false (never an error) for NULLs and malformed hashes.';
REVOKE ALL ON FUNCTION secpolicy.verify_password(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.verify_password(text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.password_match(password text, hash text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_password_match'
    LANGUAGE C CALLED ON NULL INPUT VOLATILE;
COMMENT ON FUNCTION secpolicy.password_match(text, text) IS
    'Like verify_password, but tells how: NULL (no match), nfkc, or as_received (a hash of unnormalised bytes: rehash it).';
REVOKE ALL ON FUNCTION secpolicy.password_match(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_match(text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.password_needs_rehash(hash text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_password_needs_rehash'
    LANGUAGE C STRICT STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.password_needs_rehash(text) IS
    'True unless the hash is a well-formed argon2id string at exactly the policy''s cost.';
REVOKE ALL ON FUNCTION secpolicy.password_needs_rehash(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_needs_rehash(text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.password_violations(password text, username text DEFAULT NULL)
    RETURNS text[]
    AS 'MODULE_PATHNAME', 'secpolicy_password_violations'
    LANGUAGE C CALLED ON NULL INPUT STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION secpolicy.password_violations(text, text) IS
    'Rule codes the password breaks under the policy; empty when acceptable, NULL for a NULL password.';
REVOKE ALL ON FUNCTION secpolicy.password_violations(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.password_violations(text, text) TO secpolicy_app, secpolicy_admin;

CREATE FUNCTION secpolicy.hash_stats(OUT hashes bigint, OUT verifications bigint, OUT slot_waits bigint)
    AS 'MODULE_PATHNAME', 'secpolicy_hash_stats'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.hash_stats() IS
    'argon2 computations done by this backend, and how often one waited for a free hashing slot.';
REVOKE ALL ON FUNCTION secpolicy.hash_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.hash_stats() TO secpolicy_admin;

-- Internal: tokens for sessions, challenges and resets, and their digests.
CREATE FUNCTION secpolicy.random_token(prefix text) RETURNS text
    AS 'MODULE_PATHNAME', 'secpolicy_random_token'
    LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION secpolicy.random_token(text) IS
    'Internal: "<prefix>_" and 256 CSPRNG bits in base64url.';
REVOKE ALL ON FUNCTION secpolicy.random_token(text) FROM PUBLIC;

CREATE FUNCTION secpolicy.token_digest(token text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'secpolicy_token_digest'
    LANGUAGE C STRICT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.token_digest(text) IS
    'Internal: SHA-256 of a token, the only form in which tokens are stored.';
REVOKE ALL ON FUNCTION secpolicy.token_digest(text) FROM PUBLIC;

-- The organisation's own blocked words (company and product names, ...):
-- a password containing one of them breaks the common_password rule.
CREATE TABLE secpolicy.password_blocklist (
    word text PRIMARY KEY
        CHECK (word = pg_catalog.lower(word) AND pg_catalog.char_length(word) >= 3),
    added_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by text NOT NULL DEFAULT SESSION_USER
);
COMMENT ON TABLE secpolicy.password_blocklist IS
    'Organisation-specific blocked words (stored lower-cased, 3+ characters), matched anywhere in a password.';
SELECT pg_catalog.pg_extension_config_dump('secpolicy.password_blocklist', '');

-- Passwords are judged lower-cased and in NFKC (normalize.c), so words are
-- stored so too: a word typed capitalised, decomposed or full-width matches.
CREATE FUNCTION secpolicy.blocklist_nfkc() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF getdatabaseencoding() = 'UTF8' THEN
        NEW.word := normalize(NEW.word, NFKC);
    END IF;
    NEW.word := lower(NEW.word);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION secpolicy.blocklist_nfkc() IS
    'Trigger: stores organisation blocklist words lower-cased and in NFKC (in a UTF-8 database).';
REVOKE ALL ON FUNCTION secpolicy.blocklist_nfkc() FROM PUBLIC;
CREATE TRIGGER password_blocklist_nfkc BEFORE INSERT OR UPDATE OF word ON secpolicy.password_blocklist
    FOR EACH ROW EXECUTE FUNCTION secpolicy.blocklist_nfkc();
GRANT SELECT, INSERT, DELETE ON secpolicy.password_blocklist TO secpolicy_admin;

-- The hash that unknown usernames are verified against, so that they take as
-- long as a wrong password.  Refreshed whenever the hash cost changes.
CREATE TABLE secpolicy.dummy_hash (
    singleton boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    hash text NOT NULL
);
COMMENT ON TABLE secpolicy.dummy_hash IS
    'Internal: an argon2id hash of a random secret at the policy''s cost, for unknown usernames.';

CREATE FUNCTION secpolicy.refresh_dummy_hash() RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO secpolicy.dummy_hash (singleton, hash)
    VALUES (true, secpolicy.hash_password(secpolicy.random_token('dummy')))
    ON CONFLICT (singleton) DO UPDATE SET hash = EXCLUDED.hash;
$$;
COMMENT ON FUNCTION secpolicy.refresh_dummy_hash() IS
    'Internal: recompute the dummy hash at the current cost.';
REVOKE ALL ON FUNCTION secpolicy.refresh_dummy_hash() FROM PUBLIC;

SELECT secpolicy.refresh_dummy_hash();

CREATE FUNCTION secpolicy.policy_cost_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.hash_opslimit OPERATOR(pg_catalog.<>) OLD.hash_opslimit
       OR NEW.hash_memlimit OPERATOR(pg_catalog.<>) OLD.hash_memlimit THEN
        PERFORM secpolicy.refresh_dummy_hash();
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION secpolicy.policy_cost_changed() IS
    'Trigger: keeps the dummy hash at the policy''s hash cost.';
REVOKE ALL ON FUNCTION secpolicy.policy_cost_changed() FROM PUBLIC;
CREATE TRIGGER policy_cost_changed AFTER INSERT OR UPDATE ON secpolicy.policy
    FOR EACH ROW EXECUTE FUNCTION secpolicy.policy_cost_changed();

-- Routing on a distributed installation (Citus: src/citus.c, 97_citus.sql).
-- There an account lives on the worker owning the shard of its user id, and
-- its user id is the account key of its username; tokens issued there end in
-- ".<account key>", so that a flow given a username or a token knows where
-- the account lives.  On a single node nothing of this is used.
CREATE FUNCTION secpolicy.distributed() RETURNS boolean
    AS 'MODULE_PATHNAME', 'secpolicy_distributed'
    LANGUAGE C STRICT STABLE;
COMMENT ON FUNCTION secpolicy.distributed() IS
    'Are this database''s secpolicy tables distributed (Citus, secpolicy.distribute())?';
REVOKE ALL ON FUNCTION secpolicy.distributed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.distributed() TO secpolicy_admin;

CREATE FUNCTION secpolicy.account_key(username text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_account_key'
    LANGUAGE C CALLED ON NULL INPUT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.account_key(text) IS
    'The account key of a username: the first 8 bytes of SHA-256 of its first 256 characters lower-cased, a positive bigint (0 for NULL); a distributed installation''s user id.';
REVOKE ALL ON FUNCTION secpolicy.account_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION secpolicy.account_key(text) TO secpolicy_admin;

CREATE FUNCTION secpolicy.route_key(suffix text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'secpolicy_route_key'
    LANGUAGE C CALLED ON NULL INPUT IMMUTABLE;
COMMENT ON FUNCTION secpolicy.route_key(text) IS
    'Internal: the account key written after the last "." of a token (the caller passes those digits only); 0 for anything else.';
REVOKE ALL ON FUNCTION secpolicy.route_key(text) FROM PUBLIC;

-- Internal: a token for an account: on a distributed installation it names
-- the account's key after a ".", which its digest covers like the rest.
CREATE FUNCTION secpolicy.account_token(prefix text, user_id bigint) RETURNS text
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT secpolicy.random_token(prefix)
           || CASE WHEN secpolicy.distributed() THEN '.' || user_id::text ELSE '' END;
$$;
COMMENT ON FUNCTION secpolicy.account_token(text, bigint) IS
    'Internal: "<prefix>_" and 256 CSPRNG bits in base64url, and on a distributed installation ".<account key>".';
REVOKE ALL ON FUNCTION secpolicy.account_token(text, bigint) FROM PUBLIC;
