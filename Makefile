# DTMS: `make run` starts the service on the paper broker; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint unit bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "DTMS needs Python 3.11 or newer: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(RUN_STAMP)

# The demo replays the shipped EURUSD 2017 H1 data at an hour of market per second, in its own data
# directory (the paper clock is monotone, so a replay of 2017 needs a home whose clock has not passed it).
DEMO_FEED  ?= replay:samples/eurusd_h1_2017/EURUSD_H1_2017.csv
DEMO_SPEED ?= 3600
DEMO_HOME  ?= ./data/demo

run: $(RUN_STAMP)
	DTMS_PAPER_FEED="$${DTMS_PAPER_FEED:-$(DEMO_FEED)}" DTMS_PAPER_SPEED="$${DTMS_PAPER_SPEED:-$(DEMO_SPEED)}" \
	DTMS_HOME="$${DTMS_HOME:-$(DEMO_HOME)}" $(BIN)/dtms serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks samples
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_writer.py
	$(BIN)/python benchmarks/bench_register.py
	$(BIN)/python benchmarks/broker.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
