# One entry point for humans and CI. Every target builds the virtual
# environment from nothing when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit demo bench clean redis

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[crypto,metrics,sim,cli,redis]' --group dev
	touch $(STAMP)

## test: lint, type-check and run the whole test suite (what CI runs)
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) redis
	$(BIN)/pytest

## redis: Debian's redis-server, installed when missing (the tests start their own
## on a free loopback port; nothing is left running)
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }

## demo: start the simulated exchange on loopback and rebalance through it
# Only what the demo needs (the sim extra), not the dev tools; a dev venv
# already has it.
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[sim]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m binance_transfers.demo

# The benchmarks' own venv: the peers they compare against (python-binance,
# ccxt...) would clash with the dev tools (see the bench extra).
BENCH := $(VENV)/bench
$(BENCH)/.installed: pyproject.toml $(STAMP)
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH)/bin/python -m pip install --quiet -e '.[crypto,sim,redis]' --group bench
	touch $(BENCH)/.installed

## bench: the benchmarks quoted in the README, peers included
bench: $(BENCH)/.installed redis
	$(BENCH)/bin/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
