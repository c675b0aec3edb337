# One target per habit. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: install demo test test-fast lint bench synth smoke clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) $(NODE_STAMP)

demo: install  ## generate sample data, run the job end to end, show the results
	$(PY) tools/demo.py

test: install  ## every test (unit + Spark + end to end)
	$(PY) -m pytest

test-fast: install  ## the tests that need no JVM
	$(PY) -m pytest -m "not spark"

PROD_ALL_OPTIONS := cdk_app/examples/prod-all-options.json

# Offline, no credentials: dev defaults, then prod with every option on (cdk-nag runs in both).
# `make synth CDK_ENV=prod` synthesises one environment with its defaults instead.
synth: install  ## synthesise every stack with the real CDK CLI
ifdef CDK_ENV
	npx --no-install cdk synth -q -c env=$(CDK_ENV)
else
	npx --no-install cdk synth -q -o cdk.out/dev
	npx --no-install cdk synth -q -o cdk.out/prod-all-options -c settingsFile=$(PROD_ALL_OPTIONS)
endif

# `make smoke` after `cdk deploy`; PREFIX defaults to recsys-$(CDK_ENV) (recsys-dev), e.g.
# make smoke SMOKE_ARGS="--region eu-west-1 --cleanup --timeout 3600"
smoke: $(STAMP)  ## check a deployment end to end in your account (uploads a small file: one training run)
	$(PY) tools/smoke.py --prefix $(or $(PREFIX),recsys-$(or $(CDK_ENV),dev)) $(SMOKE_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: install  ## time and quality on generated data of several sizes, then publish throughput
	$(PY) tools/bench.py
	$(PY) tools/bench_publish.py
	$(PY) tools/bench_api.py
	@{ echo "# make bench, $$(date -u +%F), $$(nproc) cores"; echo; echo "## Job"; echo; cat .bench/results.md; \
	   echo; echo "## Quality"; echo; cat .bench/quality.md; echo; echo "## Publish"; echo; cat .bench/publish.md; echo; echo "## API"; echo; cat .bench/api.md; } > .bench/report.md
	@echo "all tables: .bench/report.md"

clean:
	rm -rf .demo .bench .pytest_cache .mypy_cache .ruff_cache spark-warehouse cdk.out
