# syntax=docker/dockerfile:1
# The vLLM stack. The devel base brings the compiler that vLLM's run-time compilation (Triton launchers,
# FlashInfer JIT kernels) needs. Versions come from docker/locks/vllm-<variant>.txt (make lock).
ARG CUDA_BASE=nvidia/cuda:13.0.0-devel-ubuntu24.04
FROM ${CUDA_BASE}

ARG CUDA_VARIANT=cu130
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev gcc \
      ca-certificates \
    && rm -rf /var/lib/apt/lists/* && python3.12 -m venv /opt/venv

COPY docker/locks/ /tmp/locks/
RUN test -f "/tmp/locks/vllm-${CUDA_VARIANT}.txt" \
      || { echo "no lock docker/locks/vllm-${CUDA_VARIANT}.txt: run 'make lock CUDA=${CUDA_VARIANT}'" >&2; exit 1; } \
    && pip install --require-hashes --no-deps -r "/tmp/locks/vllm-${CUDA_VARIANT}.txt"

COPY pyproject.toml README.md /src/
COPY bench /src/bench
RUN pip install --no-deps /src && rm -rf /src

ARG IMAGE_REF=pagedbench-vllm
ARG GIT_SHA=unknown
ARG GIT_DIRTY=0
ENV PAGEDBENCH_IMAGE=${IMAGE_REF} PAGEDBENCH_GIT_SHA=${GIT_SHA} PAGEDBENCH_GIT_DIRTY=${GIT_DIRTY} \
    PAGEDBENCH_CUDA_VARIANT=${CUDA_VARIANT} PAGEDBENCH_LOCK=vllm-${CUDA_VARIANT}.txt \
    PAGEDBENCH_CACHE=/models HF_HOME=/models/hf XDG_CACHE_HOME=/tmp/cache HOME=/tmp USER=pagedbench \
    TORCHINDUCTOR_CACHE_DIR=/tmp/inductor \
    VLLM_CACHE_ROOT=/tmp/vllm TRITON_CACHE_DIR=/tmp/triton VLLM_WORKER_MULTIPROC_METHOD=spawn

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bench \
    && mkdir -p /results /models && chown bench /results /models
USER 10001
WORKDIR /tmp
ENTRYPOINT ["pagedbench"]
CMD ["run", "--stack", "vllm"]
