# Set-up and checks for a fresh machine that has python3 and make. Every target is idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# the first-party plugin packages, each installed editable beside edgectl and tested after it
PLUGINS := $(sort $(wildcard plugins/edgectl-*))

# one stamp per set of extras, remade when a pyproject.toml changes
$(VENV)/.installed-test: pyproject.toml $(PLUGINS:%=%/pyproject.toml) | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	$(if $(PLUGINS),$(PY) -m pip install --quiet --no-build-isolation $(PLUGINS:%=-e %))
	touch $@

$(VENV)/.installed-sandbox: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[sandbox]'
	touch $@

# each plugin's tests run from its own folder, as its own project (its pyproject.toml holds their settings)
test: $(VENV)/.installed-test
	$(PY) -m pytest -q
	@set -e; for plugin in $(PLUGINS); do echo "$$plugin:"; (cd $$plugin && $(abspath $(PY)) -m pytest -q tests); done

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
