#!/usr/bin/env bash
# Scenario: interoperability with the reference implementation of argon2
# (Debian's `argon2` command-line tool, package argon2).
#   - PHC strings the reference tool encodes verify in secpolicy.verify_password
#     with the right password and fail with a wrong one, across costs
#     (t = 1..3, 8 KiB .. 64 MiB, 1, 2 and 4 lanes), salt and hash lengths,
#     and a UTF-8 password;
#   - what is not argon2id v1.3 (argon2i, argon2d, version 1.0) or claims a
#     cost beyond the limits verifies false without an error;
#   - password_needs_rehash tells a foreign cost from the policy's;
#   - the other way round, the reference tool recomputes a hash made by
#     secpolicy.hash_password from its salt, byte for byte;
#   - import_password_hash takes a reference hash (4 lanes, t = 3), login
#     accepts the password, rehashes it at the policy's cost and keeps the
#     password's age and history; non-argon2id strings are refused (22023);
#   - Unicode: a reference hash of unnormalised (NFD) bytes logs in with those
#     bytes only, until the login's rehash stores the NFKC form; in a
#     SQL_ASCII database passwords are used as received.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test); the argon2
# command (scripts/common.sh installs package argon2).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

db=scen_argon2_interop_$$
export PGCLIENTENCODING=UTF8

# Like q, but an error prints only its SQLSTATE.
q_state() { psql -X -q -At -v VERBOSITY=sqlstate -d "$db" -c "$1" 2>&1 | sed 's/^ERROR: *//'; }

# The reference tool's encoded hash of password $1 with salt $2 and options.
ref() { local pw=$1 salt=$2; shift 2; printf '%s' "$pw" | argon2 "$salt" "$@" -e; }
verify() { q "SELECT secpolicy.verify_password('$1', '$2')"; }

plan 31

if ! command -v argon2 >/dev/null; then
    echo "Bail out! the argon2 command is missing (apt-get install argon2)"
    exit 1
fi
setup_db
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = false" >/dev/null

PW='Interop-Pass!42'
WRONG='Interop-Pass!43'
UPW='Pässwörd-ΩΣ-日本!9'

# --- reference hashes verify -------------------------------------------------
h=$(ref "$PW" somesalt -id -t 2 -k 8192 -p 1)
is "${h:0:30}" '$argon2id$v=19$m=8192,t=2,p=1$' "the reference tool encodes argon2id v=19 PHC strings"
is "$(verify "$PW" "$h")" t "t=2, 8 MiB, 1 lane: right password verifies"
is "$(verify "$WRONG" "$h")" f "t=2, 8 MiB, 1 lane: wrong password does not"
h4=$(ref "$PW" somesalt -id -t 3 -k 16384 -p 4)
is "$(verify "$PW" "$h4")" t "t=3, 16 MiB, 4 lanes: right password verifies"
is "$(verify "$WRONG" "$h4")" f "t=3, 16 MiB, 4 lanes: wrong password does not"
h=$(ref "$PW" somesalt -id -t 1 -m 16 -p 2)
is "$(verify "$PW" "$h")" t "t=1, 64 MiB (-m 16), 2 lanes: right password verifies"
h=$(ref "$PW" somesalt -id -t 1 -k 8 -p 1)
is "$(verify "$PW" "$h")" t "t=1, 8 KiB (libsodium's minimum): right password verifies"
h=$(ref "$PW" 'a-much-longer-salt-of-32-bytes!!' -id -t 1 -k 64 -p 1)
is "$(verify "$PW" "$h")" t "a 32-byte salt verifies"
h=$(ref "$PW" somesalt -id -t 1 -k 64 -p 1 -l 16)
is "$(verify "$PW" "$h")|$(verify "$WRONG" "$h")" "t|f" "a 16-byte hash output verifies (and only with the right password)"
h=$(ref "$PW" somesalt -id -t 1 -k 64 -p 1 -l 64)
is "$(verify "$PW" "$h")|$(verify "$WRONG" "$h")" "t|f" "a 64-byte hash output verifies (and only with the right password)"
h=$(ref "$UPW" somesalt -id -t 1 -k 64 -p 1)
is "$(verify "$UPW" "$h")" t "a UTF-8 password verifies (same bytes hashed)"

# --- what is not argon2id v1.3, or costs too much: false, never an error ----
is "$(verify "$PW" "$(ref "$PW" somesalt -i -t 1 -k 64)")" f "argon2i: false"
is "$(verify "$PW" "$(ref "$PW" somesalt -d -t 1 -k 64)")" f "argon2d: false"
is "$(verify "$PW" "$(ref "$PW" somesalt -id -t 1 -k 64 -v 10)")" f "argon2id version 1.0 (v=16): false"
base=$(ref "$PW" somesalt -id -t 1 -k 64 -p 1)
is "$(verify "$PW" "${base/m=64,/m=2097152,}")" f "a string claiming 2 GiB of memory: false (not computed)"
is "$(verify "$PW" "${base/t=1,/t=17,}")|$(verify "$PW" "${base/p=1\$/p=17\$}")" "f|f" \
   "a string claiming t=17 or 17 lanes: false"
is "$(verify "$PW" "${base:0:40}")" f "a truncated string: false"

# --- needs_rehash ---------------------------------------------------------
is "$(q "SELECT secpolicy.password_needs_rehash('$h4')")" t "a reference hash at a foreign cost needs a rehash"
is "$(q "SELECT secpolicy.password_needs_rehash('$(ref "$PW" somesalt -id -t 1 -k 8 -p 1)')")" f \
   "a reference hash at exactly the policy's cost (t=1, 8 KiB) does not"

# --- the other way: the reference tool recomputes secpolicy's hash ----------
for ((i = 0; i < 30; i++)); do
    # a hash whose 16-byte salt has no NUL byte (it must pass through argv)
    row=$(q "SELECT h, encode(decode(split_part(h, '\$', 5) || '==', 'base64'), 'hex')
               FROM (SELECT secpolicy.hash_password('$PW') AS h) s")
    sp_hash=${row%%|*}
    salt_hex=${row#*|}
    if ! [[ $salt_hex =~ ^([0-9a-f]{2})*$ ]] || ! echo "$salt_hex" | grep -Eq '^(..)*00'; then break; fi
done
printf -v salt '%b' "$(echo "$salt_hex" | sed 's/../\\x&/g')"
is "$(ref "$PW" "$salt" -id -t 1 -k 8 -p 1)" "$sp_hash" \
   "the reference tool recomputes secpolicy.hash_password's string from its salt, byte for byte"

# --- import a reference hash, log in, get rehashed --------------------------
q "SELECT secpolicy.create_user('migrant', 'Original-Pass!7')" >/dev/null
is "$(q_state "SELECT secpolicy.import_password_hash('migrant', '$h4', 'migrated from the old system')")" "" \
   "import_password_hash accepts the reference hash (t=3, 4 lanes)"
before=$(q "SELECT password_changed_at, (SELECT count(*) FROM secpolicy.password_history h WHERE h.user_id = u.id)
              FROM secpolicy.users u WHERE username = 'migrant'")
is "$(q "SELECT status FROM secpolicy.login('migrant', '$WRONG')")|$(q "SELECT password_hash FROM secpolicy.users WHERE username = 'migrant'")" \
   "invalid_credentials|$h4" "a wrong password is refused and the imported hash stays"
is "$(q "SELECT status FROM secpolicy.login('migrant', '$PW')")" ok "login accepts the password of the imported hash"
new=$(q "SELECT password_hash FROM secpolicy.users WHERE username = 'migrant'")
is "${new:0:27}|$(q "SELECT secpolicy.password_needs_rehash('$new')")" '$argon2id$v=19$m=8,t=1,p=1$|f' \
   "login rehashed it at the policy's cost"
is "$(verify "$PW" "$new")|$(verify "$WRONG" "$new")" "t|f" "the new hash verifies the same password only"
is "$(q "SELECT password_changed_at, (SELECT count(*) FROM secpolicy.password_history h WHERE h.user_id = u.id)
           FROM secpolicy.users u WHERE username = 'migrant'")" "$before" \
   "the rehash keeps the password's age and history"
is "$(q "SELECT status FROM secpolicy.login('migrant', '$PW')")|$(q "SELECT password_hash FROM secpolicy.users WHERE username = 'migrant'")" \
   "ok|$new" "the next login verifies the new hash and leaves it alone"
is "$(q_state "SELECT secpolicy.import_password_hash('migrant', '$(ref "$PW" somesalt -i -t 1 -k 64)')")|$(q_state "SELECT secpolicy.import_password_hash('migrant', '$(ref "$PW" somesalt -id -t 1 -k 64 -v 10)')")" \
   "22023|22023" "argon2i and argon2id v1.0 hashes are refused with 22023"

# --- Unicode: NFKC in a UTF-8 database, bytes as received in another -------
NFC=$'caf\xc3\xa9-Horse-42!'     # precomposed U+00E9
NFD=$'cafe\xcc\x81-Horse-42!'    # e + combining acute U+0301
hd=$(ref "$NFD" somesalt -id -t 1 -k 64 -p 1)
q "SELECT secpolicy.create_user('zoe', 'Original-Pass!7')" >/dev/null
q "SELECT secpolicy.import_password_hash('zoe', '$hd')" >/dev/null
is "$(q "SELECT status FROM secpolicy.login('zoe', '$NFC')")|$(q "SELECT status FROM secpolicy.login('zoe', '$NFD')")" \
   "invalid_credentials|ok" \
   "a reference hash of unnormalised (NFD) bytes: only those bytes log in"
is "$(q "SELECT status FROM secpolicy.login('zoe', '$NFC')")|$(verify "$NFC" "$(q "SELECT password_hash FROM secpolicy.users WHERE username = 'zoe'")")" \
   "ok|t" "the login rehashed the NFKC form: now either spelling logs in"
adb=${db}_ascii
drop_db_on_exit "$adb"
if createdb -E SQL_ASCII -T template0 --locale=C "$adb" && q "CREATE EXTENSION secpolicy" "$adb" >/dev/null &&
   q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192" "$adb" >/dev/null; then
    is "$(q "SELECT h = '$hd', secpolicy.verify_password('$NFD', h), secpolicy.verify_password('$NFC', h),
                    secpolicy.verify_password('$NFD', '$hd'), secpolicy.verify_password('$NFC', '$hd')
               FROM (SELECT secpolicy.hash_password('$NFD') AS h) x" "$adb")" "f|t|f|t|f" \
       "in a SQL_ASCII database passwords are hashed and verified as received (no normalisation)"
else
    fail "a SQL_ASCII database with secpolicy"
fi

finish
