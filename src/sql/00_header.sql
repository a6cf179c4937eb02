-- secpolicy install script.  Assembled by the Makefile from src/sql/NN_*.sql,
-- one part per concern; edit the parts, not the generated secpolicy--X.Y.sql.
-- The upgrade script into this version replays the parts' functions, views,
-- triggers, comments and grants after a hand-written migration
-- (src/upgrade/; see doc/design.md, "Releases and upgrades").
--
-- Conventions: every object is schema-qualified; every SECURITY DEFINER function
-- pins search_path to pg_catalog, pg_temp; EXECUTE is revoked from PUBLIC next
-- to each function and granted to the group roles that need it.

\echo Use "CREATE EXTENSION secpolicy" to load this file. \quit

-- Group roles.  Roles are cluster-wide: a second database reuses them, and
-- DROP EXTENSION leaves them in place.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['secpolicy_admin', 'secpolicy_app', 'secpolicy_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

REVOKE ALL ON SCHEMA secpolicy FROM PUBLIC;
GRANT USAGE ON SCHEMA secpolicy TO secpolicy_admin, secpolicy_app, secpolicy_analyst;
