# `make demo` and `make test` each create .venv when it is missing (or out of date) and install the project.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A tested torch/torchvision pair: torchvision's compiled ops (NMS) must match the torch build.
TORCH_PAIR := torch==2.15.0 torchvision==0.29.2
# Wheels for machines without internet: `make wheelhouse` fills it, `make gpu-check` installs from it.
WHEELHOUSE := .wheelhouse
# Target interpreter and platform of `make wheelhouse` (default: this machine's), e.g.
# `make wheelhouse WHEEL_PYTHON=3.11 WHEEL_PLATFORM=manylinux2014_x86_64`.
WHEEL_PYTHON ?=
WHEEL_PLATFORM ?=
# What the CUDA tests need beyond the core dependencies: pytest and the onnx extra of setup.py.
GPU_CHECK_EXTRA := pytest onnx onnxruntime
GPU_CHECK_JSON ?= gpu_check.json

.PHONY: venv demo test test-fast lint clean-demo gpu-check wheelhouse official-venv

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

# Every dependency except torch/torchvision (a GPU machine brings its own build), plus what an offline
# editable install needs.
wheelhouse:
	$(PYTHON) -m pip download --dest $(WHEELHOUSE) $(if $(WHEEL_PYTHON)$(WHEEL_PLATFORM),--only-binary=:all:) \
		$(if $(WHEEL_PYTHON),--python-version $(WHEEL_PYTHON)) $(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM)) \
		pip setuptools wheel $$(grep -v -E '^[[:space:]]*(#|torch|$$)' requirements.txt) $(GPU_CHECK_EXTRA)

# The GPU machine check: the CUDA tests, then the GPU benchmark (one table; JSON in $(GPU_CHECK_JSON)). A new
# venv sees the machine's own torch when it has one; .wheelhouse/ is used when present (no internet needed).
gpu-check:
	@test -x $(PY) || if $(PYTHON) -c "import torch" 2>/dev/null; then \
		$(PYTHON) -m venv --system-site-packages $(VENV); else $(PYTHON) -m venv $(VENV); fi
	@if [ -d $(WHEELHOUSE) ]; then $(PY) -m pip install --quiet --no-index --find-links $(WHEELHOUSE) -e ".[onnx]" pytest; \
	elif [ ! -f $(STAMP) ]; then $(PY) -m pip install --quiet -e ".[onnx]" pytest; fi
	$(PY) tools/benchmark.py gpu --check --json $(GPU_CHECK_JSON)

# The official YOLOX beside this project's torch, for `tools/benchmark.py train-step-vs-official`: PyPI's
# yolox==0.3.0 is a source package that imports torch to build, so it is built without isolation, and sees
# .venv's packages through a .pth line (its own yolox comes first).
OFFICIAL_VENV := .venv-official
official-venv: venv
	test -x $(OFFICIAL_VENV)/bin/python || $(PYTHON) -m venv $(OFFICIAL_VENV)
	$(PY) -c "import site; print(site.getsitepackages()[0])" > \
		"$$($(OFFICIAL_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/project-packages.pth"
	$(OFFICIAL_VENV)/bin/python -m pip install --quiet wheel thop
	$(OFFICIAL_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation yolox==0.3.0
