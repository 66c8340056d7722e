# dialsflow — developer entry points. `make test` is what CI runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: setup test test-browser lint emulator demo airflow bench clean lock

setup: $(STAMP)

# Recreated only when a dependency file changes: a no-op run takes well under a second.
# dialsflow itself (editable, with its airflow and emulator extras) plus the pins: production's
# (requirements.txt) and development's (requirements-dev.txt: emulator, test tools). No pandas:
# where it is installed, cmsdials imports it in every process.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.txt -r requirements-dev.txt \
		-c constraints.txt -e ".[airflow,emulator]"
	@touch $@

# Two workers, whole files each: the Airflow and deployment tests mostly wait on polling
# loops, so the suite takes ~9 instead of ~15 minutes on two cores. The browser test
# (tests/ui/test_ingestion_page.py) needs Chromium: `browser` installs Debian's.
test: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The UI tests alone, the browser test included.
test-browser: setup browser
	$(BIN)/python -m pytest -q tests/ui

# Debian's Chromium for the browser test (tests/ui/test_ingestion_page.py, driven by Playwright with
# executable_path: no browser download); nothing to do when it is installed. CI runs as root.
.PHONY: browser
browser:
	@command -v chromium >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null; }

lint: setup
	$(BIN)/ruff check .

# Serve the demo world on :8765 in the foreground (Ctrl-C stops it); another port: PORT=8766.
emulator: setup
	$(BIN)/dialsflow-emulator serve --port $(or $(PORT),8765) --profile demo

# Local Airflow state lives in .airflow/<name>/ (git-ignored): demo, standalone, deploy.

# One night of dials_ingest against the emulator (Airflow on SQLite in .airflow/demo/),
# then a summary: runs ingested and pending, files, completeness, how to read the parquet.
demo: setup
	$(BIN)/python -m localdev.demo

# `airflow standalone` on :8080 with the emulator connections (state in .airflow/standalone/):
# open the UI, trigger with Params, backfill, read task logs. Ctrl-C stops it. Other ports:
# make airflow PORT=8081 EMULATOR_PORT=8766
airflow: setup
	$(BIN)/python -m localdev.standalone --port $(or $(PORT),8080) \
		--emulator-port $(or $(EMULATOR_PORT),8765)

# The seed-style baseline of the ingestion benchmark needs pandas: its own small venv (dialsflow's
# runtime + pandas), so the dialsflow cases run as in production, without pandas.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: $(STAMP) requirements-bench.txt
	@test -x $(BENCH_VENV)/bin/python || $(BIN)/uv venv -q --python $(BIN)/python $(BENCH_VENV)
	$(BIN)/uv pip install -q --python $(BENCH_VENV)/bin/python -r requirements-bench.txt \
		-c constraints.txt .
	@touch $@

# The benchmarks, one after the other (each starts its own emulator); about half an hour.
bench: setup $(BENCH_VENV)/.installed
	$(BIN)/python bench/emulator_throughput.py
	$(BIN)/python bench/ingest_benchmark.py
	$(BIN)/python bench/server_model.py

# Smoke run of the ingestion benchmark (1 and 3 runs per ME, about a minute).
.PHONY: bench-quick
bench-quick: setup $(BENCH_VENV)/.installed
	$(BIN)/python bench/ingest_benchmark.py --quick

# Refresh the full lock after changing requirements*.txt or the ranges in pyproject.toml
# (resolved together, so a pin outside its declared range fails here).
lock:
	$(BIN)/uv pip compile -q requirements.txt requirements-dev.txt requirements-bench.txt \
		pyproject.toml --all-extras \
		-o constraints.txt --no-header --python-version 3.11

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache *.egg-info .airflow/demo out/demo

# The docker-compose topology natively (PostgreSQL, Redis, Celery worker, api-server on :8080),
# in .airflow/deploy/; see docs/deployment.md. Flags via DEPLOY_ARGS / STOP_ARGS, e.g.
# make deploy-local DEPLOY_ARGS="--emulator --port 8081"   make deploy-stop STOP_ARGS=--drop-db
.PHONY: deploy-local deploy-stop
DEPLOY_ARGS ?= --emulator
deploy-local: setup
	$(BIN)/python -m deploy.native start $(DEPLOY_ARGS)

deploy-stop:
	$(BIN)/python -m deploy.native stop $(STOP_ARGS)
