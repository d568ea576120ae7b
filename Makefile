# MoonMind Broker. The two commands a new user needs:
#   make run    start Redis/PostgreSQL (when none answer), brokerd and two workers
#   make test   run the whole test suite, end-to-end and fault tests included
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
# The whole suite, including the end-to-end and fault packages, must finish
# within this per-package limit.
TEST_TIMEOUT ?= 60m
TEST_FLAGS ?= -race -count=1 -timeout $(TEST_TIMEOUT)

.PHONY: help build run stop test e2e test-faults bench lint compose-check clean

help:
	@echo "make run            start a local broker on https://localhost:8443 (see README.md)"
	@echo "make stop           stop what make run started"
	@echo "make test           run every test with the race detector and print a summary"
	@echo "make e2e            run only the end-to-end test of the real binaries"
	@echo "make test-faults    run only the fault tests (./faults/...)"
	@echo "make bench          run the benchmarks"
	@echo "make lint           gofmt and go vet"
	@echo "make compose-check  validate docker-compose.yml and the Dockerfile without a Docker engine"
	@echo "make build          build the binaries into bin/"

build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

run:
	@bash scripts/run.sh

stop:
	@bash scripts/stop.sh

# go test -json feeds scripts/testsummary, which prints one line per
# package, the output of every failure and a closing "tests: N passed, N
# failed" line. The raw stream stays in .run/test-output.json.
test:
	@mkdir -p bin .run
	@$(GO) build -o bin/testsummary ./scripts/testsummary
	$(GO) test $(TEST_FLAGS) -json ./... | tee .run/test-output.json | bin/testsummary

e2e:
	$(GO) test $(TEST_FLAGS) -v ./e2e/

test-faults:
	$(GO) test $(TEST_FLAGS) -v ./faults/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [[ -n "$$out" ]]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# No Docker engine runs on the development machines, so the Go test parses
# docker-compose.yml and the Dockerfile itself; `docker compose config` runs
# as well where the compose plugin is installed.
compose-check:
	@if docker compose version >/dev/null 2>&1; then \
		docker compose config -q && echo "docker compose config: ok"; \
	else \
		echo "docker compose is not installed here; checking the files with the Go test only"; \
	fi
	$(GO) test -count=1 -run 'TestCompose|TestDockerfile' -v ./e2e/

clean:
	rm -rf bin
