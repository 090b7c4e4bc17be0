# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration bench clean

$(STAMP): pyproject.toml examples/shortest-first/pyproject.toml tests/fixtures/broken-policy/pyproject.toml \
		integrations/snakemake-executor-plugin-tiercel/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# the example policy plug-in, and a broken one the tests must see reported, not crash on
	$(BIN)/pip install --quiet -e examples/shortest-first -e tests/fixtures/broken-policy
	$(BIN)/pip install --quiet -e integrations/snakemake-executor-plugin-tiercel
	touch $(STAMP)

demo: $(STAMP)
	@echo "== tiercel run: 1,000 tasks on local worker slots (embedded manager, SQLite) =="
	cd "$$(mktemp -d)" && $(CURDIR)/$(BIN)/tiercel run --workers 2 --queue 1000 --name demo -- \
		sh -c 'echo "task $$TIERCEL_TASK_INDEX on $$(hostname)"'

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

integration: $(STAMP)
	$(BIN)/pytest -q -m integration

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/submit.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/many_workers.py
	$(BIN)/python bench/rest_load.py --interval 1 --repeat 3
	$(BIN)/python bench/rest_load.py --interval 1 --repeat 3 --client raw
	$(BIN)/python bench/policies.py
	$(BIN)/python bench/cli_latency.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/workflows.py
	$(BIN)/python bench/store_pg.py
	$(BIN)/python bench/data_placement.py
	$(BIN)/python bench/federation.py
	SLURM_CPUS=16 bash scripts/services/slurm_up.sh >/dev/null
	$(BIN)/python bench/sites.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
