# Shared by scripts/demo, scripts/test and bench/run: system packages, the
# build, and a throwaway PostgreSQL cluster.  Source it; it defines functions
# and sets no traps of its own except through sp_cluster_start.
#
# Environment: PGVERSION (default 15) picks the PostgreSQL major version;
# SP_PGBIN (default /usr/lib/postgresql/$PGVERSION/bin) another installation
# of it, such as a relocated copy a developer builds and tests against.

set -euo pipefail

PGVERSION=${PGVERSION:-15}
SP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${SP_PGBIN:-/usr/lib/postgresql/$PGVERSION/bin}
export PG_CONFIG=$PGBIN/pg_config

sp_say() { printf '\n== %s\n' "$*"; }

# Run a command as root: directly when we are root, else through sudo.
sp_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install whatever is missing of the packages the build and the tests need.
sp_install_packages() {
    local pkgs=(build-essential pkg-config ca-certificates procps
                "postgresql-$PGVERSION" "postgresql-server-dev-$PGVERSION" "postgresql-contrib"
                libsodium-dev liboath-dev oathtool argon2 libkrb5-dev
                "postgresql-$PGVERSION-pgtap" libtap-parser-sourcehandler-pgtap-perl perl
                "postgresql-$PGVERSION-cron")
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
            echo "missing packages: ${missing[*]}; as root: apt-get install ${missing[*]}" >&2
            return 1
        fi
        sp_say "installing: ${missing[*]}"
        sp_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        sp_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# Build with every warning an error, and install into the server's
# directories (as root only when they are not ours: a private copy made by
# scripts/private-pg is).
sp_build_install() {
    sp_say "building secpolicy"
    make -C "$SP_ROOT" -s PG_CONFIG="$PG_CONFIG" \
        PG_CFLAGS='-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror'
    if [ -w "$("$PG_CONFIG" --sharedir)/extension" ] && [ -w "$("$PG_CONFIG" --pkglibdir)" ]; then
        make -C "$SP_ROOT" -s PG_CONFIG="$PG_CONFIG" install
    else
        sp_root make -C "$SP_ROOT" -s PG_CONFIG="$PG_CONFIG" install
    fi
}

# Run a command as the cluster's owner (postgres when we are root).
sp_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Is a TCP port on the loopback free?
sp_port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Start a throwaway cluster in a fresh temporary directory that its owner
# owns, on a free port; export PGHOST/PGPORT/PGUSER for clients; stop it and
# remove the directory on exit, whatever the exit status.  Extra server
# settings can be passed as arguments (-c name=value ...); SP_SERVER_ENV holds
# NAME=VALUE words for the server's environment (scripts/fuzz --asan).
sp_cluster_start() {
    SP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/secpolicy.XXXXXX")
    chmod 755 "$SP_TMP"
    [ "$(id -u)" = 0 ] && chown postgres: "$SP_TMP"
    trap sp_cluster_stop EXIT
    trap 'exit 130' INT TERM

    local port=$((54320 + RANDOM % 1000))
    while ! sp_port_free "$port"; do port=$((port + 1)); done

    sp_say "starting a throwaway PostgreSQL $PGVERSION cluster in $SP_TMP on port $port"
    sp_as_owner "$PGBIN/initdb" -D "$SP_TMP/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$SP_TMP/initdb.log" 2>&1 || { cat "$SP_TMP/initdb.log"; return 1; }
    # the sealing key goes into postgresql.conf, where ALTER SYSTEM can override it
    SP_KEY_FILE=$(sp_make_key)
    echo "secpolicy.key_file = '$SP_KEY_FILE'" >>"$SP_TMP/data/postgresql.conf"
    SP_SERVER_OPTS="-p $port -k $SP_TMP -c listen_addresses=127.0.0.1 -c fsync=off"
    # shellcheck disable=SC2086  # SP_SERVER_ENV is a list of words
    sp_as_owner env ${SP_SERVER_ENV:-} "$PGBIN/pg_ctl" -D "$SP_TMP/data" -l "$SP_TMP/server.log" -w -t 60 \
        -o "$SP_SERVER_OPTS $*" start >/dev/null \
        || { cat "$SP_TMP/server.log"; return 1; }
    export PGHOST=$SP_TMP PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    export SP_TMP PGBIN SP_KEY_FILE SP_SERVER_OPTS
}

# Restart the cluster with extra settings (used by crash and preload tests).
sp_cluster_restart() {
    # shellcheck disable=SC2086
    sp_as_owner env ${SP_SERVER_ENV:-} "$PGBIN/pg_ctl" -D "$SP_TMP/data" -l "$SP_TMP/server.log" -w -t 60 \
        -o "$SP_SERVER_OPTS $*" restart >/dev/null
}

sp_cluster_stop() {
    local rc=$?
    if [ -n "${SP_TMP:-}" ] && [ -d "$SP_TMP/data" ]; then
        sp_as_owner "$PGBIN/pg_ctl" -D "$SP_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    [ -n "${SP_TMP:-}" ] && rm -rf "$SP_TMP"
    exit "$rc"
}

# Write a fresh sealing key (64 hex characters, mode 600, owned by the
# cluster's owner) into the cluster's directory.  Prints the file name.
sp_make_key() {
    local f=$SP_TMP/${1:-secpolicy.key}
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f"
    chmod 600 "$f"
    [ "$(id -u)" = 0 ] && chown postgres: "$f"
    echo "$f"
}
