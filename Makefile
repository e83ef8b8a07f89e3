# cqrs_lab: every target bootstraps .venv on a fresh clone (Python 3.11 and make only).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINTED := cqrs_lab tests benchmarks loadtests

.PHONY: demo test bench lint format lab clean postgresql-server

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cqrs-lab simulate --out results/demo

# Tests that only compute (the engine, checks, property searches, the simulation) run on
# two processes, each taking the next test when it is free (a few property searches take a
# minute each: handed out in fixed shares, one process was left with them). The tests of
# real parts that measure (load tests, knee ramps, CPU limits, the twin, the notebooks that
# load-test) run alone, as their timings and CPU limits assume a machine they do not share;
# the other tests of real parts (servers, PostgreSQL clusters, the wheel), whose checks do
# not time, run on two processes between them.
COMPUTE_TESTS := tests/core tests/checks tests/contract tests/domains tests/properties \
  tests/sim tests/sim_oracles tests/test_doctests.py tests/test_display.py \
  tests/test_cli_errors.py tests/test_testing_extra.py tests/test_notebooks_simulated.py
ALONE_TESTS := tests/load tests/test_notebooks.py tests/test_demo.py tests/test_make_test.py \
  tests/test_one_install.py tests/test_readme.py tests/postgres/test_loop_twin_workers.py \
  tests/postgres/test_loadtest_workers.py
SHARED_TESTS := $(filter-out $(COMPUTE_TESTS) $(ALONE_TESTS) tests/__pycache__ tests/postgres,\
  $(patsubst %/,%,$(wildcard tests/*/)) $(wildcard tests/test_*.py) \
  $(wildcard tests/postgres/test_*.py))

# lint and types first (ruff, ruff format, mypy): CI (.ci/run) runs this target
test: lint postgresql-server
	$(BIN)/python -m pytest -q -n 2 --dist worksteal $(COMPUTE_TESTS)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal $(SHARED_TESTS)
	$(BIN)/python -m pytest -q $(ALONE_TESTS)

# The PostgreSQL tests start a throwaway cluster with the server binaries (initdb, pg_ctl):
# install Debian's package when they are missing; if that fails, those tests say what to install.
postgresql-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  echo "the PostgreSQL tests need the server binaries (Debian package postgresql): installing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
	  >/dev/null 2>&1 || echo "could not install postgresql; the PostgreSQL tests will fail"; }

bench: $(STAMP) postgresql-server
	@command -v wrk >/dev/null 2>&1 || { echo "W3 needs wrk (Debian package): installing it"; \
	  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || \
	  echo "could not install wrk; W3 will say so and be skipped"; }
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format $(LINTED)
	$(BIN)/ruff check --fix $(LINTED)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
