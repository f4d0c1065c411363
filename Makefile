# Two entry points for a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs wheel-check properties bench n8n-e2e clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cachewise demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Two processes at least: most of the suite waits (servers starting, simulated latency, other
# processes), and every test keeps to its own folder, port, schema and Redis keys.
test: lint
	$(BIN)/pytest -n auto --dist loadgroup

# The documentation site, into site/: the generated reference must be current, and --strict fails
# on a broken link, a page left out of the nav or a docstring mkdocstrings cannot read.
docs: $(STAMP)
	$(BIN)/python scripts/docs_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The wheel and sdist as people install them: built, installed in a fresh venv, run (about 2 min).
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python scripts/wheel_check.sh

# The property tests at 20x their examples (`make test` runs half): minutes, not seconds.
properties: $(STAMP)
	CACHEWISE_PROPERTY_SCALE=20 $(BIN)/pytest tests/test_engine_properties.py \
		tests/test_request_robustness.py tests/test_fuzz.py tests/test_plan.py \
		tests/test_simulate.py -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Real n8n (installed once into ~/.cache/cachewise/n8n, about 3 GB and 10-15 minutes) through two
# proxies onto the emulator: not part of `make test`. N8N_E2E_ARGS=--direct skips the proxies.
n8n-e2e: $(STAMP)
	$(BIN)/python scripts/n8n_e2e.py $(N8N_E2E_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis site dist
