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
                libsodium-dev liboath-dev libpq-dev oathtool argon2 libkrb5-dev
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

# ---- a Citus cluster of throwaway clusters (test/scenarios/citus.sh, bench/run citus)

# Is Citus installed in this PostgreSQL installation?
sp_citus_available() {
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]
}

# sp_citus_start WORKERS [-c name=value ...]: a coordinator and WORKERS workers,
# each a throwaway cluster of this installation with citus and secpolicy
# preloaded and one sealing key, on free local ports, in a fresh directory.
# Sets SP_CITUS_DIR and SP_CITUS_PORTS (the coordinator's first); clients
# connect through the socket directory $SP_CITUS_DIR.  Sets no trap: stop it
# with sp_citus_stop.  Extra settings go to every node.
sp_citus_start() {
    local workers=$1 i port
    shift
    SP_CITUS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/secpolicy-citus.XXXXXX")
    chmod 755 "$SP_CITUS_DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$SP_CITUS_DIR"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SP_CITUS_DIR/secpolicy.key"
    chmod 600 "$SP_CITUS_DIR/secpolicy.key"
    [ "$(id -u)" = 0 ] && chown postgres: "$SP_CITUS_DIR/secpolicy.key"
    SP_CITUS_PORTS=
    # below the ephemeral range (32768-60999), where the nodes' own connections
    # to each other take their local ports: a port taken there fails a restart
    port=$((26000 + RANDOM % 2000))
    for ((i = 0; i <= workers; i++)); do
        while ! sp_port_free "$port"; do port=$((port + 1)); done
        SP_CITUS_PORTS="$SP_CITUS_PORTS${SP_CITUS_PORTS:+ }$port"
        sp_as_owner "$PGBIN/initdb" -D "$SP_CITUS_DIR/n$i" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$SP_CITUS_DIR/initdb$i.log" 2>&1 || { cat "$SP_CITUS_DIR/initdb$i.log"; return 1; }
        cat >>"$SP_CITUS_DIR/n$i/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$SP_CITUS_DIR'
listen_addresses = '127.0.0.1'
fsync = off
shared_preload_libraries = 'citus,secpolicy'
secpolicy.key_file = '$SP_CITUS_DIR/secpolicy.key'
max_prepared_transactions = 100
max_worker_processes = 16
max_connections = 200
track_functions = all
CONF
        for opt in "$@"; do
            [ "$opt" = -c ] && continue
            echo "$opt" >>"$SP_CITUS_DIR/n$i/postgresql.conf"
        done
        sp_citus_node_start "$i" || return 1
        port=$((port + 1))
    done
    export SP_CITUS_DIR SP_CITUS_PORTS
}

# The port of node $1 (0: the coordinator).
sp_citus_port() {
    local -a ports
    read -r -a ports <<<"$SP_CITUS_PORTS"
    echo "${ports[$1]}"
}

# Start / stop node $1 (stop mode $2, fast by default).
sp_citus_node_start() {
    sp_as_owner "$PGBIN/pg_ctl" -D "$SP_CITUS_DIR/n$1" -l "$SP_CITUS_DIR/n$1.log" -w -t 60 start >/dev/null \
        || { tail -20 "$SP_CITUS_DIR/n$1.log"; return 1; }
}
sp_citus_node_stop() {
    sp_as_owner "$PGBIN/pg_ctl" -D "$SP_CITUS_DIR/n$1" -m "${2:-fast}" -w -t 60 stop >/dev/null
}

# sp_citus_db DB: database DB on every node with Citus, the coordinator and
# the workers registered (the coordinator in the metadata too, so that the
# reference tables have a copy on it).
sp_citus_db() {
    local db=$1 i port n=0 ports
    read -r -a ports <<<"$SP_CITUS_PORTS"
    for port in "${ports[@]}"; do
        "$PGBIN/createdb" -h "$SP_CITUS_DIR" -p "$port" -U postgres "$db" 2>/dev/null || return 1
        "$PGBIN/psql" -X -q -h "$SP_CITUS_DIR" -p "$port" -U postgres -d "$db" -c 'CREATE EXTENSION citus' || return 1
    done
    "$PGBIN/psql" -X -q -At -h "$SP_CITUS_DIR" -p "${ports[0]}" -U postgres -d "$db" \
        -c "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]})" >/dev/null || return 1
    for ((i = 1; i < ${#ports[@]}; i++)); do
        "$PGBIN/psql" -X -q -At -h "$SP_CITUS_DIR" -p "$(sp_citus_port 0)" -U postgres -d "$db" \
            -c "SELECT citus_add_node('127.0.0.1', ${ports[$i]})" >/dev/null || return 1
    done
}

# Stop every node and remove the directory.
sp_citus_stop() {
    local i
    [ -n "${SP_CITUS_DIR:-}" ] && [ -d "$SP_CITUS_DIR" ] || return 0
    for i in "$SP_CITUS_DIR"/n*/; do
        sp_as_owner "$PGBIN/pg_ctl" -D "$i" -m immediate -w stop >/dev/null 2>&1 || true
    done
    rm -rf "$SP_CITUS_DIR"
}
