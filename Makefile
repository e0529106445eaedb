# The two commands of the README:  `make run`  and  `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint docs setup data clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

# The example model repository: run exactly as a user's own repository would be.
EXAMPLE := examples/fraud-detector
DATA := $(EXAMPLE)/data

# The example data is generated (seeded) by the example's own script, never committed.
$(DATA)/reference.parquet: | $(STAMP)
	$(BIN)/python $(EXAMPLE)/fraud_data.py --variant good --seed 7 -o $@
$(DATA)/transactions.parquet: | $(STAMP)
	$(BIN)/python $(EXAMPLE)/fraud_data.py --variant good --seed 1 -o $@
$(DATA)/drifted.parquet: | $(STAMP)
	$(BIN)/python $(EXAMPLE)/fraud_data.py --variant drifted --seed 2 -o $@
$(DATA)/next-week.parquet: | $(STAMP)
	$(BIN)/python $(EXAMPLE)/fraud_data.py --variant good --seed 3 -o $@
data: $(DATA)/reference.parquet $(DATA)/transactions.parquet $(DATA)/drifted.parquet $(DATA)/next-week.parquet

# Pipeline, then rollout (shadow -> canary -> approval -> promotion) with demo traffic.
run: setup data
	VENV=$(VENV) scripts/demo.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site: references written from the code (in CI only checked: a stale page or an
# undocumented verb, option or config key fails), then built with --strict (a broken link fails).
docs: setup
	$(BIN)/python scripts/reference.py $(if $(CI),--check,)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The CRD API server of the cluster tests is built once and cached outside the repository
# (scripts/apiserver.sh, ~7 min cold). A failed build does not stop here: its tests fail with the
# reason, and the rest of the suite still runs.
test: lint docs
	-VENV=$(VENV) scripts/apiserver.sh >/dev/null
	$(BIN)/pytest

# Benchmarks (not part of the tests): installs wrk, writes benchmarks/results/.
bench: setup
	BENCH=1 VENV=$(VENV) scripts/setup.sh
	$(BIN)/python benchmarks/pipeline_run.py
	$(BIN)/python benchmarks/serving/run.py
	$(BIN)/python benchmarks/gateway.py
	$(BIN)/python benchmarks/routing.py
	$(BIN)/python benchmarks/monitoring.py
	$(BIN)/python benchmarks/delivery.py
	$(BIN)/python benchmarks/cli_latency.py
	$(BIN)/python benchmarks/judgement_rules.py
	$(BIN)/python benchmarks/judgement.py  # runs benchmarks/drift.py too; ~40 min

clean:
	-cd $(EXAMPLE) && ../../$(BIN)/launchbay down
	rm -rf $(EXAMPLE)/.launchbay $(DATA)
