# One-step setup: a local virtual environment with the package and its test tools.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro test lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

repro: setup
	dvc repro

test: setup
	ruff check mcbits stages tests benchmarks
	$(PY) -m pytest -q

lint: setup
	ruff check mcbits stages tests benchmarks
