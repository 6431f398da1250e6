# The two quickstart commands (`make test`, later `make demo`) must work on a fresh
# machine with only python3 and make: every target creates or reuses .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest pytest-interpreted native bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The hot path runs as mypyc-compiled extensions built next to the sources (setup.py,
# node/native.py); rebuild them whenever a compiled module's source has changed.
native: $(STAMP)
	@$(BIN)/python -c "import sys, node.native as n; sys.exit(n.needs_build())" \
		|| $(BIN)/python setup.py --quiet build_ext --inplace

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: native
	$(BIN)/pytest -q

# The same suite on the interpreted sources, the build that runs where no C compiler is
# (setup.py falls back to it): on a copy without the extensions, since Python imports an
# extension in preference to the .py beside it.
INTERPRETED := build/interpreted
pytest-interpreted: $(STAMP)
	rm -rf $(INTERPRETED) && mkdir -p $(INTERPRETED)
	tar --exclude='*.so' --exclude=__pycache__ -cf - ledger contracts node scripts tests docs \
		README.md pyproject.toml | tar -xf - -C $(INTERPRETED)
	cd $(INTERPRETED) && PYTHONPATH=$(CURDIR)/$(INTERPRETED) $(CURDIR)/$(BIN)/pytest -q -p no:cacheprovider

test: lint typecheck pytest pytest-interpreted

bench: native
	$(BIN)/python scripts/bench.py core

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build node/native-sources.json
	find . -name '*.so' -not -path './$(VENV)/*' -delete
