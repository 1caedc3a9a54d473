# `make demo` and `make test` each create .venv when it is missing (or out of date) and install the project.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A tested torch/torchvision pair: torchvision's compiled ops (NMS) must match the torch build.
TORCH_PAIR := torch==2.15.0 torchvision==0.29.2

.PHONY: venv demo test test-fast lint clean-demo

$(STAMP): setup.py requirements.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PAIR)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

# Everything: lint first, then every test including the slow end-to-end and multi-process ones.
test: lint
	$(PY) -m pytest tests -q

# The quick loop: lint, then the tests not marked slow (under 2 minutes on a 2-core CPU).
test-fast: lint
	$(PY) -m pytest tests -q -m "not slow"

demo: venv
	$(PY) tools/quickstart.py
