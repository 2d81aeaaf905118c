# A benchmark stack: STACK=hf (the transformers baseline) or STACK=vllm, on VARIANT=cu130|cu128 (a CUDA base)
# or VARIANT=cpu (a Debian base). Versions come from docker/locks/<stack>-<variant>.txt (make lock).
#
# Three stages, so that the final image holds neither a proxy's CA bundle nor a wheelhouse (docker/pip-extra/,
# filled by `make build` from PIP_CA and WHEELHOUSE): `base` has Python with a compiler and its headers
# (Triton and torch.compile build their launchers and kernels at run time), `deps` installs the lock into
# /opt/venv, and the last stage copies that virtualenv onto `base`.
ARG STACK_BASE=nvidia/cuda:13.0.3-runtime-ubuntu24.04
FROM ${STACK_BASE} AS base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ \
      libc6-dev libnuma1 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM base AS deps
ARG STACK=hf
ARG VARIANT=cu130
# Only this stack's lock (`make lock VARIANT=...` writes it), so that another lock's change keeps this layer.
COPY docker/locks/${STACK}-${VARIANT}.txt /tmp/lock.txt
COPY docker/pip-extra/ /tmp/pip-extra/
RUN if [ -f /tmp/pip-extra/ca.pem ]; then export PIP_CERT=/tmp/pip-extra/ca.pem; fi; \
    if [ -d /tmp/pip-extra/wheels ]; then export PIP_FIND_LINKS=/tmp/pip-extra/wheels; fi; \
    python3 -m venv /opt/venv && pip install --require-hashes --no-deps -r /tmp/lock.txt

FROM base
COPY --from=deps /opt/venv /opt/venv
COPY pyproject.toml README.md /src/
COPY bench /src/bench
# /models and /cache are named volumes, initialised from these directories: writable by whichever uid runs
# the services (RUN_UID), like /tmp.
RUN pip install --no-deps --no-build-isolation /src && rm -rf /src \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bench \
    && mkdir -p /results /models /cache && chmod 1777 /models /cache

ARG STACK=hf
ARG VARIANT=cu130
ARG IMAGE_REF=pagedbench-${STACK}
ARG GIT_SHA=unknown
ARG GIT_DIRTY=0
ARG VERSION=0.0.0
ARG SOURCE=
ARG TORCH_DEVICE=cuda
LABEL org.opencontainers.image.title="pagedbench-${STACK}" org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="${SOURCE}" org.opencontainers.image.version="${VERSION}"
# PAGEDBENCH_DEVICE: a CUDA image run without a GPU stops with a clear error instead of measuring the CPU.
# Compile caches (inductor, Triton, vLLM) live on the /cache volume, so a second run starts warm.
ENV PAGEDBENCH_IMAGE=${IMAGE_REF} PAGEDBENCH_DEVICE=${TORCH_DEVICE} PAGEDBENCH_GIT_SHA=${GIT_SHA} \
    PAGEDBENCH_GIT_DIRTY=${GIT_DIRTY} PAGEDBENCH_CUDA_VARIANT=${VARIANT} PAGEDBENCH_LOCK=${STACK}-${VARIANT}.txt \
    PAGEDBENCH_CACHE=/models HF_HOME=/models/hf XDG_CACHE_HOME=/cache HOME=/tmp USER=pagedbench \
    TORCHINDUCTOR_CACHE_DIR=/cache/inductor TRITON_CACHE_DIR=/cache/triton VLLM_CACHE_ROOT=/cache/vllm \
    VLLM_WORKER_MULTIPROC_METHOD=spawn
USER 10001
WORKDIR /tmp
ENTRYPOINT ["pagedbench"]
CMD ["run", "--stack", "hf"]
