# Every install step lives here or in `spanline stack up`, so a fresh Debian 12 machine needs
# nothing but this repository.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo test unit bench helm stack-up stack-down stack-status clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

stack-up: install
	$(BIN)/spanline stack up

stack-down: install
	$(BIN)/spanline stack down

stack-status: install
	$(BIN)/spanline stack status

demo: stack-up
	$(BIN)/spanline demo

# The chart tests need helm; it is built from the Go module proxy once and kept in the cache.
helm:
	bash deploy/tools/install-helm.sh

# pytest exits 5 when it collected no test; make treats that like any failure.
test: stack-up helm
	$(BIN)/pytest -ra $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest -ra -m "not integration and not browser" $(PYTEST_ARGS)

bench: stack-up
	$(BIN)/python -m load.bench

clean-venv:
	rm -rf $(VENV)
