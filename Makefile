# Set-up and checks for a fresh machine that has python3 and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m edgectl demo

bench: $(STAMP)
	$(PY) bench/startup.py
	$(PY) bench/nodes_check.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
