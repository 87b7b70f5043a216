# vos3k: `make run` starts the softswitch, `make test` runs the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA := var
STAMP := $(VENV)/.installed

.PHONY: run test venv install bench lint clean test-deps

run: $(STAMP)
	@$(BIN)/vos3k init --data-dir $(DATA) --admin admin
	@echo "starting vos3k: SSH admin shell on 127.0.0.1:2222 (ssh -p 2222 admin@127.0.0.1)"
	exec $(BIN)/twistd --nodaemon --pidfile= vos3k --config etc/vos3k.conf --data-dir $(DATA)

venv install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# compat mode puts the checkout on sys.path, so twistd finds twisted/plugins/vos3k_plugin.py
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $(STAMP)

test-deps:
	@sh tools/debian-test-deps.sh

test: $(STAMP) test-deps
	@$(BIN)/python -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check vos3k tests bench twisted
	$(BIN)/ruff format --check vos3k tests bench twisted

bench: $(STAMP)
	@$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
