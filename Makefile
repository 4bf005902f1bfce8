# inferbox: the two commands users run are `make conformance` and `make test`.
# Both run `setup` first; setup is idempotent and takes well under a second when nothing changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.inferbox-installed
PYTEST_ARGS ?=

.PHONY: setup conformance test check lint typecheck unit platform-tests load mutants bench bench-readme clean help chaos chaos-slow

help:
	@echo "make conformance   stand up the embedded platform and run pytest -m conformance"
	@echo "make test          lint, type-check, unit tests, conformance suite, load smoke + calibration, mutants"
	@echo "make check         lint, type-check and the unit tests that start no platform (a few minutes)"
	@echo "make load          the smoke load profile with its SLOs and the load calibration self-test"
	@echo "make chaos         the chaos experiments (faults under load) on the embedded target, key rotation aside"
	@echo "make chaos-slow    the chaos experiments marked slow (key rotation: about 11 minutes)"
	@echo "make setup         create $(VENV) and install everything (idempotent)"
	@echo "make bench         run every benchmark, save bench/results/*.json, print all figures against targets"
	@echo "make bench-readme  rewrite the README's (and docs/load.md's) benchmark tables from bench/results"

setup: $(STAMP)
	@scripts/system-deps --check-or-install

$(STAMP): pyproject.toml scripts/check-python
	@scripts/check-python $(PYTHON)
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

conformance: setup
	$(BIN)/pytest -m conformance -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy inferbox suites tests bench

# The suite's own tests that start no platform: unit tests and the Kind target against fakes, on two
# workers (pytest-xdist): they are independent, and half of their time is waiting on subprocesses.
unit: setup
	$(BIN)/pytest tests/unit tests/kind -n 2 -p no:cacheprovider $(PYTEST_ARGS)

# The suite's own tests that start embedded platforms (lifecycle, reaper, CLI).
platform-tests: setup
	$(BIN)/pytest tests/platform -p no:cacheprovider $(PYTEST_ARGS)

check: lint typecheck unit

# The smoke load profile (one test per SLO) and the calibration self-test (tests/load): about 2 minutes.
load: setup
	$(BIN)/pytest -m load --inferbox-load-profile smoke -p no:cacheprovider $(PYTEST_ARGS)

# Chaos experiments (suites/chaos): faults under load, each with a steady-state hypothesis. Key
# rotation waits out the gateway's five-minute key cache twice: it is `slow`, run by chaos-slow.
chaos: setup
	$(BIN)/pytest suites/chaos -m "chaos and not slow" -p no:cacheprovider $(PYTEST_ARGS)

chaos-slow: setup
	$(BIN)/pytest suites/chaos -m "chaos and slow" -p no:cacheprovider $(PYTEST_ARGS)

mutants: setup
	$(BIN)/inferbox mutants run

test: lint typecheck unit platform-tests conformance chaos load mutants

# Every benchmark (about half an hour); each saves bench/results/<name>.json, then the table of all
# figures against their targets. wrk (Debian's package) runs beside the load generator.
bench: setup
	@INFERBOX_EXTRA_DEPS="wrk:wrk" scripts/system-deps --check-or-install
	$(BIN)/python -m bench

bench-readme: setup
	$(BIN)/python -m bench --readme

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
