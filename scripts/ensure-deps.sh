#!/usr/bin/env bash
# Makes sure this machine has what `make test` needs, and says what is missing when it cannot.
#
# - System programs: PostgreSQL (initdb, postgres), redis-server, ffmpeg/ffprobe, haproxy,
#   nginx, wrk, setpriv, chromium and npm (the HLS test plays in headless Chromium). As root on Debian, missing ones are installed with apt-get
#   (`apt-get update` runs once, and only when something is missing). Otherwise each missing
#   program is listed with the package that provides it, and the script exits non-zero.
# - Python tools (kubernetes-validate, jsonschema, jellyfin-apiclient-python): a virtualenv in
#   build/venv from the pins in scripts/requirements-test.txt, rebuilt only when that file (or
#   the Python interpreter) changed since the venv was made.
#
# Idempotent, and silent when everything is already there.
set -euo pipefail

cd "$(dirname "$0")/.."
readonly requirements=scripts/requirements-test.txt
readonly venv=build/venv
readonly stamp=$venv/.requirements.sha256

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

# Fills `missing` with "what it is|Debian package" for every absent program.
find_missing() {
    missing=()
    have_postgres || missing+=("initdb and postgres|postgresql")
    have redis-server || missing+=("redis-server|redis-server")
    { have ffmpeg && have ffprobe; } || missing+=("ffmpeg and ffprobe|ffmpeg")
    have haproxy || missing+=("haproxy|haproxy")
    have nginx || missing+=("nginx|nginx-light")
    have wrk || missing+=("wrk|wrk")
    have setpriv || missing+=("setpriv|util-linux")
    have chromium || missing+=("chromium|chromium")
    have npm || missing+=("npm|npm")
    have_python_venv || missing+=("python3 with venv and ensurepip|python3-venv")
}

install_with_apt() {
    local packages=("${missing[@]#*|}")
    say "installing ${packages[*]} with apt-get"
    local log
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
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

status=0
ensure_system_programs || status=1
ensure_venv || status=1
ensure_web || status=1
exit "$status"
