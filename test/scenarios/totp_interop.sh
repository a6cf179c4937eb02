#!/usr/bin/env bash
# Scenario: secpolicy's TOTP interoperates with an independent implementation,
# Debian's oathtool (OATH Toolkit):
#   1. a user enrols through the flows (login -> totp_enroll -> totp_confirm);
#      the otpauth URI's parameters are fed to oathtool, whose current code
#      confirms the enrolment and whose next code passes verify_mfa; the same
#      oathtool code a second time is rejected; a code from secpolicy's
#      totp_code for the enrolled secret is accepted by oathtool's validator;
#   2. the same with the policy set to sha256/8 digits/60 s and to
#      sha512/7 digits/45 s (oathtool --totp=SHA256/SHA512 -d -s);
#   3. totp_code equals oathtool -N @t for random 20/32/64-byte secrets
#      (base32 from coreutils), every algorithm, 6/7/8 digits, periods 30 and
#      60, and many times (fixed, now, random); totp_match returns floor(t /
#      period) for oathtool's codes.
# Environment: PGHOST/PGPORT/PGUSER of a superuser (scripts/test).
set -u -o pipefail
# shellcheck source=lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# shellcheck disable=SC2034  # (lib.bash's q and setup_db use it)
db=scen_totp_interop_$$

plan 35

if ! command -v oathtool >/dev/null; then
    for ((i = 1; i <= 35; i++)); do echo "not ok $i - oathtool is not installed"; done
    exit 1
fi

setup_db
q "UPDATE secpolicy.policy SET hash_opslimit = 1, hash_memlimit = 8192, require_mfa = true,
          totp_window = 1, totp_issuer = 'Interop Test'" >/dev/null
PW='Quartz-Lantern-47!'

# value of query parameter $2 in URI $1
uri_param() { sed -n "s/.*[?&]$2=\([^&]*\).*/\1/p" <<<"$1"; }

# Enrol user $1 with oathtool under the current policy; checks the URI
# against $2 (ALGORITHM), $3 (digits), $4 (period).  Leaves SECRET set.
enrol_with_oathtool() {
    local user=$1 alg=$2 digits=$3 period=$4 ch row uri code st
    q "SELECT secpolicy.create_user('$user', '$PW')" >/dev/null
    ch=$(q "SELECT challenge_token FROM secpolicy.login('$user', '$PW')")
    row=$(q "SELECT secret || ' ' || otpauth_uri FROM secpolicy.totp_enroll('$ch')")
    SECRET=${row%% *}
    uri=${row#* }
    is "$(uri_param "$uri" secret)|$(uri_param "$uri" algorithm)|$(uri_param "$uri" digits)|$(uri_param "$uri" period)|$(uri_param "$uri" issuer)" \
       "$SECRET|$alg|$digits|$period|Interop%20Test" \
       "$user: otpauth URI carries secret, algorithm $alg, digits $digits, period $period, issuer"
    # confirm with oathtool's current code, parameters taken from the URI
    code=$(oathtool --totp="$(uri_param "$uri" algorithm)" -b -d "$(uri_param "$uri" digits)" \
                    -s "$(uri_param "$uri" period)s" "$(uri_param "$uri" secret)")
    st=$(q "SELECT status FROM secpolicy.totp_confirm('$ch', '$code')")
    is "$st" ok "$user: totp_confirm accepts oathtool's current code"
    # log in: oathtool's code for the next period (the current one is spent)
    ch=$(q "SELECT challenge_token FROM secpolicy.login('$user', '$PW')")
    code=$(oathtool --totp="$alg" -b -d "$digits" -s "${period}s" -N "@$(($(date +%s) + period))" "$SECRET")
    st=$(q "SELECT status FROM secpolicy.verify_mfa('$ch', '$code')")
    is "$st" ok "$user: verify_mfa accepts oathtool's next code"
    ch=$(q "SELECT challenge_token FROM secpolicy.login('$user', '$PW')")
    st=$(q "SELECT status FROM secpolicy.verify_mfa('$ch', '$code')")
    is "$st" invalid_code "$user: the same oathtool code a second time is invalid_code"
    is "$(q "SELECT outcome FROM secpolicy.login_attempts WHERE username = '$user' ORDER BY id DESC LIMIT 1")" \
       replayed_code "$user: and logged as replayed_code"
    # the other direction: oathtool validates secpolicy's code
    code=$(q "SELECT secpolicy.totp_code('$SECRET', now(), $digits, $period, '$alg')")
    if oathtool --totp="$alg" -b -d "$digits" -s "${period}s" -w 1 "$SECRET" "$code" >/dev/null 2>&1; then
        pass "$user: oathtool validates secpolicy.totp_code's current code"
    else
        fail "$user: oathtool validates secpolicy.totp_code's current code" "code: $code"
    fi
    is "$(q "SELECT s.mfa FROM secpolicy.sessions s JOIN secpolicy.users u ON u.id = s.user_id
              WHERE u.username = '$user' ORDER BY s.id DESC LIMIT 1")" t "$user: the session is an mfa session"
}

# ---- 1. default policy: SHA1, 6 digits, 30 s (oathtool --totp -b SECRET)
q "SELECT secpolicy.create_user('interop_plain', '$PW')" >/dev/null
ch=$(q "SELECT challenge_token FROM secpolicy.login('interop_plain', '$PW')")
SECRET=$(q "SELECT secret FROM secpolicy.totp_enroll('$ch')")
is "$(q "SELECT status FROM secpolicy.totp_confirm('$ch', '$(oathtool --totp -b "$SECRET")')")" ok \
   "sha1 defaults: totp_confirm accepts plain 'oathtool --totp -b SECRET'"
now=$(date +%s)
code=$(oathtool --totp -b -N "@$now" "$SECRET")
is "$(q "SELECT secpolicy.totp_match('$SECRET', '$code', to_timestamp($now), 0)")" "$((now / 30))" \
   "sha1 defaults: totp_match(oathtool code at now) is floor(now / 30)"
enrol_with_oathtool interop_sha1 SHA1 6 30

# ---- 2. sha256 / 8 digits / 60 s and sha512 / 7 digits / 45 s
q "UPDATE secpolicy.policy SET totp_algorithm = 'sha256', totp_digits = 8, totp_period = 60" >/dev/null
enrol_with_oathtool interop_sha256 SHA256 8 60
q "UPDATE secpolicy.policy SET totp_algorithm = 'sha512', totp_digits = 7, totp_period = 45" >/dev/null
enrol_with_oathtool interop_sha512 SHA512 7 45

# ---- 3. totp_code == oathtool over many secrets, parameters and times
# (oathtool -w 4 prints the codes of the 5 steps from the one of -N on)
now=$(date +%s)
times="0 59 1111111109 1234567890 2000000000 20000000000 $((now - 60))"
for ((i = 0; i < 2; i++)); do times="$times $(( (RANDOM << 15 | RANDOM) * 3 ))"; done
for alg in SHA1 SHA256 SHA512; do
    case $alg in SHA1) bytes=20 ;; SHA256) bytes=32 ;; SHA512) bytes=64 ;; esac
    for secret in "$(head -c "$bytes" /dev/urandom | base32 -w0 | tr -d '=')" \
                  "$(head -c 20 /dev/urandom | base32 -w0 | tr -d '=')"; do
        ts=() ds=() ps=()
        expected=""
        for digits in 6 7 8; do
            for period in 30 60; do
                for t in $times; do
                    for k in 0 1 2 3 4; do
                        ts+=("$((t + k * period))") ds+=("$digits") ps+=("$period")
                    done
                    expected="$expected$(oathtool --totp="$alg" -b -d "$digits" -s "${period}s" -w 4 -N "@$t" "$secret" | tr '\n' ' ')"
                done
            done
        done
        got=$(q "SELECT string_agg(secpolicy.totp_code('$secret', to_timestamp(t), d, p, '${alg,,}'), ' ' ORDER BY n) || ' '
                   FROM unnest('{$(IFS=,; echo "${ts[*]}")}'::bigint[], '{$(IFS=,; echo "${ds[*]}")}'::int[],
                               '{$(IFS=,; echo "${ps[*]}")}'::int[]) WITH ORDINALITY AS v(t, d, p, n)")
        if [ "$got" = "$expected" ]; then
            pass "$alg, ${#secret}-character secret: totp_code equals oathtool in all ${#ts[@]} (digits, period, time) cases"
        else
            fail "$alg, ${#secret}-character secret: totp_code equals oathtool in all ${#ts[@]} cases" \
                 "secpolicy: ${got:0:200}" "oathtool:  ${expected:0:200}"
        fi
    done
done

# totp_match finds oathtool's codes at their step, for each algorithm
for alg in SHA1 SHA256 SHA512; do
    secret=$(head -c 32 /dev/urandom | base32 -w0)
    t=$(( (RANDOM << 15 | RANDOM) * 5 ))
    code=$(oathtool --totp="$alg" -b -d 8 -s 60s -N "@$t" "$secret")
    is "$(q "SELECT secpolicy.totp_match('$secret', '$code', to_timestamp($t), 0, 8, 60, '${alg,,}')")" "$((t / 60))" \
       "$alg: totp_match(oathtool code, window 0) returns floor(t / 60)"
    is "$(q "SELECT secpolicy.totp_match('$secret', '$code', to_timestamp($t + 60), 1, 8, 60, '${alg,,}')")" "$((t / 60))" \
       "$alg: one period later, window 1 still returns the code's step"
done

finish
