# The ephyra-server image: Debian slim, Debian's ffmpeg, the user-space VA-API/QSV drivers for
# Intel and other GPUs, a non-root user. One image serves CPU-only, Intel and NVIDIA nodes.
#
# The binary is built outside (cargo on the build host, or in CI) and is the only file of the
# build context besides an optional web client, so this builds without a registry: `make
# images` stages the context in build/images/context/server/ and builds FROM a
# `debian:<release>-slim` made locally with mmdebstrap. With a registry the same file builds
# FROM Docker Hub's image (.github/workflows/release.yml).
#
# Targets: `server` (no web client) and `server-web`, which adds the context's `web/` folder (a
# built jellyfin-web) at /usr/share/ephyra/web and points EPHYRA_WEB_DIR at it.
#
# GPUs (docs/operations.md, "GPUs"):
# - Intel: iHD (`intel-media-va-driver`, Broadwell and newer, Arc) for VA-API, and the oneVPL
#   runtime (`libvpl2` dispatcher, `libmfx-gen1.2` for Tiger Lake / Gen12 and newer) for QSV;
#   Debian's ffmpeg 7.1 links libvpl. The default iHD build lacks the non-free shader kernels
#   (e.g. the HEVC MBEnc/BRC encoders of older chips); `--build-arg
#   INTEL_MEDIA_DRIVER=intel-media-va-driver-non-free` installs the full one from Debian's
#   non-free component instead. Low-power (VDEnc) encoding works with either.
# - AMD and others: Mesa's VA-API drivers (`mesa-va-drivers`).
# - NVIDIA: nothing is installed. The NVIDIA container runtime injects the driver's libraries
#   (libcuda, libnvcuvid, libnvidia-encode) that ffmpeg loads at run time, when asked to by the
#   two variables below (as the Jellyfin image sets them).
# - `vainfo` shows what a node's GPU offers: `kubectl exec … -- vainfo --display drm`.

ARG DEBIAN_RELEASE=trixie

FROM debian:${DEBIAN_RELEASE}-slim AS server

# intel-media-va-driver (free kernels, Debian main) or intel-media-va-driver-non-free.
ARG INTEL_MEDIA_DRIVER=intel-media-va-driver

SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# For apt only (an ARG, not kept in the image).
ARG DEBIAN_FRONTEND=noninteractive

# The Intel packages exist for amd64 only; other architectures get ffmpeg and Mesa. Ignored:
# DL3008 (versions are the release's, with its security updates: a pinned version would stop
# building when Debian replaces it) and SC2086 (`$intel` is a list of packages, split on purpose).
# hadolint ignore=DL3008,SC2086
RUN arch="$(dpkg --print-architecture)"; \
    intel=""; \
    if [ "$arch" = amd64 ]; then \
        intel="$INTEL_MEDIA_DRIVER libmfx-gen1.2 libvpl2"; \
    fi; \
    case "$INTEL_MEDIA_DRIVER" in \
        intel-media-va-driver) ;; \
        intel-media-va-driver-non-free) \
            sed -i 's/^Components: main$/Components: main non-free/' /etc/apt/sources.list.d/debian.sources ;; \
        *) echo "INTEL_MEDIA_DRIVER must be intel-media-va-driver or intel-media-va-driver-non-free" >&2; exit 1 ;; \
    esac; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates ffmpeg mesa-va-drivers vainfo $intel; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \
    ffmpeg -hide_banner -version | head -n 1

# The user the operator runs the server as (uid 10001). `video` (gid 44 on Debian and Ubuntu)
# opens /dev/dri/card*; the render nodes (/dev/dri/renderD*) belong to the host's `render`
# group, whose id differs between distributions, so it is added at run time: the cluster's
# `hardwareAcceleration.renderGroup` (pod supplementalGroups) or `podman run --group-add`.
RUN groupadd --gid 10001 ephyra; \
    useradd --uid 10001 --gid ephyra --groups video --home-dir /config \
        --no-create-home --shell /usr/sbin/nologin ephyra; \
    install -d -o ephyra -g ephyra -m 0750 /config /transcode; \
    install -d -o ephyra -g ephyra -m 0755 /media

COPY --chmod=0755 ephyra-server /usr/bin/ephyra-server

# /config holds the SQLite file, images and the server identity (the operator mounts its config
# volume there and names it in the configuration file too); /transcode is scratch space.
ENV EPHYRA_DATA_DIR=/config \
    EPHYRA_TRANSCODE_DIR=/transcode \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,video,utility

USER 10001:10001
WORKDIR /config
# 8096: the Jellyfin API; 9096: /metrics; 7359/udp: Jellyfin's client discovery.
EXPOSE 8096 9096 7359/udp
ENTRYPOINT ["/usr/bin/ephyra-server"]

FROM server AS server-web
COPY web/ /usr/share/ephyra/web/
ENV EPHYRA_WEB_DIR=/usr/share/ephyra/web
