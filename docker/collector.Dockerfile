# The collector: reads result files and writes the report. No torch, no CUDA, no vLLM; the same image for
# every variant. Built like the stacks (docker/stack.Dockerfile): the proxy CA, if any, stays in `deps`.
ARG PYTHON_BASE=debian:12.15-slim
FROM ${PYTHON_BASE} AS base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH MPLCONFIGDIR=/tmp/mpl HOME=/tmp
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM base AS deps
COPY docker/locks/collector.txt docker/locks/setuptools.txt /tmp/
COPY docker/pip-extra/ /tmp/pip-extra/
RUN if [ -f /tmp/pip-extra/ca.pem ]; then export PIP_CERT=/tmp/pip-extra/ca.pem; fi; \
    python3 -m venv /opt/venv && pip install --require-hashes --no-deps -r /tmp/collector.txt -r /tmp/setuptools.txt

FROM base
COPY --from=deps /opt/venv /opt/venv
COPY pyproject.toml README.md /src/
COPY bench /src/bench
RUN pip install --no-deps --no-build-isolation /src && rm -rf /src \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bench

ARG IMAGE_REF=pagedbench-collector
ARG GIT_SHA=unknown
ARG GIT_DIRTY=0
ARG VERSION=0.0.0
ARG SOURCE=
LABEL org.opencontainers.image.title="pagedbench-collector" org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="${SOURCE}" org.opencontainers.image.version="${VERSION}"
ENV PAGEDBENCH_IMAGE=${IMAGE_REF} PAGEDBENCH_GIT_SHA=${GIT_SHA} PAGEDBENCH_GIT_DIRTY=${GIT_DIRTY}
USER 10001
WORKDIR /tmp
ENTRYPOINT ["pagedbench"]
CMD ["collect", "/results", "--out", "/results/report"]
