#!/usr/bin/env bash
# `make bench`: measures the release ephyra-server and writes docs/benchmarks.md.
#
# Everything runs on this machine, in one run, in temporary folders removed on exit: its own
# PostgreSQL (as `nobody` when root, like testsupport), Redis, nginx (the baseline), HAProxy,
# a small library made with ffmpeg, and ephyra-server itself. Figures are printed and written
# next to their targets and baselines; nothing here asserts on timings, and the script exits 0
# when the run completes even if a target is missed (the report says so).
#
# Phases:
#   1. SQLite, one server: idle RSS after start and scan; wrk on /Users/Me and /Items at 1, 16
#      and 64 connections; an unauthenticated endpoint and nginx as the floor of the stack.
#   2. PostgreSQL (+ Redis), one server: the same, plus static file serving through HAProxy,
#      ephyra's /Videos/{id}/stream?static=true against nginx serving the same file.
#   3. Three replicas sharing one PostgreSQL through HAProxy at 64 connections: errors and
#      the peak of pg_stat_activity.
#
# Knobs: BENCH_SECONDS (per wrk run, default 5), BENCH_SKIP_BUILD=1 (use the existing binary),
# BENCH_COMMIT (with BENCH_SKIP_BUILD: the commit that binary was built from, for the report),
# BENCH_OUT (default docs/benchmarks.md), CARGO_TARGET_DIR (default ./target).
set -euo pipefail

cd "$(dirname "$0")/.."
readonly root=$PWD
readonly seconds=${BENCH_SECONDS:-5}
readonly out=${BENCH_OUT:-docs/benchmarks.md}
readonly lua=$root/scripts/bench.lua
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
readonly bin=$CARGO_TARGET_DIR/release/ephyra-server

# Targets from the project rules.
readonly target_rss_mb=32
readonly target_p50_ms=0.5
readonly pg_max_connections=100
readonly replicas=3
readonly pool_per_replica=8 # 3 x 8 = 24 < 100

say() { echo "bench: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# ----- tools ------------------------------------------------------------------------------

need() { command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 ]] || die "$1 is missing: run scripts/ensure-deps.sh (make bench does)"; }
for tool in wrk curl python3 ffmpeg redis-server haproxy nginx psql; do need "$tool"; done
sbin() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }
haproxy_bin=$(sbin haproxy)
nginx_bin=$(sbin nginx)
pg_bin=$(dirname "$(command -v initdb 2>/dev/null || printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
[[ -x $pg_bin/postgres ]] || die "PostgreSQL binaries not found (initdb, postgres)"

# A prefix that makes children die with this script even if it is killed outright (SIGKILL
# skips the trap). setpriv execs the program, so `$!` is the program itself.
tied=()
command -v setpriv >/dev/null && tied=("$(command -v setpriv)" --pdeathsig=KILL --)

# ----- scratch space and cleanup --------------------------------------------------------------

work=$(mktemp -d /tmp/ephyra-bench.XXXXXX)
chmod 755 "$work" # nginx workers (nobody) read the library from here
pgdir=""
pids=()   # everything started here except PostgreSQL, stopped in reverse order
pg_pid=""

# Signals a process started here, gives it 10 s to exit, then kills it.
end_process() {
    local pid=$1 signal=$2 i
    kill "-$signal" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    local i
    # wrk's own reports (latency distributions) outlive the run, for a closer look.
    if [[ -f $work/wrk-all.log ]]; then
        { mkdir -p "$root/build/bench" && cp "$work/wrk-all.log" "$root/build/bench/wrk.log"; } || true
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        end_process "${pids[i]}" TERM
    done
    # A fast shutdown: clients are disconnected, nothing is kept anyway.
    [[ -n $pg_pid ]] && end_process "$pg_pid" INT
    rm -rf "$work"
    [[ -n $pgdir ]] && rm -rf "$pgdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stops one process started here and forgets it.
stop() {
    local pid=$1 p kept=()
    end_process "$pid" TERM
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    pids=("${kept[@]}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `curl URL` answers 2xx.
wait_http() {
    local url=$1 what=$2 tries=${3:-600}
    for ((i = 0; i < tries; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$what did not answer at $url"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mb() { awk -v kb="$1" 'BEGIN {printf "%.1f", kb / 1024}'; }

# Other work on the machine shows in the tails: the load average is reported with the figures.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ----- build --------------------------------------------------------------------------------

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    say "building the release binary (cargo build --release -p ephyra-server)"
    cargo build --release -q -p ephyra-server
fi
[[ -x $bin ]] || die "$bin is missing"

# ----- the library ----------------------------------------------------------------------------

lib=$work/library
say "generating a small library with ffmpeg in $lib"
video() { # path seconds lavfi-source bitrate
    mkdir -p "$(dirname "$1")"
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$3" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -map 0:v:0 -map 1:a:0 -t "$2" -c:v libx264 -preset ultrafast -b:v "$4" -pix_fmt yuv420p \
        -c:a aac -b:a 96k "$1"
}
# The file both servers stream in phase 2; about 8 MB, a few seconds of a real film.
static_rel="films/Static Test (2020)/Static Test (2020).mkv"
video "$lib/$static_rel" 20 "testsrc2=size=1280x720:rate=24" 3M &
video "$lib/films/Small Film (2021).mp4" 4 "smptehdbars=size=320x180:rate=24" 200k &
video "$lib/series/Bench Show/Season 01/Bench Show S01E01.mkv" 4 "testsrc=size=320x180:rate=24" 200k &
video "$lib/series/Bench Show/Season 01/Bench Show S01E02.mkv" 4 "rgbtestsrc=size=320x180:rate=24" 200k &
wait
chmod -R a+rX "$lib"
static_bytes=$(stat -c %s "$lib/$static_rel")
libraries="movies:Films=$lib/films;tvshows:Series=$lib/series"

# ----- PostgreSQL -----------------------------------------------------------------------------

# PostgreSQL refuses to run as root: then it runs as nobody, in a folder handed over to it.
run_as=()
pg_tied=("${tied[@]}")
pgdir=$(mktemp -d /tmp/ephyra-bench-pg.XXXXXX)
if [[ $(id -u) == 0 ]]; then
    command -v setpriv >/dev/null || die "setpriv (util-linux) is needed to run PostgreSQL as nobody"
    chown nobody:nogroup "$pgdir"
    run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    pg_tied=(setpriv --reuid=nobody --regid=nogroup --clear-groups --pdeathsig=INT --)
elif ((${#tied[@]} > 0)); then
    pg_tied=(setpriv --pdeathsig=INT --)
fi
say "starting PostgreSQL ($pg_bin)"
LC_ALL=C "${run_as[@]}" "$pg_bin/initdb" -D "$pgdir/data" -U ephyra --auth=trust -E UTF8 --no-locale \
    >"$pgdir/initdb.log" 2>&1 || { cat "$pgdir/initdb.log" >&2; die "initdb failed"; }
pg_port=$(free_port)
LC_ALL=C "${pg_tied[@]}" "$pg_bin/postgres" -D "$pgdir/data" -p "$pg_port" -k "$pgdir" \
    -c listen_addresses=127.0.0.1 -c "max_connections=$pg_max_connections" \
    -c fsync=off -c full_page_writes=off >"$pgdir/postgres.log" 2>&1 &
pg_pid=$!
psql_() { psql -X -q -t -A -h 127.0.0.1 -p "$pg_port" -U ephyra "$@"; }
for ((i = 0; i < 300; i++)); do
    psql_ -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$pg_pid" 2>/dev/null || { cat "$pgdir/postgres.log" >&2; die "PostgreSQL exited"; }
    sleep 0.1
done
psql_ -d postgres -c 'CREATE DATABASE ephyra_single' -c 'CREATE DATABASE ephyra_ha' >/dev/null
pg_url() { echo "postgres://ephyra@127.0.0.1:$pg_port/$1"; }

# ----- Redis ----------------------------------------------------------------------------------

mkdir -p "$work/redis"
redis_port=$(free_port)
"${tied[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save "" \
    --appendonly no --protected-mode no >"$work/redis/redis.log" 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done

# ----- nginx: the baseline ---------------------------------------------------------------------

# Serves the same file as ephyra, and a fixed JSON body the size of a /Users/Me answer: the
# floor of wrk + loopback + a fast C server on this machine.
nginx_port=$(free_port)
mkdir -p "$work/nginx"
nginx_user=""
[[ $(id -u) == 0 ]] && nginx_user="user nobody nogroup;"
cat >"$work/nginx/nginx.conf" <<EOF
$nginx_user
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        location = /floor.json {
            default_type application/json;
            return 200 '{"Name":"bench","ServerId":"0123456789abcdef0123456789abcdef","Id":"0123456789abcdef0123456789abcdef","HasPassword":true,"HasConfiguredPassword":true,"EnableAutoLogin":false,"Policy":{"IsAdministrator":true,"IsDisabled":false,"EnableAllFolders":true},"Configuration":{"PlayDefaultAudioTrack":true,"SubtitleMode":"Default"}}';
        }
        location = /static.mkv {
            alias "$lib/$static_rel";
        }
    }
}
EOF
"${tied[@]}" "$nginx_bin" -e stderr -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' \
    >"$work/nginx/stdout.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/floor.json" nginx

# ----- ephyra-server --------------------------------------------------------------------------

admin_password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
client_header='MediaBrowser Client="bench", Device="d", DeviceId="bench-device", Version="1"'

# start_server NAME DATABASE_URL [REDIS_URL] [POOL]: sets server_pid and server_url. An empty
# DATABASE_URL means the default, SQLite in the data folder.
start_server() {
    local name=$1 db=$2 redis=${3:-} pool=${4:-}
    local port admin dir
    port=$(free_port)
    admin=$(free_port)
    dir=$work/$name
    mkdir -p "$dir"
    local env=(
        "PATH=$PATH"
        "EPHYRA_LISTEN=127.0.0.1:$port"
        "EPHYRA_ADMIN_LISTEN=127.0.0.1:$admin"
        "EPHYRA_DATA_DIR=$dir/data"
        "EPHYRA_LIBRARIES=$libraries"
        "EPHYRA_SCAN_INTERVAL_SECONDS=0"
        "EPHYRA_ADMIN_USER=bench"
        "EPHYRA_ADMIN_PASSWORD=$admin_password"
        "EPHYRA_DISCOVERY=false"
        "EPHYRA_LOG=info"
    )
    [[ -n $db ]] && env+=("EPHYRA_DATABASE_URL=$db")
    [[ -n $redis ]] && env+=("EPHYRA_REDIS_URL=$redis")
    [[ -n $pool ]] && env+=("EPHYRA_DATABASE_MAX_CONNECTIONS=$pool")
    env -i "${env[@]}" "${tied[@]}" "$bin" >"$dir/server.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    server_url=http://127.0.0.1:$port
    server_log=$dir/server.log
    for ((i = 0; i < 600; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$server_url/health/live" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; die "$name exited"; }
        sleep 0.1
    done
    cat "$dir/server.log" >&2
    die "$name did not come up"
}

# Waits until one of the logs says the library scan finished (with several replicas only
# the leader scans), then lets the server settle.
wait_scanned() {
    for ((i = 0; i < 600; i++)); do
        grep -qs "library scan finished" "$@" && { sleep 2; return 0; }
        sleep 0.1
    done
    die "no 'library scan finished' in $*"
}

# login URL: sets token, user_id and auth (the full Authorization value).
login() {
    local answer
    answer=$(curl -fsS -X POST "$1/Users/AuthenticateByName" -H "Authorization: $client_header" \
        -H 'Content-Type: application/json' \
        -d "{\"Username\":\"bench\",\"Pw\":\"$admin_password\"}") || die "login at $1 failed"
    token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessToken"])' <<<"$answer")
    user_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["User"]["Id"])' <<<"$answer")
    auth="$client_header, Token=\"$token\""
}

# The id of the film streamed in phase 2.
static_item_id() {
    curl -fsS -H "Authorization: $auth" "$1/Items?userId=$user_id&recursive=true&includeItemTypes=Movie" |
        python3 -c 'import json,sys
items = json.load(sys.stdin)["Items"]
print(next(i["Id"] for i in items if i["Name"].startswith("Static Test")))'
}

# ----- wrk ------------------------------------------------------------------------------------

declare -A R # results: R[key.field]

# run KEY URL CONNECTIONS [AUTH] [RANGE]: one wrk run; fills R[KEY.rps], .p50, .p99, .errors,
# .mbps. The first answer is checked to be 2xx, so a bad token cannot pass for a fast server.
run() {
    local key=$1 url=$2 conns=$3 hdr=${4:-} range=${5:-}
    local threads=2 code
    ((conns < 2)) && threads=1
    local curl_args=(-sS -o /dev/null -w '%{http_code}' --max-time 10)
    [[ -n $hdr ]] && curl_args+=(-H "Authorization: $hdr")
    [[ -n $range ]] && curl_args+=(-H "Range: $range")
    code=$(curl "${curl_args[@]}" "$url")
    [[ $code == 2* ]] || die "$key: $url answered $code before the run"
    local log=$work/wrk-$key.log
    BENCH_AUTH=$hdr BENCH_RANGE=$range wrk -t"$threads" -c"$conns" -d"${seconds}s" --timeout 2s \
        --latency -s "$lua" "$url" >"$log" 2>&1 || { cat "$log" >&2; die "wrk failed for $key"; }
    { echo "=== $key: $url, $conns connections${range:+, Range: $range}"; cat "$log"; } >>"$work/wrk-all.log"
    local line
    line=$(grep '^BENCH ' "$log") || { cat "$log" >&2; die "no summary from wrk for $key"; }
    local w_requests w_duration_us w_bytes w_p50_us w_p99_us w_connect w_read w_write w_status w_timeout
    read -r w_requests w_duration_us w_bytes w_p50_us w_p99_us w_connect w_read w_write w_status w_timeout < <(
        awk '{for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
              print v["requests"], v["duration_us"], v["bytes"], v["p50_us"], v["p99_us"],
                    v["connect"], v["read"], v["write"], v["status"], v["timeout"]}' <<<"$line")
    R[$key.requests]=$w_requests
    R[$key.rps]=$(awk -v n="$w_requests" -v d="$w_duration_us" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
    R[$key.mbps]=$(awk -v b="$w_bytes" -v d="$w_duration_us" 'BEGIN {printf "%.0f", b / (d / 1e6) / 1048576}')
    R[$key.p50]=$(awk -v u="$w_p50_us" 'BEGIN {printf "%.2f", u / 1000}')
    R[$key.p99]=$(awk -v u="$w_p99_us" 'BEGIN {printf "%.2f", u / 1000}')
    R[$key.non2xx]=$w_status
    R[$key.timeouts]=$w_timeout
    R[$key.sockerr]=$((w_connect + w_read + w_write))
    R[$key.errors]=$((w_status + w_timeout + w_connect + w_read + w_write))
    printf 'bench: %-28s c=%-3s %8s req/s  p50 %7s ms  p99 %7s ms  %6s MB/s  non-2xx %s  timeouts %s  socket errors %s\n' \
        "$key" "$conns" "${R[$key.rps]}" "${R[$key.p50]}" "${R[$key.p99]}" "${R[$key.mbps]}" \
        "${R[$key.non2xx]}" "${R[$key.timeouts]}" "${R[$key.sockerr]}" >&2
}

# Transactions PostgreSQL counted in DATABASE so far (each autocommitted query is one).
pg_xacts() {
    psql_ -d postgres -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$1'"
}

# pg_run KEY URL CONNECTIONS DATABASE: `run`, plus R[KEY.xpr], database transactions per
# request (PostgreSQL publishes its counters within a second, hence the pause).
pg_run() {
    local before after
    sleep 1.1
    before=$(pg_xacts "$4")
    run "$1" "$2" "$3" "$auth"
    sleep 1.1
    after=$(pg_xacts "$4")
    R[$1.xpr]=$(awk -v a="$after" -v b="$before" -v n="${R[$1.requests]}" 'BEGIN {printf "%.2f", (a - b) / n}')
    say "$1: ${R[$1.xpr]} PostgreSQL transactions per request"
}

# api_runs PREFIX URL [DATABASE]: /Users/Me and /Items at 1, 16, 64 connections, and the
# server's own floor. With a PostgreSQL DATABASE, the 1-connection runs also count queries.
api_runs() {
    local prefix=$1 url=$2 db=${3:-} c
    for c in 1 16 64; do
        if [[ -n $db ]] && ((c == 1)); then
            pg_run "$prefix.me.c$c" "$url/Users/Me" "$c" "$db"
            pg_run "$prefix.items.c$c" "$url/Items?userId=$user_id&recursive=true" "$c" "$db"
        else
            run "$prefix.me.c$c" "$url/Users/Me" "$c" "$auth"
            run "$prefix.items.c$c" "$url/Items?userId=$user_id&recursive=true" "$c" "$auth"
        fi
    done
    for c in 1 64; do
        run "$prefix.public.c$c" "$url/System/Info/Public" "$c"
    done
}

# ----- HAProxy --------------------------------------------------------------------------------

# start_haproxy NAME BACKEND... (each "name:port"): sets haproxy_pid, haproxy_url, haproxy_stats.
start_haproxy() {
    local name=$1
    shift
    local port stats cfg=$work/haproxy-$name.cfg backend
    port=$(free_port)
    stats=$(free_port)
    cat >"$cfg" <<EOF
global
    maxconn 4000
    nbthread 2

defaults
    mode http
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s

frontend bench
    bind 127.0.0.1:$port
    default_backend servers

backend servers
    balance roundrobin
    cookie EPHYRA insert indirect nocache
    option httpchk GET $health_path
    http-check expect status 200
EOF
    for backend in "$@"; do
        echo "    server ${backend%%:*} 127.0.0.1:${backend##*:} cookie ${backend%%:*} check inter 500ms fall 2 rise 1" >>"$cfg"
    done
    cat >>"$cfg" <<EOF

listen stats
    bind 127.0.0.1:$stats
    stats enable
    stats uri /stats
EOF
    "${tied[@]}" "$haproxy_bin" -f "$cfg" -db >"$work/haproxy-$name.log" 2>&1 &
    haproxy_pid=$!
    pids+=("$haproxy_pid")
    haproxy_url=http://127.0.0.1:$port
    haproxy_stats="http://127.0.0.1:$stats/stats;csv"
    # Every backend must be UP before a run.
    for ((i = 0; i < 200; i++)); do
        local up
        up=$({ curl -fsS "$haproxy_stats" 2>/dev/null || true; } | awk -F, '$1 == "servers" && $2 != "BACKEND" && $18 == "UP"' | wc -l)
        ((up == $#)) && return 0
        sleep 0.1
    done
    die "haproxy $name: backends not up ($(curl -fsS "$haproxy_stats" | cut -d, -f1,2,18 | tr '\n' ' '))"
}

# Requests each backend server of HAProxy answered ("a=123 b=456").
haproxy_spread() {
    curl -fsS "$haproxy_stats" | awk -F, '
        NR == 1 {sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next}
        $1 == "servers" && $2 != "BACKEND" && $2 != "FRONTEND" {
            n = $(col["req_tot"]); if (n == "") n = $(col["stot"])
            printf "%s%s=%s", sep, $2, n; sep = " "
        }'
}

# ================================================================================================
# Phase 1: SQLite
# ================================================================================================

say "phase 1: SQLite, one server"
start_server sqlite ""
wait_scanned "$server_log"
R[sqlite.rss]=$(rss_kb "$server_pid")
login "$server_url"
api_runs sqlite "$server_url"
R[sqlite.hwm]=$(hwm_kb "$server_pid")
say "SQLite idle RSS $(mb "${R[sqlite.rss]}") MB, peak after load $(mb "${R[sqlite.hwm]}") MB"
stop "$server_pid"

# The floor: nginx answering a fixed JSON body.
for c in 1 16 64; do
    run "nginx.floor.c$c" "http://127.0.0.1:$nginx_port/floor.json" "$c"
done

# ================================================================================================
# Phase 2: PostgreSQL (+ Redis), one server; static serving through HAProxy
# ================================================================================================

say "phase 2: PostgreSQL + Redis, one server"
start_server pg "$(pg_url ephyra_single)" "redis://127.0.0.1:$redis_port/0"
single_pid=$server_pid
pg_url_single=$server_url
wait_scanned "$server_log"
R[pg.rss]=$(rss_kb "$server_pid")
login "$server_url"
api_runs pg "$server_url" ephyra_single
R[pg.hwm]=$(hwm_kb "$server_pid")
say "PostgreSQL idle RSS $(mb "${R[pg.rss]}") MB, peak after load $(mb "${R[pg.hwm]}") MB"

say "phase 2: static file serving through HAProxy ($static_bytes bytes)"
film=$(static_item_id "$pg_url_single") || die "cannot find the film to stream in /Items"
health_path=/health/ready
start_haproxy ephyra "ephyra:${pg_url_single##*:}"
ephyra_static="$haproxy_url/Videos/$film/stream?static=true"
haproxy_ephyra_pid=$haproxy_pid
health_path=/floor.json
start_haproxy nginx "nginx:$nginx_port"
nginx_static=$haproxy_url/static.mkv
haproxy_nginx_pid=$haproxy_pid
# Both must send the same bytes.
cmp -s <(curl -fsS -H "Authorization: $auth" "$ephyra_static") <(curl -fsS "$nginx_static") ||
    die "ephyra and nginx do not serve the same file"
readonly range_1m="bytes=0-1048575"
run static.ephyra.full.c16 "$ephyra_static" 16 "$auth"
run static.nginx.full.c16 "$nginx_static" 16
run static.ephyra.range.c16 "$ephyra_static" 16 "$auth" "$range_1m"
run static.nginx.range.c16 "$nginx_static" 16 "" "$range_1m"
stop "$haproxy_ephyra_pid"
stop "$haproxy_nginx_pid"
stop "$single_pid"

# ================================================================================================
# Phase 3: three replicas sharing one PostgreSQL, through HAProxy
# ================================================================================================

say "phase 3: $replicas replicas sharing one PostgreSQL (pool $pool_per_replica each, max_connections $pg_max_connections)"
backends=()
for n in $(seq 1 "$replicas"); do
    start_server "replica-$n" "$(pg_url ephyra_ha)" "redis://127.0.0.1:$redis_port/1" "$pool_per_replica"
    backends+=("replica-$n:${server_url##*:}")
done
wait_scanned "$work"/replica-*/server.log
health_path=/health/ready
start_haproxy ha "${backends[@]}"
login "$haproxy_url"

# Samples pg_stat_activity while the load runs; the peak is what counts.
sample_pg() {
    local max_all=0 max_db=0 all=0 db=0
    while [[ ! -f $work/stop-sampling ]]; do
        read -r all db < <(psql_ -d postgres -F ' ' -c \
            "SELECT count(*), count(*) FILTER (WHERE datname = 'ephyra_ha') FROM pg_stat_activity" ||
            echo "0 0") || true
        ((all > max_all)) && max_all=$all
        ((db > max_db)) && max_db=$db
        sleep 0.2
    done
    echo "$max_all $max_db" >"$work/pg-peak"
}
ha_run() { # key path
    rm -f "$work/stop-sampling"
    sample_pg &
    local sampler=$!
    run "$1" "$haproxy_url$2" 64 "$auth"
    touch "$work/stop-sampling"
    wait "$sampler"
    local all=0 db=0
    [[ -f $work/pg-peak ]] && read -r all db <"$work/pg-peak"
    R[$1.pg_all]=$all
    R[$1.pg_db]=$db
    say "$1: pg_stat_activity peak ${R[$1.pg_all]} (ephyra_ha: ${R[$1.pg_db]})"
}
ha_run ha.me.c64 /Users/Me
ha_run ha.items.c64 "/Items?userId=$user_id&recursive=true"
R[ha.spread]=$(haproxy_spread)
say "requests per replica: ${R[ha.spread]}"
ha_alive=0
for n in $(seq 1 "$replicas"); do
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${backends[n - 1]##*:}/health/ready" && ha_alive=$((ha_alive + 1))
done
R[ha.alive]=$ha_alive

# ================================================================================================
# The report
# ================================================================================================

lt() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a < b)}'; }
verdict_rss() { if lt "$(mb "$1")" "$target_rss_mb"; then echo "met"; else echo "**MISSED**"; fi; }
verdict_p50() { if lt "$1" "$target_p50_ms"; then echo "met"; else echo "**MISSED**"; fi; }
# Collapse: any error or timeout at 64 connections, or under half the throughput of 16.
verdict_64() {
    local p=$1
    if [[ ${R[$p.c64.errors]} -gt 0 ]]; then
        echo "**MISSED** (${R[$p.c64.errors]} errors)"
    elif lt "${R[$p.c64.rps]}" "$(awk -v r="${R[$p.c16.rps]}" 'BEGIN {print r / 2}')"; then
        echo "**MISSED** (throughput fell)"
    else
        echo "met"
    fi
}
row_api() { # prefix label
    local p=$1 label=$2 c
    for c in 1 16 64; do
        local floor=nginx.floor.c$c
        local target="floor (nginx, fixed JSON) ${R[$floor.p50]} ms / ${R[$floor.rps]} req/s"
        local verdict=""
        if ((c == 1)) && [[ $p == pg.* ]]; then
            target="p50 < $target_p50_ms ms; peers 0.3–1.3 ms; $target"
            verdict=$(verdict_p50 "${R[$p.c$c.p50]}")
        elif ((c == 1)); then
            target="peers 0.3–1.3 ms; $target"
        elif ((c == 64)); then
            target="no collapse (no errors, ≥ ½ of c=16 req/s); $target"
            verdict=$(verdict_64 "$p")
        fi
        echo "| $label | $c | ${R[$p.c$c.p50]} | ${R[$p.c$c.p99]} | ${R[$p.c$c.rps]} | ${R[$p.c$c.non2xx]} / ${R[$p.c$c.timeouts]} / ${R[$p.c$c.sockerr]} | $target | $verdict |"
    done
}
row_public() {
    local p=$1 label=$2 c
    for c in 1 64; do
        echo "| $label | $c | ${R[$p.c$c.p50]} | ${R[$p.c$c.p99]} | ${R[$p.c$c.rps]} | ${R[$p.c$c.non2xx]} / ${R[$p.c$c.timeouts]} / ${R[$p.c$c.sockerr]} | unauthenticated, no database: the server's own floor | |"
    done
}

# When the latency target is missed: what this run measured about where the time goes.
where_time_goes() {
    lt "${R[pg.me.c1.p50]}" "$target_p50_ms" && lt "${R[pg.items.c1.p50]}" "$target_p50_ms" && return 0
    cat <<EOT

**Where the time goes (from this run's figures).** The release binary is measured, and password
hashing (argon2) is not on this path: a session token is looked up, not a password verified.
The server's own floor, an unauthenticated call that touches no database
(\`/System/Info/Public\`), answers in ${R[pg.public.c1.p50]} ms p50; nginx's fixed body in
${R[nginx.floor.c1.p50]} ms. So HTTP, routing and JSON cost little: the rest is database round
trips. On SQLite (in process, no network) the same calls take ${R[sqlite.me.c1.p50]} ms
(\`/Users/Me\`) and ${R[sqlite.items.c1.p50]} ms (\`/Items\`); on PostgreSQL ${R[pg.me.c1.p50]} ms and
${R[pg.items.c1.p50]} ms, with ${R[pg.me.c1.xpr]} and ${R[pg.items.c1.xpr]} queries per request, each
a loopback round trip to PostgreSQL and back through the pool, on CPUs shared with PostgreSQL
and wrk. Fewer round trips per request (for \`/Items\`, one query for the items and their user
data) is where the missing time is; pool size is not involved at 1 connection.
EOT
}

pool_total=$((replicas * pool_per_replica))
pg_peak=${R[ha.me.c64.pg_all]}
[[ ${R[ha.items.c64.pg_all]} -gt $pg_peak ]] && pg_peak=${R[ha.items.c64.pg_all]}
pg_peak_db=${R[ha.me.c64.pg_db]}
[[ ${R[ha.items.c64.pg_db]} -gt $pg_peak_db ]] && pg_peak_db=${R[ha.items.c64.pg_db]}
if ((pg_peak_db > pool_total)); then
    pool_note="The replicas held up to $pg_peak_db connections at once, more than their pools'
$pool_total: some connection lives outside the pools (or one was being replaced as the sample
was taken); size \`max_connections\` with that margin."
else
    pool_note="The replicas held up to $pg_peak_db connections at once, within their pools' $pool_total."
fi
ha_errors=$((${R[ha.me.c64.errors]} + ${R[ha.items.c64.errors]}))
if ((ha_errors == 0 && pg_peak < pg_max_connections && pool_total < pg_max_connections)); then
    ha_verdict=met
else
    ha_verdict="**MISSED**"
fi

missed=()
[[ $(verdict_rss "${R[sqlite.rss]}") == met ]] || missed+=("idle RSS on SQLite $(mb "${R[sqlite.rss]}") MB (target < $target_rss_mb MB)")
[[ $(verdict_rss "${R[pg.rss]}") == met ]] || missed+=("idle RSS on PostgreSQL $(mb "${R[pg.rss]}") MB (target < $target_rss_mb MB)")
[[ $(verdict_p50 "${R[pg.me.c1.p50]}") == met ]] || missed+=("GET /Users/Me p50 on PostgreSQL ${R[pg.me.c1.p50]} ms at 1 connection (target < $target_p50_ms ms)")
[[ $(verdict_p50 "${R[pg.items.c1.p50]}") == met ]] || missed+=("GET /Items p50 on PostgreSQL ${R[pg.items.c1.p50]} ms at 1 connection (target < $target_p50_ms ms)")
for p in sqlite.me sqlite.items pg.me pg.items; do
    [[ $(verdict_64 "$p") == met ]] || missed+=("$p at 64 connections: $(verdict_64 "$p" | tr -d '*')")
done
[[ $ha_verdict == met ]] || missed+=("$replicas replicas at 64 connections: $ha_errors errors, pg_stat_activity peak $pg_peak")

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
busy=""
if ! lt "${load_start%% *}" "$(nproc)"; then
    busy="**The machine was busy when this run started** (load average ${load_start%% *} on $(nproc) CPUs,
other processes included): latency tails (p99) and single-connection figures are inflated by
waiting for a CPU, and figures vary more than usual between runs."
fi

if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
    commit=${BENCH_COMMIT:-unknown}
    dirty=" (prebuilt binary${BENCH_COMMIT:+, built from a clean checkout of this commit})"
else
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=""
    if [[ -n $(git status --porcelain --untracked-files=no -- server config Cargo.lock Cargo.toml 2>/dev/null) ]]; then
        dirty=" (built from a working tree with uncommitted changes under server/, config/ or Cargo.*)"
    fi
fi
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

mkdir -p "$(dirname "$out")"
# The container images section is written by `make images` (scripts/images.sh): kept as is.
images_section=$(sed -n '/^<!-- images:begin -->$/,/^<!-- images:end -->$/p' "$out" 2>/dev/null || true)
{
    cat <<EOF
# Benchmarks

Written by \`make bench\` (\`scripts/bench.sh\`); every run overwrites this file. Baselines are
measured in the same run on the same machine; nothing here is a timing assertion.

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| commit | \`$commit\`$dirty |
| machine | $(nproc) CPUs, $cpu |
| kernel | $(uname -sr) |
| load average (1, 5, 15 min) | $load_start at the start, $load_end at the end |
| binary | release \`ephyra-server\` |
| PostgreSQL | $("$pg_bin/postgres" --version | awk '{print $3}') (\`max_connections=$pg_max_connections\`, \`fsync=off\`) |
| tools | $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'), $("$haproxy_bin" -v | head -1 | awk '{print "HAProxy", $3}'), $("$nginx_bin" -v 2>&1 | sed 's#.*nginx/#nginx #') |
| wrk runs | ${seconds}s each, 2 threads (1 at 1 connection), \`--timeout 2s\`; wrk, the servers and PostgreSQL share the same $(nproc) CPUs |

EOF
    [[ -n $busy ]] && printf '%s\n\n' "$busy"
    if ((${#missed[@]} == 0)); then
        echo "**Every target was met in this run.**"
    else
        echo "**Targets missed in this run:**"
        echo
        for m in "${missed[@]}"; do echo "- $m"; done
    fi
    cat <<EOF

## Memory

Resident set (\`VmRSS\` from \`/proc/PID/status\`) after start and the first library scan
(4 files), before any load; peak (\`VmHWM\`) after the API runs for reference.

| database | idle RSS | peak after load | target | verdict |
|---|---|---|---|---|
| SQLite | $(mb "${R[sqlite.rss]}") MB | $(mb "${R[sqlite.hwm]}") MB | < $target_rss_mb MB (Rust peers idle at 28–59 MB) | $(verdict_rss "${R[sqlite.rss]}") |
| PostgreSQL + Redis | $(mb "${R[pg.rss]}") MB | $(mb "${R[pg.hwm]}") MB | < $target_rss_mb MB (Rust peers idle at 28–59 MB) | $(verdict_rss "${R[pg.rss]}") |

## Authenticated API latency

One server, direct (no proxy). Authenticated with a session token in the \`Authorization\`
header. \`/Items\` is \`/Items?userId=…&recursive=true\` over the whole library. Latency in ms;
errors are non-2xx / timeouts / socket errors. The p50 target applies at 1 connection (at 16
and 64 connections p50 is mostly queueing: connections ÷ throughput).

| call | connections | p50 ms | p99 ms | req/s | errors | target / baseline | verdict |
|---|---|---|---|---|---|---|---|
$(row_api pg.me "PostgreSQL: GET /Users/Me")
$(row_api pg.items "PostgreSQL: GET /Items")
$(row_public pg.public "PostgreSQL: GET /System/Info/Public")
$(row_api sqlite.me "SQLite: GET /Users/Me")
$(row_api sqlite.items "SQLite: GET /Items")
$(row_public sqlite.public "SQLite: GET /System/Info/Public")

PostgreSQL transactions per request at 1 connection (from \`pg_stat_database\`; each
autocommitted query is one, the token lookup included): \`/Users/Me\` ${R[pg.me.c1.xpr]},
\`/Items\` ${R[pg.items.c1.xpr]}.
$(where_time_goes)

## Static file serving

The same $(awk -v b="$static_bytes" 'BEGIN {printf "%.1f", b / 1048576}') MB H.264 file, through HAProxy at 16 connections:
ephyra's \`/Videos/{id}/stream?static=true\` (authenticated, PostgreSQL) against nginx serving
the file directly (\`sendfile on\`), as the baseline.

| request | server | p50 ms | p99 ms | req/s | MB/s | errors | ephyra / nginx |
|---|---|---|---|---|---|---|---|
| whole file | ephyra | ${R[static.ephyra.full.c16.p50]} | ${R[static.ephyra.full.c16.p99]} | ${R[static.ephyra.full.c16.rps]} | ${R[static.ephyra.full.c16.mbps]} | ${R[static.ephyra.full.c16.errors]} | $(awk -v a="${R[static.ephyra.full.c16.mbps]}" -v b="${R[static.nginx.full.c16.mbps]}" 'BEGIN {printf "%.0f%% of throughput", 100 * a / b}') |
| whole file | nginx (baseline) | ${R[static.nginx.full.c16.p50]} | ${R[static.nginx.full.c16.p99]} | ${R[static.nginx.full.c16.rps]} | ${R[static.nginx.full.c16.mbps]} | ${R[static.nginx.full.c16.errors]} | |
| \`Range: $range_1m\` | ephyra | ${R[static.ephyra.range.c16.p50]} | ${R[static.ephyra.range.c16.p99]} | ${R[static.ephyra.range.c16.rps]} | ${R[static.ephyra.range.c16.mbps]} | ${R[static.ephyra.range.c16.errors]} | $(awk -v a="${R[static.ephyra.range.c16.mbps]}" -v b="${R[static.nginx.range.c16.mbps]}" 'BEGIN {printf "%.0f%% of throughput", 100 * a / b}') |
| \`Range: $range_1m\` | nginx (baseline) | ${R[static.nginx.range.c16.p50]} | ${R[static.nginx.range.c16.p99]} | ${R[static.nginx.range.c16.rps]} | ${R[static.nginx.range.c16.mbps]} | ${R[static.nginx.range.c16.errors]} | |

## $replicas replicas sharing one PostgreSQL

$replicas replicas, each with \`EPHYRA_DATABASE_MAX_CONNECTIONS=$pool_per_replica\` ($replicas × $pool_per_replica = $pool_total <
\`max_connections=$pg_max_connections\`), sharing one PostgreSQL (and one Redis as \`EPHYRA_REDIS_URL\`), behind HAProxy
(round robin; wrk sends no cookie, so stickiness does not apply). 64 connections. The
\`pg_stat_activity\` peak is sampled every 0.2 s during each run and includes PostgreSQL's own
background processes and the sampling connection; the \`ephyra_ha\` column counts only the
replicas' connections.

| call | p50 ms | p99 ms | req/s | errors | pg_stat_activity peak (all / ephyra_ha) | one replica, direct, c=64 |
|---|---|---|---|---|---|---|
| GET /Users/Me | ${R[ha.me.c64.p50]} | ${R[ha.me.c64.p99]} | ${R[ha.me.c64.rps]} | ${R[ha.me.c64.non2xx]} / ${R[ha.me.c64.timeouts]} / ${R[ha.me.c64.sockerr]} | ${R[ha.me.c64.pg_all]} / ${R[ha.me.c64.pg_db]} | ${R[pg.me.c64.rps]} req/s, p50 ${R[pg.me.c64.p50]} ms |
| GET /Items | ${R[ha.items.c64.p50]} | ${R[ha.items.c64.p99]} | ${R[ha.items.c64.rps]} | ${R[ha.items.c64.non2xx]} / ${R[ha.items.c64.timeouts]} / ${R[ha.items.c64.sockerr]} | ${R[ha.items.c64.pg_all]} / ${R[ha.items.c64.pg_db]} | ${R[pg.items.c64.rps]} req/s, p50 ${R[pg.items.c64.p50]} ms |

$pool_note
Requests per replica (HAProxy stats): ${R[ha.spread]}. Replicas ready after the runs:
${R[ha.alive]} of $replicas. Target: no errors, and the peak stays under \`max_connections\`
($pg_max_connections): **$ha_verdict**.

On $(nproc) CPUs, three replicas, HAProxy, PostgreSQL and wrk compete for the same cores, so
the replicas' combined throughput is not expected to beat one replica's; this run checks that
pools sized for N replicas hold under load, not that replicas add capacity.

## Reproducing

\`\`\`sh
make bench                         # builds the release binary, runs everything (~3 minutes), rewrites this file
BENCH_SECONDS=10 make bench        # longer wrk runs
BENCH_SKIP_BUILD=1 bash scripts/bench.sh   # reuse \$CARGO_TARGET_DIR/release/ephyra-server
\`\`\`

It needs PostgreSQL, Redis, ffmpeg, HAProxy, nginx and wrk (\`scripts/ensure-deps.sh\`, run by
\`make bench\`, installs them as root on Debian). Everything runs in temporary folders on free
ports and is stopped and removed on exit; wrk's own reports (latency distributions) are kept in
\`build/bench/wrk.log\`. Run it on an otherwise idle machine: the figures are
only comparable within one run.
EOF
    if [[ -n $images_section ]]; then printf '\n%s\n' "$images_section"; fi
} >"$out"

echo
say "wrote $out"
if ((${#missed[@]} == 0)); then
    say "every target met"
else
    say "targets missed:"
    for m in "${missed[@]}"; do say "  - $m"; done
fi
