# The two quickstart commands (`make demo`, `make test`) must work on a fresh
# machine with only python3 and make: every target creates or reuses .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest pytest-interpreted native bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs take the versions in constraints.txt, the set the suite last passed with, so a
# new release of a linter or a library cannot turn a clean checkout red on its own. As an
# environment variable the constraints also reach pip's isolated build environment.
# `make native` runs setup.py with the venv's own setuptools, which must read the SPDX
# project.license (PEP 639; setuptools 77 and later), as pyproject's build-system asks.
$(STAMP): $(BIN)/python pyproject.toml setup.py constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools==84.2.1'
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Re-pin constraints.txt to the newest releases pyproject.toml allows, resolved in a
# throwaway venv (nothing installed by hand leaks in); run `make test` after it. The
# install there skips compiling: only the dependency set is wanted from it.
LOCK_VENV := build/lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	CUSTOMS_LEDGER_PURE=1 $(LOCK_VENV)/bin/python -m pip install --quiet '.[test]'
	{ sed -n '/^#/p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --all \
		| grep -viE '^(customs[-_]ledger|pip|setuptools|wheel)[=@ ]'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

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

# The README's first command: the whole mission on a local five-node network, checked
# step by step (docs/demo.md). Options go through ARGS: make demo ARGS="--keep --verbose".
demo: native
	$(BIN)/python scripts/demo.py $(ARGS)

bench: native
	$(BIN)/python scripts/bench.py core

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build node/native-sources.json
	find . -name '*.so' -not -path './$(VENV)/*' -delete
