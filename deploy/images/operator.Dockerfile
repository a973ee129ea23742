# The ephyra-operator image: the binary, the shared libraries it loads, CA certificates and a
# passwd entry for the non-root user, on `scratch`. Nothing else: no shell, no package manager.
#
# Why not a static binary on an empty image: Rust's musl target is not part of this project's
# toolchain here, and a glibc binary linked statically still loads NSS modules for host-name
# look-ups. So the image is "distroless" in the sense of gcr.io/distroless/cc: the rootfs stage
# copies exactly the libraries `ldd` names (glibc, libgcc_s) from the same Debian release the
# server image uses, and the final stage starts FROM scratch with that folder. The result is a
# few MB on top of the binary, built offline from the local `debian:<release>-slim`.
#
# The binary comes from the build context (`make images` stages build/images/context/operator/).
# The uid/gid 65532 is distroless's `nonroot`, which deploy/operator.yaml runs as.

ARG DEBIAN_RELEASE=trixie

FROM debian:${DEBIAN_RELEASE}-slim AS rootfs
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
# For apt only (an ARG, not kept in the image).
ARG DEBIAN_FRONTEND=noninteractive
# DL3008 ignored: the release's version, with its security updates (see server.Dockerfile).
# hadolint ignore=DL3008
RUN apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 ephyra-operator /rootfs/usr/bin/ephyra-operator
# Each library at the path the loader finds it (ldd resolves them with this release's loader),
# the loader itself at the path the binary names, and the smallest passwd/group.
RUN ldd /rootfs/usr/bin/ephyra-operator \
        | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
        | sort -u > /tmp/libs; \
    test -s /tmp/libs; \
    while read -r lib; do cp -L --parents "$lib" /rootfs/; done < /tmp/libs; \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp; \
    chmod 1777 /rootfs/tmp; \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'nonroot:x:65532:' > /rootfs/etc/group; \
    chroot /rootfs /usr/bin/ephyra-operator --version

FROM scratch AS operator
COPY --from=rootfs /rootfs/ /
USER 65532:65532
# /healthz, /readyz and /metrics.
EXPOSE 9090
ENTRYPOINT ["/usr/bin/ephyra-operator"]
CMD ["run"]
