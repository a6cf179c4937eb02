#!/usr/bin/env bash
# Scenario: no password or token reaches the server log through an
# application's wrapper of a flow or a prepared statement with a quoted
# name, with the library loaded in the backend only (a first secpolicy call,
# or session_preload_libraries; the cluster is not restarted).  With
# log_min_duration_statement = 0 (ALTER SYSTEM, restored at the end): a SQL
# wrapper public.app_login(u, p) calling secpolicy.login (right and wrong
# password, unknown name) and EXECUTE of prepared statements with quoted
# names ("Auth", and one with a doubled quote) log no password, their lines
# carry the marker instead; the same with log_statement = all.  Last, two
# wrappers of a flow that answers early (the flow marks its statement first):
# app_login on a locked account, and a wrapper of session_touch (no session
# token in the log).
# Every route with the library preloaded: log_redaction_routes.sh.
# Environment (scripts/test): PGHOST/PGPORT/PGUSER of a superuser, SP_TMP.
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_log_wrappers_$$
work=$(mktemp -d "${TMPDIR:-/tmp}/scen_log_wrappers.XXXXXX")
at_exit 'rm -rf "$work"'
RUN=$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
MARK='[redacted by secpolicy]'
PW='Quartz-Lantern-47!'

restore_log_settings() { alter_system "RESET log_min_duration_statement" "RESET log_statement"; }
preloaded() { PGOPTIONS='-c session_preload_libraries=secpolicy' psql -X -q -At -d "$db" "$@" 2>&1; }
auth='PREPARE "Auth"(text, text) AS SELECT status FROM secpolicy.login($1, $2)'
quoted='PREPARE "Sign ""In"" Now"(text, text) AS SELECT status FROM secpolicy.login($1, $2)'

plan 9

setup_db
setup_sql "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false,
                  max_failed_attempts = 5;
           SELECT secpolicy.create_user('lg_user', 'Zq${RUN}Lg-Right!7') > 0, secpolicy.create_user('lg_locked', '$PW') > 0,
                  secpolicy.create_user('lg_sess', '$PW') > 0;
           SELECT count(*) FROM generate_series(1, 5) i, secpolicy.login('lg_locked', 'wrong-guess-' || i);
           CREATE FUNCTION public.app_login(u text, p text) RETURNS text LANGUAGE sql AS
               \$\$ SELECT status FROM secpolicy.login(u, p) \$\$;
           CREATE FUNCTION public.app_touch(t text) RETURNS text LANGUAGE sql AS
               \$\$ SELECT status FROM secpolicy.session_touch(t) \$\$;"
sess_token=$(q "SELECT session_token FROM secpolicy.login('lg_sess', '$PW')")
at_exit restore_log_settings
alter_system "SET log_min_duration_statement = 0" "SET log_statement = 'none'"

off=$(log_offset)
res=$(psql -X -q -At -d "$db" -c "SELECT secpolicy.password_needs_rehash('x') IS NOT NULL" \
          -c "SELECT app_login('lg_user', 'Zq${RUN}Lg-Right!7')" \
          -c "SELECT app_login('lg_user', '$(sec a2)')" \
          -c "SELECT app_login('Lg_Nobody_$RUN', '$(sec a3)')" 2>&1 | tr '\n' ' ')
is "$res" "t ok invalid_credentials invalid_credentials " \
   "app_login(u, p), a SQL wrapper of login, ran (right, wrong password, unknown name; library loaded first)"
sleep 0.3
is "$(found_in_log "$off" "Zq${RUN}Lg-Right" "$(needle a2)" "$(needle a3)")" "" \
   "with log_min_duration_statement = 0 no password passed to the wrapper is logged"
n=$(log_since "$off" | grep -cF "statement: $MARK")
ok "$([ "$n" -ge 3 ] && echo 1)" "the wrapper's duration lines carry the marker instead" "markers: $n"

off=$(log_offset)
res=$(preloaded -c "$auth" -c "EXECUTE \"Auth\"('lg_user', '$(sec a4)')" \
          -c "EXECUTE \"Auth\"('lg_locked', '$(sec a5)')" \
          -c "$quoted" -c "EXECUTE \"Sign \"\"In\"\" Now\"('lg_locked', '$(sec a6)')" | tr '\n' ' ')
is "$res" "invalid_credentials reset_required reset_required " \
   "EXECUTE of prepared statements with quoted names ran (preloaded)"
sleep 0.3
is "$(found_in_log "$off" "$(needle a4)" "$(needle a5)" "$(needle a6)")" "" \
   "EXECUTE \"Auth\"(...) and EXECUTE \"Sign \"\"In\"\" Now\"(...): no password in the duration lines"

alter_system "SET log_statement = 'all'"
off=$(log_offset)
res=$(preloaded -c "$auth" -c "EXECUTE \"Auth\"('lg_locked', '$(sec a7)')" \
          -c "EXECUTE \"Auth\"('lg_user', '$(sec a8)')" | tr '\n' ' ')
sleep 0.3
is "$res|$(found_in_log "$off" "$(needle a7)" "$(needle a8)")" "reset_required invalid_credentials |" \
   "with log_statement = all too, EXECUTE \"Auth\"(...) logs no password"
n=$(log_since "$off" | grep -cF "statement: $MARK")
ok "$([ "$n" -ge 3 ] && echo 1)" "its statement lines (PREPARE, both EXECUTEs) carry the marker" "markers: $n"
alter_system "SET log_statement = 'none'"

# Wrappers of a flow that answers early: the flow marks its statement first.
off=$(log_offset)
res=$(preloaded -c "SELECT app_login('lg_locked', '$(sec a9)')" -c "SELECT app_touch('$sess_token')" | tr '\n' ' ')
sleep 0.3
is "$res|$(found_in_log "$off" "$(needle a9)")" "reset_required active |" \
   "app_login on a locked account logs no password"
is "${sess_token:0:4}|$(found_in_log "$off" "$sess_token")" "sps_|" \
   "a SQL wrapper of session_touch logs no session token"
restore_log_settings

finish
