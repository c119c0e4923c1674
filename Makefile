# winnow: two commands for a fresh machine -- `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: install browser services demo test lint bench soak clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml clients/python/pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e clients/python
	touch $(STAMP)

demo: install
	$(BIN)/python -m winnow.demo

# headless Chromium for the dashboard browser tests (Debian's package; Playwright never downloads one)
CHROMIUM ?= /usr/bin/chromium
browser:
	@[ -x $(CHROMIUM) ] || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# PostgreSQL + Redis servers the backend contract tests start themselves (Debian's packages; the
# tests run them as throwaway servers in temp dirs, so the packages' own services stay stopped)
PG_INITDB ?= $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
REDIS_SERVER ?= /usr/bin/redis-server
services:
	@[ -n "$(PG_INITDB)" ] && [ -x $(REDIS_SERVER) ] || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql redis-server; }

lint: install
	$(BIN)/ruff check --select F,E9 src tests bench clients
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/mypy --strict --config-file clients/python/pyproject.toml clients/python/src

test: install browser services lint
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python bench/store.py --json bench/results/store.json
	$(BIN)/python bench/ann.py --json bench/results/ann.json

# 10 minutes of mixed load + bundle swaps on a real server (the 20 s version runs in `make test`)
soak: install
	$(BIN)/python bench/soak.py --duration 600 --rate 50 --swap-every 30 --json bench/results/soak.json --png bench/results/soak.png

clean:
	rm -rf $(VENV) .winnow build src/*.egg-info clients/python/build clients/python/src/*.egg-info
