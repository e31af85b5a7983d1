# Set-up is part of every target: a fresh clone needs nothing but Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# torch first, with the exact pin: a looser requirement pulls several GB of CUDA wheels.
TORCH_PIN := torch==2.13.0
EXTRAS ?= dev,samples

.PHONY: setup test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(INSTALLED)

setup: $(INSTALLED)

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m envs.demo

bench: setup
	$(PY) -m pip install --quiet -e ".[$(EXTRAS),bench]"
	$(PY) -m envs.bench
	$(PY) -m features.bench
	$(PY) -m risk.bench
	$(PY) -m learners.bench
	$(PY) -m hierarchy.bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
