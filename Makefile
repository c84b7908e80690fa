# Everything a fresh machine with Python 3.11+ needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test test-fast check e2e e2e-install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python deploy/demo/run.py

check: install
	$(BIN)/ruff check bff tests deploy bench
	$(BIN)/ruff format --check bff tests deploy bench
	$(BIN)/mypy

# The browser suite needs Debian's chromium and the provider's node packages.
e2e-install: install
	bash tests/e2e/install.sh

e2e: e2e-install
	$(BIN)/pytest tests/e2e -m e2e $(PYTEST_ARGS)

# Every test: unit, contract (memory + real Redis), integration, e2e (real browser).
test: check e2e-install
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not e2e" -x -q $(PYTEST_ARGS)

# The benchmark of issue 6: nginx, wrk (installed when missing), private Redis, the dev
# provider and bff; prints a table and writes bench-results/. BENCH_QUICK=1 for a smoke run.
bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
