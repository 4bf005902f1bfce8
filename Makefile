# inferbox: the two commands users run are `make conformance` and `make test`.
# Both run `setup` first; setup is idempotent and takes well under a second when nothing changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.inferbox-installed
PYTEST_ARGS ?=
TEST_RUN := $(shell date -u +%Y%m%dT%H%M%SZ)

RUNS ?= 10
NOISE ?= 0
MUTANT_JOBS ?= 2
# `make test` keeps its conformance report here, and the mutant run takes its baseline from it.
CONFORMANCE_REPORT ?=

.PHONY: setup conformance test check lint typecheck unit platform-tests load mutants mutants-nightly flakes bench bench-readme clean help chaos chaos-slow

help:
	@echo "make conformance   stand up the embedded platform and run pytest -m conformance"
	@echo "make test          lint, type-check, unit tests, conformance suite, load smoke + calibration, mutants"
	@echo "make check         lint, type-check and the unit tests that start no platform (a few minutes)"
	@echo "make load          the smoke load profile with its SLOs and the load calibration self-test"
	@echo "make mutants       every mutant but the nightly ones (chaos), MUTANT_JOBS=2 at once"
	@echo "make mutants-nightly  every mutant, the chaos experiments' too (about an hour)"
	@echo "make flakes        the conformance suite RUNS=10 times on one platform (NOISE=1: a CPU hog on one core)"
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

# Ends with the slowest ten tests (setup included).
conformance: setup
	INFERBOX_SLOWEST=10 $(BIN)/pytest -m conformance -p no:cacheprovider \
		$(if $(CONFORMANCE_REPORT),--inferbox-report-dir $(CONFORMANCE_REPORT)) $(PYTEST_ARGS)

# Each test's pass rate over RUNS conformance runs against one kept platform; the report goes to
# docs/flakes.md. NOISE=1 pins a CPU hog to one core for the whole run (stopped by PID at the end).
flakes: setup
	$(BIN)/python -m inferbox.flakes --runs $(RUNS) $(if $(filter 1,$(NOISE)),--noise) --output docs/flakes.md

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy inferbox suites tests bench

# The suite's own tests that start no platform: unit tests and the Kind target against fakes, on two
# workers (pytest-xdist): they are independent, and half of their time is waiting on subprocesses.
unit: setup
	$(BIN)/pytest tests/unit tests/cluster -n 2 -p no:cacheprovider $(PYTEST_ARGS)

# The suite's own tests that start embedded platforms (lifecycle, reaper, CLI), on two workers: each
# test's platform is an instance of its own (namespaces, ports, state folder), as the mutant run's are.
platform-tests: setup
	$(BIN)/pytest tests/platform -n 2 -p no:cacheprovider $(PYTEST_ARGS)

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

# MUTANT_JOBS workers; mutants that only change what the gateway reads share a worker's platform
# (reconfigured in place), the others get a platform each. Within `make test` the baseline is the
# conformance run just before (its report); alone, the run makes its own baseline first.
mutants: setup
	$(BIN)/inferbox mutants run --jobs $(MUTANT_JOBS) \
		$(if $(CONFORMANCE_REPORT),--baseline-report $(CONFORMANCE_REPORT)/report.json)

# The nightly run: every mutant, also those whose killers are chaos experiments (minutes each).
mutants-nightly: setup
	$(BIN)/inferbox mutants run --nightly --jobs $(MUTANT_JOBS)

# `make test`: what CI runs, steps in this order (make without -j). Measured from a fresh clone on
# 2 cores (2026-12-08, 23 min in all, install included; CI allows 90):
#   install, lint + typecheck   2 min
#   unit                 2 min    (tests/unit, tests/cluster on two workers)
#   platform-tests       2 min    (tests/platform on two workers: platforms started and killed)
#   conformance          2.5 min  (platform start + 123 s of tests; target 2 min, see README "Timing")
#   chaos                4.5 min  (suites/chaos, key rotation aside)
#   load                 2 min    (smoke profile + calibration)
#   mutants              8.5 min  (64 mutants, two workers; baseline from the conformance report)
# A step added later gets a line here; the total must stay well inside CI's 90 minutes.
test: CONFORMANCE_REPORT = reports/$(TEST_RUN)-test-conformance
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
