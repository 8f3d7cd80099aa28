# Set-up and checks for a fresh machine that has python3 and make. Every target is idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# one stamp per set of extras, remade when pyproject.toml changes
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-sandbox: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[sandbox]'
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

demo: $(VENV)/.installed-sandbox
	$(PY) -m edgectl demo

bench: $(VENV)/.installed-test
	$(PY) bench/startup.py
	$(PY) bench/nodes_check.py
	$(PY) bench/purge.py
	$(PY) bench/routing.py
	$(PY) bench/failover.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
