# The two commands of the README's quick start, plus a few for developers.
# Everything installs into .venv; nothing touches the system Python.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test lint bench clean

run: $(VENV)/.installed          ## set up, then run `farmbot serve` on embedded defaults
	$(BIN)/farmbot serve

test: $(VENV)/.installed-test    ## set up, then run the test suite
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev      ## style, strict types and the import contract (CI runs it)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src tests bench
	$(BIN)/lint-imports

bench: $(VENV)/.installed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

$(VENV)/.python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "farmbot needs Python 3.11 or newer; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@touch $@

$(VENV)/.installed: $(VENV)/.python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-dev: $(VENV)/.python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test,dev]"
	@touch $@ $(VENV)/.installed $(VENV)/.installed-test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
