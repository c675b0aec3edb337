# One target per habit. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(STAMP)

demo: install  ## generate sample data, run the job end to end, show the results
	$(PY) tools/demo.py

test: install  ## every test (unit + Spark + end to end)
	$(PY) -m pytest

test-fast: install  ## the tests that need no JVM
	$(PY) -m pytest -m "not spark"

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: install  ## time and quality on generated data of several sizes, then publish throughput
	$(PY) tools/bench.py
	$(PY) tools/bench_publish.py

clean:
	rm -rf .demo .bench .pytest_cache .mypy_cache .ruff_cache spark-warehouse
