# The front door. `make demo` and `make test` work from a bare checkout: they create .venv and
# install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit test-service test-contract test-integration test-chaos lint bench \
	polling-sim clean prometheus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo runs on the emulator: .[dev] includes the llmbatch[emulator] extra.
demo: $(STAMP)
	$(BIN)/llmbatch demo

# The metrics integration test runs a real Prometheus (Debian package: prometheus, promtool).
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  { apt-get install -y prometheus >/dev/null || \
	    { apt-get update >/dev/null && apt-get install -y prometheus >/dev/null; }; }

test: $(STAMP) prometheus
	$(BIN)/pytest

# One tier at a time (docs/testing.md): unit needs nothing; service a database (SQLite, or
# PostgreSQL when configured); contract the emulator in process; integration PostgreSQL,
# Redis and worker processes; chaos is the slow part of integration.
test-unit: $(STAMP)
	$(BIN)/pytest -m unit

test-service: $(STAMP)
	$(BIN)/pytest -m service

test-contract: $(STAMP)
	$(BIN)/pytest -m contract

test-integration: $(STAMP)
	$(BIN)/pytest -m "integration and not chaos"

test-chaos: $(STAMP)
	$(BIN)/pytest -m chaos

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# BENCH_SIZES: the job sizes of the ingest / memory figures (benchmarks/README.md); the full
# table is `make bench BENCH_SIZES=50000,200000,500000` (long: the default stays tolerable).
# Each script prints its own table and writes its figures to BENCH_OUT; the last step prints
# them side by side (stage / floor / ratio, memory per process and size, dispatch, LiteLLM).
BENCH_SIZES ?= 50000
BENCH_OUT ?= benchmarks/out

bench: $(STAMP) polling-sim
	mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/*.json
	$(BIN)/python benchmarks/bench_ingest.py --sizes $(BENCH_SIZES) --json $(BENCH_OUT)/ingest.json
	for n in $$(echo $(BENCH_SIZES) | tr , ' '); do \
	  $(BIN)/python benchmarks/bench_openai_path.py --items $$n \
	    --json $(BENCH_OUT)/openai_path-$$n.json || exit 1; done
	$(BIN)/python benchmarks/bench_fetch_store.py --json $(BENCH_OUT)/fetch.json
	$(BIN)/python benchmarks/bench_stage_floors.py --json $(BENCH_OUT)/floors.json
	$(BIN)/python benchmarks/bench_dispatch.py --baseline-max 1000 --json $(BENCH_OUT)/dispatch.json
	$(BIN)/python benchmarks/compare_litellm.py --json $(BENCH_OUT)/compare.json
	$(BIN)/python benchmarks/bench_summary.py $(BENCH_OUT)

polling-sim: $(STAMP)
	$(BIN)/python benchmarks/polling_simulation.py

clean:
	rm -rf $(VENV) .llmbatch .pytest_cache .mypy_cache .ruff_cache
