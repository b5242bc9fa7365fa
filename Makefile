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
BENCH_SIZES ?= 50000

bench: $(STAMP) polling-sim
	$(BIN)/python benchmarks/bench_ingest.py --sizes $(BENCH_SIZES)
	for n in $$(echo $(BENCH_SIZES) | tr , ' '); do \
	  $(BIN)/python benchmarks/bench_openai_path.py --items $$n || exit 1; done
	$(BIN)/python benchmarks/bench_fetch_store.py
	$(BIN)/python benchmarks/bench_dispatch.py

polling-sim: $(STAMP)
	$(BIN)/python benchmarks/polling_simulation.py

clean:
	rm -rf $(VENV) .llmbatch .pytest_cache .mypy_cache .ruff_cache
