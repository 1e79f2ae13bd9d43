# One-step setup: a local virtual environment with the package and its test tools.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# torch build: cpu (the pinned wheel, any machine) or cuda (`make setup TORCH=cuda`: the same
# torch version from PyTorch's CUDA index, for training on an NVIDIA GPU; README "GPU training")
TORCH ?= cpu
TORCH_VERSION := $(shell sed -n 's/^ *"torch==\([0-9.]*\)".*/\1/p' pyproject.toml)
TORCH_CUDA_INDEX ?= https://download.pytorch.org/whl/cu128

.PHONY: setup repro test lint bench

$(VENV)/.installed-$(TORCH): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
ifeq ($(TORCH),cuda)
	$(PY) -m pip install -q --force-reinstall 'torch==$(TORCH_VERSION)' --index-url $(TORCH_CUDA_INDEX)
	$(PY) -c "import torch; assert torch.version.cuda, 'not a CUDA build'; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU available:', torch.cuda.is_available())"
else ifneq ($(TORCH),cpu)
	$(error TORCH must be cpu or cuda, not '$(TORCH)')
endif
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(VENV)/.installed-$(TORCH)

repro: setup
	dvc repro

test: setup
	ruff check mcbits stages tests benchmarks
	$(PY) -m pytest -q

lint: setup
	ruff check mcbits stages tests benchmarks
