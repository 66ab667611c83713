# HCRM: the two commands a newcomer needs are `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: up down status clean test test-unit gates test-reliability test-cluster demo init deps broker tools bench soak help

help:
	@echo "make up      start RabbitMQ (installing it if needed), NX-27017, every service and the gateway"
	@echo "make down    stop what make up started (data is kept in .local/)"
	@echo "make test    run the whole test suite (unit, integration, end-to-end, deploy checks)"
	@echo "make demo    a hospital's last three months on the running platform: events, calls, complaints"
	@echo "make clean   stop everything, delete .local/ and the RabbitMQ virtual host (asks; YES=1 does not)"
	@echo "make bench   run the benchmarks (bench/README.md), appending figures to bench/RESULTS.md (~10 min)"
	@echo "make soak    30 min at 20 events/s with the portal's reads: RSS, CPU, queues, p99 over time (bench/soak.py)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

deps: $(STAMP)

broker:
	@bash deploy/ensure-rabbitmq.sh

tools:
	@bash deploy/ensure-tools.sh

up: deps broker
	$(PY) -m shared.cli up

down:
	@if [ -x $(PY) ]; then $(PY) -m shared.cli down; else echo "nothing to stop"; fi

status: deps
	$(PY) -m shared.cli status

# Stops everything, then deletes .local/ and this installation's RabbitMQ virtual host, after
# asking; `make clean YES=1` does not ask.
clean:
	@if [ -x $(PY) ]; then $(PY) -m shared.cli clean $(if $(YES),--yes); \
	else echo "no .venv: nothing was started by make up"; fi

init: deps broker
	$(PY) -m shared.cli init

demo: deps
	$(PY) -m shared.cli simulate --months 3 --count 600 --rate 0

# The quality gates first (about a minute: a failure stops the run before the long suites),
# then every suite the gates did not run.
test: deps broker tools
	$(MAKE) gates
	$(PY) -m pytest --ignore=tests/unit --ignore=tests/service

# Quality gates, part of `make test` (pyproject.toml holds every setting): lint and format
# (ruff), the types of shared/ and of each service's domain.py and store.py (mypy), then the
# in-process suites with their coverage floor ([tool.coverage.report] fail_under).
gates: deps
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy
	$(PY) -m pytest tests/unit tests/service --cov --cov-report=term

test-unit: deps
	$(PY) -m pytest tests/unit tests/service

test-reliability: deps broker
	$(PY) -m pytest tests/reliability

# Three extra RabbitMQ nodes clustered on this machine (own names, ports, data dirs, cookie;
# the machine's broker on :5672 is not touched), quorum queues, a node killed with -9 and a
# rolling restart with events flowing (~5 min). Also part of `make test` (testpaths).
test-cluster: deps broker
	$(PY) -m pytest tests/cluster

# Not part of `make test`: each bench starts its own isolated installation (own vhost,
# own NX-27017) and appends its figures to bench/RESULTS.md. Longer runs: bench/README.md.
# Not part of `make test` nor `make bench`: 30 minutes (MINUTES=10 for a shorter one) at
# 20 events/s with the portal's reads; does anything grow that would fill a machine in a month?
soak: deps broker
	$(PY) -m bench.soak --minutes $(or $(MINUTES),30) --rate $(or $(RATE),20)

bench: deps broker tools
	$(PY) -m bench.intake_throughput 2000
	$(PY) -m bench.hl7_throughput 2000
	$(PY) -m bench.framework_overhead 2000
	$(PY) -m bench.fanout 5000
	$(PY) -m bench.latency --rates 50 --duration 300 --drain 30
	$(PY) -m bench.latency --rates 10,200 --duration 60 --drain 60
	$(PY) -m bench.import_year --events 20000
	$(PY) -m bench.gateway_load --connections 32 --duration 15
	$(PY) -m bench.analytics_scale --events 300000 --rpc-cap 60
