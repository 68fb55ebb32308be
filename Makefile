# jobwire — two commands to know: `make run` (the whole stack on this machine) and `make test`.
SHELL := /bin/bash
# uv is looked up (and installed when missing) the first time a recipe needs it, not when make parses this
# file: a fresh machine has no uv yet, and a path fixed at parse time is wrong after the install.
UV ?= $(eval UV := $$(shell bash scripts/ci/find-uv.sh))$(UV)
PYTEST_ARGS ?=

.PHONY: run test lint bench soak sync setup backends schemas clean secrets images

## run: start NATS, SQLite (or $$JOBWIRE_DATABASE_URL), scheduler, a local executor and the API on :8000
run: sync
	$(UV) run --frozen jobwire-stack

## test: install what the tests need (uv, Python deps, PostgreSQL ...) and run every test
test: setup
	$(UV) run --frozen pytest $(PYTEST_ARGS)

## lint: ruff and mypy (strict on libs)
lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/contracts/src libs/store/src libs/runtime/src libs/execution/src libs/client/src
	$(UV) run --frozen mypy services/scheduler/src services/gateway/src services/stack/src services/executor-docker/src services/executor-ssh/src services/executor-hpc/src

## bench: jobwire's figures beside this machine's ceilings, measured in the same run: one JSON document
## printed and written with a PNG of the throughput/latency curve and the memory soak to build/bench/
## (wrk installed if it can be); a part that fails is recorded in the document and the run goes on
bench: sync
	-bash scripts/ci/install-backends.sh bench
	$(UV) run --frozen python -m benchmarks.stack_bench

## soak: the 10-minute memory soak alone (SQLite: the curve and end to end first, for its rate)
soak: sync
	BENCH_PARTS=curve,end_to_end,soak BENCH_DATABASES=sqlite $(UV) run --frozen python -m benchmarks.stack_bench

## schemas: regenerate libs/contracts/schemas/v1 after changing a contract
schemas: sync
	$(UV) run --frozen python -m jobwire.contracts.v1.schemas

## secrets: NATS users + passwords, database and API-key secrets for `docker compose` (deploy/secrets)
secrets: sync
	bash scripts/docker/secrets.sh

## images: the jobwire images from the workspace (no registry needed), then `docker compose up -d`
images: sync
	bash scripts/docker/wheelhouse.sh
	docker compose build

setup:
	bash scripts/ci/bootstrap.sh

sync:
	$(UV) sync --frozen

backends:
	bash scripts/ci/install-backends.sh

clean:
	rm -rf .jobwire .pytest_cache .mypy_cache .ruff_cache
