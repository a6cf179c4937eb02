#!/usr/bin/env bash
# Scenario: every byte sequence is stored, counted and audited.  In a
# SQL_ASCII database a username that is not valid UTF-8 (bytes ff fe, then
# "nobody") fails five times and is then refused, as any name is: its
# counter reaches 5, the lockout is audited (the name's bad bytes as \xNN in
# the hash, 1.0 raised 22021 from the audit entry and stayed at 4), the
# attempts keep the bytes as typed, and the chain is intact.  An account
# created with such a name can be disabled (audited).  In a LATIN1 database a
# Latin-1 name locks and audits alike, and utf8_bytes() equals convert_to().
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

ascii=scen_sqlascii_$$
latin=scen_latin1_$$
drop_db_on_exit "$ascii"
drop_db_on_exit "$latin"
plan 8

createdb -E SQL_ASCII -T template0 --locale=C "$ascii"
createdb -E LATIN1 -T template0 --locale=C "$latin"
for d in "$ascii" "$latin"; do
    q "CREATE EXTENSION secpolicy; UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false" "$d" >/dev/null
done

bad="convert_from('\\xfffe6e6f626f6479'::bytea, 'SQL_ASCII')"
statuses=$(for i in 1 2 3 4 5 6; do q "SELECT status FROM secpolicy.login($bad, 'Wrong-Guess-$i!')" "$ascii"; done | paste -sd,)
is "$statuses" "invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required,reset_required" \
   "SQL_ASCII: a name with bytes that are not UTF-8 answers like any name, and is locked at the fifth failure"
is "$(q "SELECT failed_attempts FROM secpolicy.unknown_user_failures" "$ascii")" 5 "... its counter reaches 5"
is "$(q "SELECT count(*) FROM secpolicy.audit_log WHERE action = 'account_locked'
          AND convert_to(username, 'SQL_ASCII') = '\\xfffe6e6f626f6479'::bytea" "$ascii")" 1 \
   "... the lockout is audited, with the name as typed"
is "$(q "SELECT count(*) FROM secpolicy.login_attempts WHERE convert_to(username, 'SQL_ASCII') = '\\xfffe6e6f626f6479'::bytea" "$ascii")" 6 \
   "... every attempt is logged with the bytes as typed"
is "$(q "SELECT secpolicy.create_user($bad || '2', 'Latin-Account-11!') > 0;
          SELECT secpolicy.disable_user($bad || '2', 'left') IS NULL;
          SELECT intact FROM secpolicy.verify_audit_chain()" "$ascii" | paste -sd,)" "t,f,t" \
   "an account with such a name is created and disabled (audited), and the chain is intact"

lat="convert_from('\\xc57361'::bytea, 'LATIN1')"
statuses=$(for i in 1 2 3 4 5; do q "SELECT status FROM secpolicy.login($lat, 'Wrong-Guess-$i!')" "$latin"; done | paste -sd,)
is "$statuses" "invalid_credentials,invalid_credentials,invalid_credentials,invalid_credentials,reset_required" \
   "LATIN1: a Latin-1 name locks at the fifth failure"
is "$(q "SELECT intact FROM secpolicy.verify_audit_chain()" "$latin")" t "... audited, the chain intact"
is "$(q "SELECT secpolicy.utf8_bytes($lat) = convert_to($lat, 'UTF8')" "$latin")" t \
   "utf8_bytes() of a Latin-1 text is its UTF-8 (as convert_to gives it)"
finish
