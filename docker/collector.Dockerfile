# syntax=docker/dockerfile:1
# The collector: reads result files and writes the report. No torch, no CUDA, no vLLM.
ARG PYTHON_BASE=python:3.12.12-slim-bookworm
FROM ${PYTHON_BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MPLCONFIGDIR=/tmp/mpl HOME=/tmp
COPY docker/locks/collector.txt /tmp/collector.txt
RUN pip install --require-hashes --no-deps -r /tmp/collector.txt

COPY pyproject.toml README.md /src/
COPY bench /src/bench
RUN pip install --no-deps /src && rm -rf /src

ARG IMAGE_REF=pagedbench-collector
ARG GIT_SHA=unknown
ARG GIT_DIRTY=0
ENV PAGEDBENCH_IMAGE=${IMAGE_REF} PAGEDBENCH_GIT_SHA=${GIT_SHA} PAGEDBENCH_GIT_DIRTY=${GIT_DIRTY}

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bench
USER 10001
WORKDIR /tmp
ENTRYPOINT ["pagedbench"]
CMD ["collect", "/results", "--out", "/results/report"]
