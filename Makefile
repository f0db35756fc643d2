# The two commands a new machine needs: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.jax_cache

.PHONY: run test test-all bench lint fmt clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/simkit run scenarios/baseline.toml --out results/baseline.nc

# Two worker processes, a test file each at a time (`--dist loadfile`: a module's fixtures are
# built once): the suite is mostly compiling, one core each. One process compiling the whole
# suite's programs in a row also hit an abort inside JAX's cache write (README "Tests").
test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q -m "not slow" -n 2 --dist loadfile

test-all: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/paths.py
	$(BIN)/python bench/engine.py

lint: $(STAMP)
	$(BIN)/ruff check simkit tests bench
	$(BIN)/ruff format --check simkit tests bench

fmt: $(STAMP)
	$(BIN)/ruff format simkit tests bench
	$(BIN)/ruff check --fix simkit tests bench

clean:
	rm -rf $(VENV) .jax_cache
