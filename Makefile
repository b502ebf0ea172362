# EventHub developer commands. `make up` and `make test` are the quick start.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= .run
STAMP := $(VENV)/.installed

.PHONY: up down logs test test-faults soak protos protos-check lint venv clean bench deploy-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The property tests' oracle: its metadata asks for python-dateutil<3, and it runs
	@# with the 4.0 the services pin, so it is installed without its dependencies.
	$(PY) -m pip install --quiet --no-deps recurring-ical-events==3.8.2 x-wr-timezone==2.0.1
	touch $(STAMP)

venv: $(STAMP)

## Bring the whole system up in the background and print its URLs.
## GATEWAY_REPLICAS=2 EVENT_REPLICAS=2 ... (also AUTH_, SHARING_, HISTORY_) run more processes.
GATEWAY_REPLICAS ?= 1
AUTH_REPLICAS ?= 1
EVENT_REPLICAS ?= 1
SHARING_REPLICAS ?= 1
HISTORY_REPLICAS ?= 1
up: $(STAMP)
	$(PY) -m scripts.stack up --run-dir $(RUN_DIR) \
		--gateway-replicas $(GATEWAY_REPLICAS) --auth-replicas $(AUTH_REPLICAS) \
		--event-replicas $(EVENT_REPLICAS) --sharing-replicas $(SHARING_REPLICAS) \
		--history-replicas $(HISTORY_REPLICAS)

down: $(STAMP)
	$(PY) -m scripts.stack down --run-dir $(RUN_DIR)

logs:
	tail -n 50 -F $(RUN_DIR)/logs/*.log

## The whole test suite (starts its own isolated stack).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Fault suite (tests/faults): kills processes, cuts PostgreSQL/Redis/NATS (~1 min).
test-faults: $(STAMP)
	$(PY) -m pytest tests/faults -m faults $(PYTEST_ARGS)

## Mixed load for SOAK_SECONDS (CI: 60) at half the sustainable rate, then checks for
## 5xx, memory growth and lost or doubled writes. SOAK_ARGS="--rate 150" fixes the rate.
SOAK_SECONDS ?= 600
soak: $(STAMP)
	$(PY) -m bench.soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

## Regenerate the gRPC stubs and type stubs from protos/.
protos: $(STAMP)
	$(PY) -m scripts.gen_protos

## Fail if the checked-in stubs differ from what protos/ generates.
protos-check: $(STAMP)
	$(PY) -m scripts.gen_protos --check

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean: down
	rm -rf $(RUN_DIR)

## Load benchmarks with wrk (BENCH_ARGS=--smoke for a quick error check), then the
## change stream's fan-out and the sync's paging (bench/stream.py), free/busy, the
## iCalendar export and what tracing costs (bench/tracing.py).
bench: $(STAMP)
	$(PY) -m bench.load $(BENCH_ARGS)
	$(PY) -m bench.stream $(BENCH_ARGS)
	$(PY) -m bench.freebusy $(BENCH_ARGS)
	$(PY) -m bench.icalendar $(BENCH_ARGS)
	$(PY) -m bench.tracing $(BENCH_ARGS)

## Offline checks of the Dockerfile, docker-compose.yml and the Kubernetes overlays.
deploy-check:
	bash scripts/check_deploy.sh
