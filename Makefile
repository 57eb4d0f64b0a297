# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-docker lint typecheck pytest soak guarantees bench bench-embedded clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps record which extras are installed; they are redone when pyproject.toml changes.
$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[local]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-local

demo: $(VENV)/.installed-local
	$(BIN)/dynaledger demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check dynaledger tests benchmarks
	$(BIN)/ruff format --check dynaledger tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# The suite spreads over the machine's cores, at most 4 (pytest-xdist); each worker
# starts its own DynamoDB server (unless DYNALEDGER_TEST_ENDPOINT names one).
# PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 $(PYTEST_ARGS)

test: lint typecheck pytest

# The whole suite with its DynamoDB started through testcontainers on a local
# Docker engine (started, and stopped again, by the script), in one process: one
# container, and a run that shows the suite passes in one process too.
test-docker: $(VENV)/.installed-dev
	scripts/docker-lane $(MAKE) pytest PYTEST_WORKERS=0

soak: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --soak -m soak $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

# The figures of the README's "Guarantees, measured" section.
guarantees: $(VENV)/.installed-dev
	$(BIN)/python -m tests.guarantees $(GUARANTEES_ARGS)

# Why the embedded endpoint serializes requests, and moto's cost per transaction.
bench-embedded: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.embedded

# Requests per operation, client overhead and contention; writes benchmarks/RESULTS.md.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
