#!/usr/bin/env bash
# Builds and tests the container images offline: `scripts/images.sh build|test|lint|version`.
#
# - build: a `debian:<release>-slim` base made with mmdebstrap from Debian's packages and
#   `podman import`ed (cached, see below); the binaries built by cargo copied into a staged
#   build context; `podman build --pull=never` of deploy/images/*.Dockerfile; with SAVE=1 (the
#   default) `podman save` archives in build/images/ that `k3s ctr images import`, `docker load`
#   and `podman load` take.
# - test: runs the server image against the sample library its own ffmpeg generates (ready,
#   login, a byte range of a direct stream, ffmpeg and the VA drivers inside) and the operator
#   image's `render` of deploy/examples/minimal.yaml.
# - stage: only the build contexts, build/images/context/<binary>/ (CI with a registry builds
#   from them with docker buildx: .github/workflows/release.yml).
# - lint: hadolint (from build/venv, scripts/requirements-test.txt) over the Dockerfiles.
# - version: the workspace version, which is every image's tag; tag, names: the tag and the
#   two image names the settings below give.
#
# Settings (environment): PROFILE (cargo profile whose binaries go in: `release`, or `dev` to
# reuse what `cargo test` built; tags get a `-dev` suffix then), IMAGE_REGISTRY
# (ghcr.io/ephyra-media), DEBIAN_RELEASE (trixie), INTEL_MEDIA_DRIVER
# (intel-media-va-driver, or intel-media-va-driver-non-free), WEB_DIR (a built jellyfin-web to
# bake in), SAVE (1: write archives).
#
# The base image is cached twice, both keyed by a hash of its recipe below (release, mirror,
# variant, dpkg filters): as a label on the podman image (nothing to do when the store has it)
# and as build/images/base/debian-<release>-slim-<key>.tar (a re-import, not a re-download).
# Change the recipe, or delete both, to refresh it (security updates arrive that way).
#
# Podman runs as root with scripts/podman/containers.conf (runc, cgroupfs, file events, ulimits
# that fit this sandbox).
set -euo pipefail

cd "$(dirname "$0")/.."
export CONTAINERS_CONF=$PWD/scripts/podman/containers.conf

readonly profile=${PROFILE:-release}
readonly registry=${IMAGE_REGISTRY:-ghcr.io/ephyra-media}
readonly release=${DEBIAN_RELEASE:-trixie}
readonly intel_driver=${INTEL_MEDIA_DRIVER:-intel-media-va-driver}
readonly web_dir=${WEB_DIR:-}
readonly save=${SAVE:-1}
readonly mirror=http://deb.debian.org/debian
readonly security_mirror=http://deb.debian.org/debian-security
readonly out=build/images
readonly recipe_label=io.ephyra.base-recipe

say() { echo "images: $*" >&2; }
die() {
    say "$*"
    exit 1
}

workspace_version() {
    sed -n '/^\[workspace\.package\]/,/^\[/ s/^version = "\(.*\)"$/\1/p' Cargo.toml
}

tag() {
    local version
    version=$(workspace_version)
    [[ -n $version ]] || die "no version under [workspace.package] in Cargo.toml"
    if [[ $profile == release ]]; then echo "$version"; else echo "$version-$profile"; fi
}

server_image() { echo "$registry/ephyra-server:$(tag)"; }
operator_image() { echo "$registry/ephyra-operator:$(tag)"; }

target_dir() {
    local dir=${CARGO_TARGET_DIR:-target}
    if [[ $profile == dev ]]; then echo "$dir/debug"; else echo "$dir/$profile"; fi
}

# The base image is what Docker Hub's debian:<release>-slim is: minbase (Essential + apt), no
# documentation but copyright files, no man pages or translations, deb822 sources for the
# release, its updates and its security archive, main only (the server Dockerfile adds non-free
# when asked to).
readonly dpkg_filters=(
    'path-exclude=/usr/share/doc/*'
    'path-include=/usr/share/doc/*/copyright'
    'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/info/*'
    'path-exclude=/usr/share/groff/*'
    'path-exclude=/usr/share/lintian/*'
    'path-exclude=/usr/share/linda/*'
    'path-exclude=/usr/share/locale/*'
)

base_sources() {
    cat <<EOF
Types: deb
URIs: $mirror
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

base_key() {
    { echo "minbase $release"; printf '%s\n' "${dpkg_filters[@]}"; base_sources; } |
        sha256sum | cut -c1-16
}

base_image() { echo "localhost/debian:$release-slim"; }

base_state=""
ensure_base() {
    local key image archive
    key=$(base_key)
    image=$(base_image)
    base_state="already in the podman store"
    if podman image exists "$image" &&
        [[ $(podman image inspect --format "{{index .Labels \"$recipe_label\"}}" "$image") == "$key" ]]; then
        return 0
    fi
    base_state="imported from its cached archive"
    archive=$out/base/debian-$release-slim-$key.tar
    if [[ ! -s $archive ]]; then
        say "making $image from Debian's packages with mmdebstrap (about 2 minutes)"
        mkdir -p "$out/base"
        base_state="made with mmdebstrap"
        local opts=() filter
        for filter in "${dpkg_filters[@]}"; do opts+=(--dpkgopt="$filter"); done
        local sources
        sources=$(base_sources)
        mmdebstrap --quiet --variant=minbase --format=tar "${opts[@]}" \
            --customize-hook='rm -f "$1/etc/apt/sources.list"' \
            --customize-hook="printf '%s\n' '$sources' > \"\$1/etc/apt/sources.list.d/debian.sources\"" \
            "$release" "$archive.partial" \
            "deb $mirror $release main" \
            "deb $mirror $release-updates main" \
            "deb $security_mirror $release-security main"
        mv "$archive.partial" "$archive"
    fi
    say "importing $archive as $image"
    podman import --quiet --change "LABEL $recipe_label=$key" --change 'CMD ["bash"]' \
        "$archive" "$image" >/dev/null
}

# A build context holding only what the Dockerfile copies: the stripped binary (debug info is
# no use in an image and is most of a dev binary's size) and, for the server, `web/`.
stage() {
    local name=$1
    local context=$out/context/$name binary=$(target_dir)/$name
    [[ -x $binary ]] || die "$binary is missing: build it first (make images does)"
    rm -rf "$context"
    mkdir -p "$context"
    strip --strip-debug -o "$context/$name" "$binary"
    if [[ $name == ephyra-server ]]; then
        mkdir -p "$context/web"
        if [[ -n $web_dir ]]; then
            [[ -f $web_dir/index.html ]] || die "WEB_DIR=$web_dir has no index.html (a built jellyfin-web?)"
            cp -a "$web_dir/." "$context/web/"
        fi
    fi
    echo "$context"
}

build_image() {
    local dockerfile=$1 target=$2 image=$3 context=$4
    shift 4
    say "building $image"
    podman build --quiet --network host --pull=never --runtime runc --format docker \
        --build-arg "DEBIAN_RELEASE=$release" "$@" \
        --file "$dockerfile" --target "$target" --tag "$image" "$context" >/dev/null
}

save_image() {
    local image=$1 name archive
    name=${image##*/}
    archive=$out/${name/:/-}.tar
    rm -f "$archive"
    podman save --quiet --format docker-archive --output "$archive" "$image"
    say "saved $archive ($(du -h "$archive" | cut -f1))"
}

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }

image_bytes() { podman image inspect --format '{{.Size}}' "$1"; }

# The "Container images" section of docs/benchmarks.md (between its markers; `make bench`
# keeps it when it rewrites the rest): sizes of a release build, as `make images` made them.
record_sizes() {
    local seconds=$1 doc=docs/benchmarks.md section server_bin operator_bin ffmpeg_version
    server_bin=$(stat -c %s "$out/context/ephyra-server/ephyra-server")
    operator_bin=$(stat -c %s "$out/context/ephyra-operator/ephyra-operator")
    ffmpeg_version=$(podman run --rm --entrypoint ffmpeg "$(server_image)" -hide_banner -version |
        awk 'NR == 1 { print $3 }')
    section=$(
        cat <<EOF
<!-- images:begin -->
## Container images

Written by \`make images\` (\`scripts/images.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC'), commit
\`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`, $(uname -m). Image sizes are
uncompressed, as \`podman image inspect\` reports them; archives are the \`podman save\`
docker archives in \`build/images/\` (what \`k3s ctr images import\` reads). Registries
compress layers, so a pull moves less.

| image | size | archive | what is in it |
|---|---|---|---|
| \`$(server_image)\` | $(mb "$(image_bytes "$(server_image)")") | $(mb "$(stat -c %s "$out/ephyra-server-$(tag).tar")") | Debian $release slim, ffmpeg $ffmpeg_version, $intel_driver, oneVPL (libvpl2, libmfx-gen1.2), Mesa VA-API, vainfo; \`ephyra-server\` $(mb "$server_bin") |
| \`$(operator_image)\` | $(mb "$(image_bytes "$(operator_image)")") | $(mb "$(stat -c %s "$out/ephyra-operator-$(tag).tar")") | scratch + glibc, libgcc_s, CA certificates; \`ephyra-operator\` $(mb "$operator_bin") |
| \`$(base_image)\` (base) | $(mb "$(image_bytes "$(base_image)")") | | mmdebstrap minbase without docs, man pages or translations |

This build took $seconds s, with the base $base_state. From an empty podman store, making the
base takes about a minute and installing the server's packages about another.
<!-- images:end -->
EOF
    )
    if grep -q '^<!-- images:begin -->$' "$doc"; then
        section=$section awk '
            /^<!-- images:begin -->$/ { print ENVIRON["section"]; skip = 1; next }
            /^<!-- images:end -->$/ { skip = 0; next }
            !skip { print }
        ' "$doc" >"$doc.new"
    else
        { cat "$doc"; printf '\n%s\n' "$section"; } >"$doc.new"
    fi
    mv "$doc.new" "$doc"
    say "recorded the sizes in $doc"
}

cmd_build() {
    local started=$SECONDS
    ensure_base
    local server_context operator_context target=server
    server_context=$(stage ephyra-server)
    operator_context=$(stage ephyra-operator)
    [[ -n $web_dir ]] && target=server-web
    build_image deploy/images/server.Dockerfile "$target" "$(server_image)" "$server_context" \
        --build-arg "INTEL_MEDIA_DRIVER=$intel_driver"
    build_image deploy/images/operator.Dockerfile operator "$(operator_image)" "$operator_context"
    local seconds=$((SECONDS - started))
    if [[ $save == 1 ]]; then
        save_image "$(server_image)"
        save_image "$(operator_image)"
        if [[ $profile == release && -z $web_dir ]]; then
            record_sizes "$seconds"
        fi
    fi
    podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
        grep -E "ephyra-(server|operator):$(tag)( |$)" >&2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

container=""
cleanup() {
    if [[ -n $container ]]; then
        podman rm --force --time 5 "$container" >/dev/null 2>&1 || true
    fi
}

# Polls `what` (a command) every second for up to `seconds`.
wait_for() {
    local seconds=$1
    shift
    local i
    for ((i = 0; i < seconds; i++)); do
        "$@" && return 0
        sleep 1
    done
    return 1
}

cmd_test() {
    local server operator version port admin_port base auth token user_id item_id
    server=$(server_image)
    operator=$(operator_image)
    version=$(workspace_version)
    podman image exists "$server" || die "$server is not built (make images)"
    podman image exists "$operator" || die "$operator is not built (make images)"
    trap cleanup EXIT

    port=$(free_port)
    admin_port=$(free_port)
    base=http://127.0.0.1:$port
    local password=image-test-password
    # As the operator runs it: read-only root, no capabilities, uid 10001; /config and
    # /transcode writable (tmpfs here, volumes in a cluster; /config allows exec, as its
    # volume does, for the ffprobe fork server). The sample library is generated by the
    # image's own ffmpeg.
    container=ephyra-image-test-$$
    podman run --detach --name "$container" --network host --read-only \
        --cap-drop ALL --security-opt no-new-privileges \
        --tmpfs /config:rw,exec,mode=0750,U \
        --tmpfs /transcode:rw,mode=0750,U \
        -e EPHYRA_LISTEN=127.0.0.1:$port -e EPHYRA_ADMIN_LISTEN=127.0.0.1:$admin_port \
        -e EPHYRA_DISCOVERY=false -e EPHYRA_ADMIN_USER=imagetest \
        -e EPHYRA_ADMIN_PASSWORD=$password \
        "$server" --sample-library /config/sample >/dev/null

    say "server image: waiting for /health/ready (the sample library is generated first)"
    if ! wait_for 600 curl -fs -o /dev/null "$base/health/ready"; then
        podman logs "$container" >&2 || true
        die "the server image never became ready"
    fi
    say "server image: ready"

    auth='MediaBrowser Client="image-test", Device="podman", DeviceId="image-test", Version="'$version'"'
    local login
    login=$(curl -fsS -X POST "$base/Users/AuthenticateByName" \
        -H "Authorization: $auth" -H 'Content-Type: application/json' \
        -d "{\"Username\":\"imagetest\",\"Pw\":\"$password\"}") || die "login failed"
    token=$(jq -er .AccessToken <<<"$login") || die "no AccessToken in the login answer: $login"
    user_id=$(jq -er .User.Id <<<"$login")
    say "server image: logged in"

    auth="$auth, Token=\"$token\""
    local items=""
    find_film() {
        items=$(curl -fsS -H "Authorization: $auth" \
            "$base/Users/$user_id/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName") &&
            jq -e '.Items | length > 0' <<<"$items" >/dev/null
    }
    wait_for 120 find_film || die "no film after the scan: $items"
    item_id=$(jq -er '.Items[0].Id' <<<"$items")
    # The API does not hand out server paths; the sample's files are named after their films.
    local name path
    name=$(jq -er '.Items[0].Name' <<<"$items")
    path=$(podman exec "$container" find /config/sample -type f -name "$name (*" | head -n 1)
    [[ -n $path ]] || die "no file for the film $name under /config/sample"

    # A byte range from the middle of the file, compared with the same bytes read inside.
    local got expected headers
    got=$(mktemp)
    headers=$(mktemp)
    curl -fsS -H "Authorization: $auth" -H 'Range: bytes=1000-4999' -D "$headers" \
        -o "$got" "$base/Videos/$item_id/stream?static=true" || die "direct stream failed"
    grep -qE '^HTTP/[0-9.]+ 206' "$headers" || die "direct stream range: not a 206: $(head -1 "$headers")"
    grep -qiE '^content-range: bytes 1000-4999/[0-9]+' "$headers" ||
        die "direct stream range: wrong Content-Range: $(grep -i content-range "$headers")"
    expected=$(podman exec "$container" sh -c 'tail -c +1001 "$1" | head -c 4000 | sha256sum' sh "$path")
    [[ $(sha256sum <"$got") == "$expected" ]] || die "direct stream range: bytes differ from $path"
    rm -f "$got" "$headers"
    say "server image: bytes 1000-4999 of $path streamed intact"

    # The scan probed through fork servers: the image's own ffprobe loaded the library.
    podman exec "$container" sh -c 'ls /config/lib/ffprobe-fork-server-*.so' >/dev/null ||
        die "the ffprobe fork server library was not written to /config/lib"
    if podman logs "$container" 2>&1 | grep -q 'cannot run as a fork server'; then
        podman logs "$container" 2>&1 | grep 'fork server' >&2
        die "the image's ffprobe did not run the fork server"
    fi
    say "server image: the scan probed through ffprobe fork servers"

    podman exec "$container" ffmpeg -hide_banner -version | head -n 1 | grep -q '^ffmpeg version' ||
        die "ffmpeg -version failed inside the server image"
    if [[ $(podman image inspect --format '{{.Architecture}}' "$server") == amd64 ]]; then
        podman exec "$container" sh -c 'ls /usr/lib/x86_64-linux-gnu/dri/iHD_drv_video.so \
            /usr/lib/x86_64-linux-gnu/libmfx-gen.so.1.2 /usr/lib/x86_64-linux-gnu/libvpl.so.2' \
            >/dev/null || die "the Intel VA-API/QSV drivers are missing from the server image"
    fi
    podman exec "$container" sh -c "command -v vainfo" >/dev/null || die "vainfo is missing"
    [[ $(podman exec "$container" id -u) == 10001 ]] || die "the server image does not run as uid 10001"
    say "server image: $(podman exec "$container" ffmpeg -hide_banner -version | head -n 1)"
    cleanup
    container=""

    # The operator renders the example with the server image this version builds.
    local rendered
    rendered=$(podman run --rm --network none --read-only --cap-drop ALL \
        -v "$PWD/deploy/examples:/examples:ro" "$operator" render -f /examples/minimal.yaml) ||
        die "the operator image cannot render deploy/examples/minimal.yaml"
    grep -q "image: $registry/ephyra-server:$version\$" <<<"$rendered" ||
        die "the rendered cluster does not name $registry/ephyra-server:$version: $(grep 'image:' <<<"$rendered")"
    [[ $(podman run --rm --network none --entrypoint /usr/bin/ephyra-operator "$operator" --version) == *"$version"* ]] ||
        die "the operator image's binary is not version $version"
    say "operator image: renders a cluster on $registry/ephyra-server:$version, the tag make images builds"
    say "image-test: all checks passed"
}

cmd_lint() {
    local hadolint=build/venv/bin/hadolint
    [[ -x $hadolint ]] || die "$hadolint is missing: run scripts/ensure-deps.sh"
    "$hadolint" --no-color --config deploy/images/hadolint.yaml deploy/images/*.Dockerfile
}

case ${1:-} in
base) ensure_base ;;
build) cmd_build ;;
test) cmd_test ;;
lint) cmd_lint ;;
stage)
    stage ephyra-server
    stage ephyra-operator
    ;;
version) workspace_version ;;
tag) tag ;;
names)
    server_image
    operator_image
    ;;
*) die "usage: scripts/images.sh base|stage|build|test|lint|version|tag|names" ;;
esac
