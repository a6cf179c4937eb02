-- pgTAP: secpolicy.password_policy_trigger(password_col [, username_col [, history_col]])
-- on an application table: plaintext is checked and hashed on INSERT and
-- UPDATE, violations raise 22023 with the rule codes, an unchanged value and
-- NULL pass, the text[] history column holds history_depth - 1 replaced
-- hashes and reuse is refused; one- and two-argument forms; clear errors for
-- wrong column names (42703), wrong column types (42804), a wrong number of
-- arguments (22023) and a wrong trigger kind (39P01).  The last tests cover
-- a legacy table whose rows held plaintext before the trigger came, and an
-- application that rewrites the history column itself.
BEGIN;
\ir lib/helpers.psql
SELECT plan(41);
UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192;
DO $$ BEGIN PERFORM secpolicy.apply_preset('org'); END $$;
UPDATE secpolicy.policy SET history_depth = 3;

CREATE TABLE public.regress_app_accounts (
    id serial PRIMARY KEY,
    login text NOT NULL,
    pw text,
    pw_history text[],
    note text
);
CREATE TRIGGER password_policy BEFORE INSERT OR UPDATE ON public.regress_app_accounts
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'pw_history');

CREATE FUNCTION pg_temp.set_pw(l text, p text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.error_of(format('UPDATE public.regress_app_accounts SET pw = %L WHERE login = %L', p, l));
$$;
CREATE FUNCTION pg_temp.pw_of(l text) RETURNS text LANGUAGE sql AS $$
    SELECT pw FROM public.regress_app_accounts WHERE login = l;
$$;
CREATE FUNCTION pg_temp.hist_of(l text) RETURNS text[] LANGUAGE sql AS $$
    SELECT pw_history FROM public.regress_app_accounts WHERE login = l;
$$;

-- insert
INSERT INTO public.regress_app_accounts (login, pw) VALUES ('lena', 'Legacy-App-01x');
SELECT alike(pg_temp.pw_of('lena'), '$argon2id$v=19$m=8,t=1,p=1$%', 'INSERT: the plaintext is replaced by an argon2id hash');
SELECT ok(secpolicy.verify_password('Legacy-App-01x', pg_temp.pw_of('lena')), 'INSERT: the hash verifies');
SELECT is(coalesce(cardinality(pg_temp.hist_of('lena')), 0), 0, 'INSERT: the history column holds nothing');
SELECT is(pg_temp.error_of($$INSERT INTO public.regress_app_accounts (login, pw) VALUES ('mona', 'zqxvw')$$),
          '22023: rule codes: too_short, missing_upper, missing_digit, missing_symbol', 'INSERT of a weak password raises 22023');
SELECT is(pg_temp.error_of($$INSERT INTO public.regress_app_accounts (login, pw) VALUES ('mona', 'Hi-Mona-2024x')$$),
          '22023: rule codes: contains_username', 'the username column is checked');
SELECT is(pg_temp.error_of($$INSERT INTO public.regress_app_accounts (login, pw) VALUES ('mona', 'Password123!')$$),
          '22023: rule codes: common_password', 'the blocklist is checked');
INSERT INTO public.regress_app_accounts (login, pw) VALUES ('nina', NULL);
SELECT is(pg_temp.pw_of('nina'), NULL, 'a NULL password is allowed');

-- update
SELECT pg_temp.pw_of('lena') AS lena_h1 \gset
UPDATE public.regress_app_accounts SET note = 'edited' WHERE login = 'lena';
SELECT is(pg_temp.pw_of('lena'), :'lena_h1', 'an UPDATE of another column keeps the hash');
UPDATE public.regress_app_accounts SET pw = pw WHERE login = 'lena';
SELECT is(pg_temp.pw_of('lena'), :'lena_h1', 'an UPDATE that keeps the value passes unchanged');
SELECT is(pg_temp.set_pw('lena', 'zqxvw'), '22023: rule codes: too_short, missing_upper, missing_digit, missing_symbol',
          'UPDATE to a weak password raises 22023');
SELECT is(pg_temp.set_pw('lena', 'Legacy-App-01x'), '22023: rule codes: reused_password', 'the current password is refused');
SELECT is(pg_temp.set_pw('lena', 'Second-App-02x'), 'ok', 'UPDATE to a new password');
SELECT ok(pg_temp.pw_of('lena') LIKE '$argon2id$%' AND secpolicy.verify_password('Second-App-02x', pg_temp.pw_of('lena')),
          'UPDATE: the new password is hashed');
SELECT is(pg_temp.hist_of('lena'), ARRAY[:'lena_h1'], 'the history column holds the replaced hash');
SELECT is(pg_temp.set_pw('lena', 'Legacy-App-01x'), '22023: rule codes: reused_password', 'the previous password is refused');
SELECT is(pg_temp.set_pw('lena', 'Third-App-03x'), 'ok', 'a third password');
SELECT is(cardinality(pg_temp.hist_of('lena')), 2, 'history_depth 3: two replaced hashes are kept');
SELECT is(pg_temp.set_pw('lena', 'Legacy-App-01x'), '22023: rule codes: reused_password', 'two changes back is refused');
SELECT is(pg_temp.set_pw('lena', 'Fourth-App-04x'), 'ok', 'a fourth password');
SELECT is(cardinality(pg_temp.hist_of('lena')), 2, 'the history column stays at two');
SELECT is(pg_temp.set_pw('lena', 'Legacy-App-01x'), 'ok', 'three changes back is accepted again');
SELECT is((SELECT count(*) FROM public.regress_app_accounts a, unnest(a.pw_history) h WHERE h !~ '^\$argon2id\$'),
          0::bigint, 'the history column holds hashes only');
SELECT is(pg_temp.set_pw('nina', 'From-Null-Pass-1x'), 'ok', 'NULL to a password');
SELECT is(pg_temp.hist_of('nina'), '{}'::text[], 'nothing to remember after NULL');
SELECT is(pg_temp.set_pw('nina', NULL), 'ok', 'back to NULL is allowed');
UPDATE secpolicy.policy SET history_depth = 0;
SELECT is(pg_temp.set_pw('lena', 'Legacy-App-01x'), 'ok', 'history_depth 0: the current password may be set again');
SELECT is(pg_temp.hist_of('lena'), '{}'::text[], 'history_depth 0: the history column is emptied');
UPDATE secpolicy.policy SET history_depth = 3;

-- one and two arguments
CREATE TABLE public.regress_app_simple (login text, secret varchar(128));
CREATE TRIGGER password_policy BEFORE INSERT OR UPDATE ON public.regress_app_simple
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('secret');
INSERT INTO public.regress_app_simple VALUES ('olga', 'Olga-Simple-01x');
SELECT ok((SELECT secret LIKE '$argon2id$%' AND secpolicy.verify_password('Olga-Simple-01x', secret) FROM public.regress_app_simple),
          'one argument, varchar(128) column: hashed');
SELECT is(pg_temp.error_of($$UPDATE public.regress_app_simple SET secret = 'Olga-Simple-01x'$$), '22023: rule codes: reused_password',
          'without a history column the current password is still refused');
CREATE TABLE public.regress_app_two (login text, secret text);
CREATE TRIGGER password_policy BEFORE INSERT OR UPDATE ON public.regress_app_two
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('secret', 'login');
SELECT is(pg_temp.error_of($$INSERT INTO public.regress_app_two VALUES ('olga', 'Olga-Two-01x')$$), '22023: rule codes: contains_username',
          'two arguments: the username column is checked');

-- misconfigured triggers
CREATE TABLE public.regress_app_bad (login text, pw text, pw_int integer, pw_short varchar(64), hist text, n integer);
CREATE TRIGGER t_col BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('password');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw) VALUES ('x', 'Some-Pass-01x')$$, '42703', NULL,
                 'a password column that does not exist raises 42703');
DROP TRIGGER t_col ON public.regress_app_bad;
CREATE TRIGGER t_ucol BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'user_name');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw) VALUES ('x', 'Some-Pass-01x')$$, '42703', NULL,
                 'a username column that does not exist raises 42703');
DROP TRIGGER t_ucol ON public.regress_app_bad;
CREATE TRIGGER t_int BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw_int');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw_int) VALUES ('x', 1)$$, '42804', NULL,
                 'an integer password column raises 42804');
DROP TRIGGER t_int ON public.regress_app_bad;
CREATE TRIGGER t_short BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw_short');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw_short) VALUES ('x', 'Some-Pass-01x')$$, '42804', NULL,
                 'a varchar(64) column, too narrow for a hash, raises 42804');
DROP TRIGGER t_short ON public.regress_app_bad;
CREATE TRIGGER t_hist BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'hist');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw) VALUES ('x', 'Some-Pass-01x')$$, '42804', NULL,
                 'a history column that is not text[] raises 42804');
DROP TRIGGER t_hist ON public.regress_app_bad;
CREATE TRIGGER t_none BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger();
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw) VALUES ('x', 'Some-Pass-01x')$$, '22023', NULL,
                 'no arguments raises 22023');
DROP TRIGGER t_none ON public.regress_app_bad;
CREATE TRIGGER t_four BEFORE INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'hist', 'n');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw) VALUES ('x', 'Some-Pass-01x')$$, '22023', NULL,
                 'four arguments raise 22023');
DROP TRIGGER t_four ON public.regress_app_bad;
CREATE TRIGGER t_after AFTER INSERT ON public.regress_app_bad
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw');
SELECT throws_ok($$INSERT INTO public.regress_app_bad (login, pw) VALUES ('x', 'Some-Pass-01x')$$, '39P01', NULL,
                 'an AFTER trigger raises 39P01');
DROP TRIGGER t_after ON public.regress_app_bad;

-- a legacy table that held plaintext before the trigger was attached
CREATE TABLE public.regress_app_legacy (login text, pw text, pw_history text[]);
INSERT INTO public.regress_app_legacy VALUES ('pete', 'Old-Plain-Text-1x', NULL);
CREATE TRIGGER password_policy BEFORE INSERT OR UPDATE ON public.regress_app_legacy
    FOR EACH ROW EXECUTE FUNCTION secpolicy.password_policy_trigger('pw', 'login', 'pw_history');
UPDATE public.regress_app_legacy SET pw = 'New-Hashed-Pass-2y';
SELECT is((SELECT count(*) FROM public.regress_app_legacy a, unnest(a.pw_history) h WHERE h !~ '^\$argon2id\$'),
          0::bigint, 'legacy: the replaced plaintext is not kept in the history column');
SELECT is(pg_temp.error_of($$UPDATE public.regress_app_legacy SET pw = 'Old-Plain-Text-1x'$$), '22023: rule codes: reused_password',
          'legacy: the replaced plaintext password cannot be set again');


-- the history column is the trigger's: an application that empties it must not get reuse through
INSERT INTO public.regress_app_legacy (login, pw) VALUES ('quin', 'Quail-Pass-01x');
UPDATE public.regress_app_legacy SET pw = 'Quail-Pass-02x' WHERE login = 'quin';
UPDATE public.regress_app_legacy SET pw_history = '{}' WHERE login = 'quin';
SELECT is(pg_temp.error_of($$UPDATE public.regress_app_legacy SET pw = 'Quail-Pass-01x' WHERE login = 'quin'$$),
          '22023: rule codes: reused_password', 'emptying the history column first does not allow reuse');

SELECT * FROM finish();
ROLLBACK;
