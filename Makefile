# orderflow — run `make help` for the targets. Each target calls a script in
# scripts/; the scripts are idempotent and print what they do.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help build up down demo test test-unit bench lint fmt clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build .local/bin/orderflow
	@scripts/build.sh

up: ## start PostgreSQL, Kafka, the ClickHouse server and fetch libchdb.so (127.0.0.1 only, state in .local/)
	@scripts/up.sh

down: ## stop everything `make up` and `make demo` started
	@scripts/down.sh

demo: ## bring the stack up, run the whole pipeline on a generated workload, print reports (leaves it running; stop with make down)
	@scripts/demo.sh

test: ## start the stack if needed and run every test (unit tests with -race, integration tests on the real services)
	@scripts/test.sh

test-unit: ## run the tests that need no service (integration tests skip unless CI=true)
	@go test -race -count=1 ./...

bench: ## benchmark the whole pipeline on this machine; results in bench/results/
	@scripts/bench.sh

lint: ## go vet and gofmt check
	@scripts/lint.sh

fmt: ## gofmt the tree
	@gofmt -w $$(git ls-files '*.go')

clean: down ## stop the stack and delete its data (keeps the download cache)
	@rm -rf .local/pg .local/kafka .local/clickhouse .local/chdb .local/log .local/run .local/bin
