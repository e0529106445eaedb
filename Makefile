# The two commands of the README:  `make run`  and  `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint setup data clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

# The example data is generated (seeded), never committed.
data/reference.parquet: | $(STAMP)
	$(BIN)/launchbay example-data --variant good --seed 7 -o $@
data/transactions.parquet: | $(STAMP)
	$(BIN)/launchbay example-data --variant good --seed 1 -o $@
data/drifted.parquet: | $(STAMP)
	$(BIN)/launchbay example-data --variant drifted --seed 2 -o $@
data/next-week.parquet: | $(STAMP)
	$(BIN)/launchbay example-data --variant good --seed 3 -o $@
data: data/reference.parquet data/transactions.parquet data/drifted.parquet data/next-week.parquet

# Pipeline, then rollout (shadow -> canary -> approval -> promotion) with demo traffic.
run: setup data
	VENV=$(VENV) scripts/demo.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# Benchmarks (not part of the tests): installs wrk, writes benchmarks/results/.
bench: setup
	BENCH=1 VENV=$(VENV) scripts/setup.sh
	$(BIN)/python benchmarks/pipeline_run.py
	$(BIN)/python benchmarks/serving/run.py
	$(BIN)/python benchmarks/gateway.py
	$(BIN)/python benchmarks/delivery.py

clean:
	-$(BIN)/launchbay down
	rm -rf .launchbay data
