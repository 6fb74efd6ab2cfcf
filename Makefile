# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv when it is missing and are fast the second time.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test up bench stress stress-unique lint typecheck schemas clean lock native

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

demo: native
	$(BIN)/metering demo

# The aggregator's hot path compiled to C by mypyc (services/infra/native.py says which
# modules and why); fast when nothing changed. `$(BIN)/python scripts/build_native.py --clean`
# removes it, and the same sources run as Python.
native: $(STAMP)
	$(BIN)/python scripts/build_native.py

up: native
	$(BIN)/metering up

test: lint native
	$(BIN)/metering kafka fetch
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Ruff's rule set is in pyproject.toml ([tool.ruff]); mypy is strict. `make test` runs this first.
lint: $(STAMP)
	$(BIN)/ruff check --no-cache
	$(BIN)/python -m mypy

# Throughput, latency and memory on this machine (docs/benchmarks.md); BENCH_ARGS=--quick for a short run.
bench: native
	$(BIN)/python -m bench $(BENCH_ARGS)

# Crash safety, repeated: N runs of the SIGKILL exactness tests, prints "K of N exact" (not in CI).
N ?= 25
stress: native
	$(BIN)/metering kafka fetch
	$(BIN)/python scripts/stress.py --runs $(N)

# Issue 11's UNIQUE_COUNT proof at full size: 1,000,000 distinct values in one series,
# counted exactly through a SIGKILL (about 5 minutes here; CI runs the 200,000-value case).
stress-unique: native
	$(BIN)/metering kafka fetch
	METERING_STRESS=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider "tests/e2e/test_unique_count_scale.py::test_distinct_values_are_counted_exactly_through_a_sigkill[1000000]"

typecheck: $(STAMP)
	$(BIN)/python -m mypy

# The Customer and PricePlan JSON Schemas, generated from the models into docs/schemas
# (tests/unit/test_generated_schemas.py fails when they are stale).
schemas: $(STAMP)
	$(BIN)/python scripts/generate_schemas.py

# Re-resolve the pinned set after changing pyproject.toml's dependencies.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -e '.[test]' && .lock-venv/bin/pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .cache .metering
	$(PYTHON) scripts/build_native.py --clean
