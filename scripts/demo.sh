#!/usr/bin/env bash
# make demo: the local HA stack on this machine, until Ctrl-C.
#
# Starts a PostgreSQL (initdb in a temporary folder; as the `nobody` user when run as root,
# because PostgreSQL refuses root), a Redis, two ephyra-server replicas sharing them over a
# sample library generated with ffmpeg, and HAProxy in front with cookie stickiness and health
# checks on /health/ready (standing in for Traefik). Prints the URL and the admin login.
# Ctrl-C (or the script exiting for any reason) stops everything and removes the folder.
#
# Settings (environment):
#   DEMO_PORT=8096        HAProxy's port: the URL to give Jellyfin apps
#   DEMO_LIBRARY=build/demo-library   the sample library (generated once, then reused)
#   EPHYRA_SERVER_BIN=... a server binary to use instead of target/{release,debug}/ephyra-server
#
# Try it: play something in an app, then `kill -9` the replica the app is on (the pids are
# printed). The app's next requests go to the other replica, logged in, at the same place.
set -euo pipefail

cd "$(dirname "$0")/.."
readonly root=$PWD
readonly demo_port=${DEMO_PORT:-8096}
readonly library=${DEMO_LIBRARY:-$root/build/demo-library}
readonly target=${CARGO_TARGET_DIR:-$root/target}

say() { echo "demo: $*" >&2; }
die() { say "$*"; exit 1; }

# --- what we need -----------------------------------------------------------------------------

find_pg_bin() {
    if command -v initdb >/dev/null && command -v postgres >/dev/null; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    local dir
    dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    [[ -n $dir && -x $dir/initdb ]] || die "PostgreSQL is not installed (Debian: apt-get install postgresql; or run make deps)"
    echo "$dir"
}
find_prog() {
    command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || die "$1 is not installed (Debian package $2; or run make deps)"
}

pg_bin=$(find_pg_bin) || exit 1
redis_server=$(find_prog redis-server redis-server) || exit 1
haproxy=$(find_prog haproxy haproxy) || exit 1
find_prog ffmpeg ffmpeg >/dev/null || exit 1
find_prog curl curl >/dev/null || exit 1

server_bin=${EPHYRA_SERVER_BIN:-}
if [[ -z $server_bin ]]; then
    for candidate in "$target/release/ephyra-server" "$target/debug/ephyra-server"; do
        if [[ -x $candidate ]]; then
            server_bin=$candidate
            break
        fi
    done
fi
if [[ -z $server_bin ]]; then
    say "building ephyra-server (release)"
    cargo build --release -p ephyra-server
    server_bin=$target/release/ephyra-server
fi
[[ -x $server_bin ]] || die "$server_bin is not an executable"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Sets `port` to a port nothing listens on now. Starting from a random point keeps two demos
# apart; each call moves on, so ports taken but not yet bound are not handed out twice.
next_port=$((20000 + RANDOM % 20000))
take_port() {
    while port_in_use "$next_port"; do
        next_port=$((next_port + 1))
    done
    port=$next_port
    next_port=$((next_port + 1))
}
port_in_use "$demo_port" && die "port $demo_port is taken: set DEMO_PORT to another one"

# Children get SIGTERM if this script dies without running its trap (kill -9).
tie=()
if command -v setpriv >/dev/null; then
    tie=(setpriv --pdeathsig TERM --)
fi
# PostgreSQL refuses to run as root.
as_postgres=("${tie[@]}")
if [[ $(id -u) == 0 ]]; then
    command -v setpriv >/dev/null || die "running as root needs setpriv (util-linux) to start PostgreSQL as nobody"
    as_postgres=(setpriv --reuid=65534 --regid=65534 --clear-groups --pdeathsig TERM --)
fi

# --- clean-up ------------------------------------------------------------------------------------

work=$(mktemp -d /tmp/ephyra-demo.XXXXXX)
chmod 755 "$work"
pids=()
pg_pid=
cleanup() {
    # A second Ctrl-C must not cut the clean-up short.
    trap - EXIT
    trap '' INT TERM
    say "stopping"
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # PostgreSQL: SIGINT is its fast shutdown.
    if [[ -n $pg_pid ]]; then
        kill -INT "$pg_pid" 2>/dev/null || true
    fi
    for pid in "${pids[@]}" $pg_pid; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
    say "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_until() { # what, timeout seconds, command...
    local what=$1 timeout=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what did not come up within ${timeout}s (logs in $work)"
        sleep 0.2
    done
}

# --- PostgreSQL --------------------------------------------------------------------------------

take_port
readonly pg_port=$port
pg_password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
mkdir -p "$work/pg"
printf '%s' "$pg_password" >"$work/pg/pwfile"
[[ $(id -u) == 0 ]] && chown -R 65534:65534 "$work/pg"
say "PostgreSQL on 127.0.0.1:$pg_port"
"${as_postgres[@]}" "$pg_bin/initdb" --pgdata="$work/pg/data" --username=ephyra --pwfile="$work/pg/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-sync \
    >"$work/pg/initdb.log" 2>&1 || { cat "$work/pg/initdb.log" >&2; die "initdb failed"; }
rm -f "$work/pg/pwfile"
"${as_postgres[@]}" "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
    -c listen_addresses=127.0.0.1 -c fsync=off >"$work/pg/postgres.log" 2>&1 &
pg_pid=$!
wait_until PostgreSQL 30 "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
readonly database_url="postgres://ephyra:$pg_password@127.0.0.1:$pg_port/postgres"

# --- Redis ---------------------------------------------------------------------------------------

take_port
readonly redis_port=$port
mkdir -p "$work/redis"
say "Redis on 127.0.0.1:$redis_port"
"${tie[@]}" "$redis_server" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work/redis" --daemonize no >"$work/redis/redis.log" 2>&1 &
pids+=($!)
wait_until Redis 10 port_in_use "$redis_port"

# --- two replicas --------------------------------------------------------------------------------

admin_password=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
replica_ports=()
replica_pids=()
start_replica() { # name
    local name=$1 port api_port admin_port
    take_port
    api_port=$port
    take_port
    admin_port=$port
    port=$api_port
    mkdir -p "$work/$name"
    env EPHYRA_LISTEN="127.0.0.1:$port" EPHYRA_ADMIN_LISTEN="127.0.0.1:$admin_port" \
        EPHYRA_DATABASE_URL="$database_url" EPHYRA_REDIS_URL="redis://127.0.0.1:$redis_port" \
        EPHYRA_DATA_DIR="$work/$name/data" EPHYRA_TRANSCODE_DIR="$work/$name/transcode" \
        EPHYRA_ADMIN_USER=admin EPHYRA_ADMIN_PASSWORD="$admin_password" \
        EPHYRA_SERVER_NAME="Ephyra demo" EPHYRA_DISCOVERY=false \
        "${tie[@]}" "$server_bin" --sample-library "$library" >"$work/$name/server.log" 2>&1 &
    pids+=($!)
    replica_pids+=($!)
    replica_ports+=("$port")
    say "replica $name on 127.0.0.1:$port (pid $!, log $work/$name/server.log)"
    wait_until "replica $name" 300 curl -sf "http://127.0.0.1:$port/health/ready"
}
[[ -d $library ]] || say "generating the sample library in $library with ffmpeg (once)"
mkdir -p "$(dirname "$library")"
# The first replica generates the library if needed and migrates the database; then the second.
start_replica r1
start_replica r2

# --- HAProxy ---------------------------------------------------------------------------------

take_port
readonly stats_port=$port
mkdir -p "$work/haproxy"
cat >"$work/haproxy/haproxy.cfg" <<EOF
global
    maxconn 2000

defaults
    mode http
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s

frontend ephyra
    bind :$demo_port
    default_backend replicas

backend replicas
    balance roundrobin
    cookie EPHYRA insert indirect nocache
    option httpchk GET /health/ready
    http-check expect status 200
    server r1 127.0.0.1:${replica_ports[0]} cookie r1 check inter 500ms fall 2 rise 1
    server r2 127.0.0.1:${replica_ports[1]} cookie r2 check inter 500ms fall 2 rise 1

listen stats
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /stats
EOF
"${tie[@]}" "$haproxy" -f "$work/haproxy/haproxy.cfg" -db >"$work/haproxy/haproxy.log" 2>&1 &
pids+=($!)
wait_until HAProxy 10 curl -sf "http://127.0.0.1:$demo_port/health/ready"

cat <<EOF

  Ephyra is running: two replicas behind HAProxy.

    URL      http://localhost:$demo_port        (give this to any Jellyfin app)
    login    admin / $admin_password
    stats    http://127.0.0.1:$stats_port/stats  (HAProxy's view of the replicas)

    replica r1  pid ${replica_pids[0]}  http://127.0.0.1:${replica_ports[0]}
    replica r2  pid ${replica_pids[1]}  http://127.0.0.1:${replica_ports[1]}

  Kill one (kill -9 <pid>) while playing: the app carries on on the other.
  Ctrl-C stops everything.

EOF

# Sleep in the background so Ctrl-C is handled at once.
while :; do
    sleep 1 &
    wait $! || true
done
