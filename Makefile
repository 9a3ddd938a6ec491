# Quick start: `make run` (set up and start the app) and `make test` (set up and run the tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests and benchmarks run in a private network namespace holding only loopback,
# so no packet (not even the QUIC stack's port-mapping probes) leaves this machine.
ISOLATED := scripts/isolated

.PHONY: run test bench lint system-deps js-deps bytecode clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

system-deps:
	@scripts/install-system-deps

# The browser tests' JavaScript (axe-core), pinned in tests/js/package-lock.json.
js-deps: system-deps
	@scripts/install-js-deps

# An installed package comes with bytecode; an editable one would parse every
# module again on each start (more so where PYTHONDONTWRITEBYTECODE is set).
bytecode: $(STAMP)
	@$(PY) -m compileall -q src >/dev/null

run: $(STAMP) bytecode
	$(VENV)/bin/p2p-transfer app

lint: $(STAMP)
	$(PY) -m ruff check src tests bench

# Two workers: most tests wait on timers, processes and browsers rather than on a CPU.
# Each worker gets a network namespace of its own (tests/conftest.py), which needs
# root; without it the workers would share fixed ports, so the tests run in one process.
TEST_WORKERS ?= $(if $(filter 0,$(shell id -u)),2,0)

test: $(STAMP) system-deps js-deps lint
	$(ISOLATED) $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP) system-deps bytecode
	$(ISOLATED) $(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache test-artifacts tests/js/node_modules
