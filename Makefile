# Ephyra: the two commands a newcomer needs are `make run` and `make test`.
#
# Everything builds into ./target once and is shared by every test binary. Tools the tests need
# (PostgreSQL, Redis, ffmpeg, HAProxy, nginx, wrk, kubernetes-validate) are installed or found by
# scripts/ensure-deps.sh, which says clearly what is missing when it cannot install it.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
export CARGO_TARGET_DIR ?= $(CURDIR)/target

DATA_DIR ?= ./data
RUN_ARGS ?=
# Images: the cargo profile whose binaries go in (`dev` reuses what `cargo test` built; its
# tags get a `-dev` suffix), and an optional built jellyfin-web to bake in. See
# scripts/images.sh for the other settings (IMAGE_REGISTRY, DEBIAN_RELEASE, INTEL_MEDIA_DRIVER).
PROFILE ?= release
WEB_DIR ?=
SAVE ?= 1
IMAGES = PROFILE=$(PROFILE) WEB_DIR=$(WEB_DIR) SAVE=$(SAVE) bash scripts/images.sh

.PHONY: help run build deps test lint fmt-check clippy unit crd crd-check e2e bench demo clean
.PHONY: images image-test image-lint image-check

help:
	@echo "make run    - start ephyra-server on SQLite in $(DATA_DIR) over a generated sample library"
	@echo "make test   - install/find what the tests need, then fmt check, clippy, every test"
	@echo "make lint   - rustfmt check and clippy -D warnings"
	@echo "make crd    - regenerate deploy/crd.yaml from the crd crate"
	@echo "make e2e    - black-box tests over the built binaries (local HA stack; cluster tests with KUBECONFIG)"
	@echo "make bench  - benchmarks, written to docs/benchmarks.md"
	@echo "make images - container images of server and operator (podman, offline), saved in build/images/"
	@echo "make image-test - builds the images, then runs them: server on a sample library, operator render"
	@echo "make demo   - PostgreSQL + Redis + two replicas behind HAProxy, until Ctrl-C"

## run: the server on its embedded default (SQLite in ./data) over a sample library made with ffmpeg.
run:
	@bash scripts/ensure-deps.sh run
	$(CARGO) build --release -p ephyra-server
	EPHYRA_DATA_DIR=$(DATA_DIR) $(CARGO_TARGET_DIR)/release/ephyra-server --sample-library $(DATA_DIR)/library $(RUN_ARGS)

build:
	$(CARGO) build --workspace --all-targets

deps:
	@bash scripts/ensure-deps.sh

## test: everything CI runs.
test: deps fmt-check clippy unit image-lint image-check
	@echo "make test: all checks passed"

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# One `cargo test` over the workspace: each test binary is built once and starts its own
# PostgreSQL/Redis in temporary folders. The CRD checks (staleness, kubernetes-validate, the
# invalid-spec table), the operator's schema checks and the e2e tests are part of it.
unit:
	$(CARGO) test --workspace --no-fail-fast

crd:
	$(CARGO) run -q -p ephyra-crd --bin crdgen deploy/crd.yaml

crd-check:
	$(CARGO) test -p ephyra-crd --test crd

e2e: deps
	$(CARGO) test -p ephyra-e2e --no-fail-fast

## bench: the release binaries measured against baselines in the same run (nginx, ffmpeg
## alone), written to docs/benchmarks.md. The runner is the `ephyra-bench` crate (bench/); it
## is built with the whole workspace so its release build shares every dependency with the
## servers'. BENCH_SECONDS, BENCH_OUT and BENCH_ONLY: see bench/src/main.rs.
bench: deps
	$(CARGO) build --release --workspace --bins
	$(CARGO_TARGET_DIR)/release/ephyra-bench

demo:
	@if [ -x scripts/demo.sh ]; then bash scripts/demo.sh; else echo "make demo: not available yet (scripts/demo.sh)"; exit 1; fi

## images: both images from binaries built here, FROM a Debian base made with mmdebstrap; no
## registry is needed. Archives for `k3s ctr images import` / `docker load` in build/images/.
images:
	@bash scripts/ensure-deps.sh images
ifeq ($(PROFILE),dev)
	@# The very build `make unit` made (it builds both binaries for their integration tests):
	@# nothing to compile after it, where `cargo build` would rebuild with other features.
	$(CARGO) test --workspace --no-run --quiet
else
	$(CARGO) build --profile $(PROFILE) -p ephyra-server -p ephyra-operator --bins
endif
	$(IMAGES) build

image-test: images
	$(IMAGES) test

image-lint: deps
	$(IMAGES) lint

# The images in `make test`: over the dev binaries `cargo test` already built, without saving
# archives; skipped, saying so, where podman cannot be installed (not root, not Debian).
image-check:
	@if bash scripts/ensure-deps.sh images; then \
		$(MAKE) --no-print-directory image-test PROFILE=dev SAVE=0; \
	else \
		echo "make test: image-test SKIPPED: podman, runc and mmdebstrap are needed (see above)"; \
	fi

clean:
	$(CARGO) clean
	rm -rf build
