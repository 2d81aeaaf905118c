#!/usr/bin/env bash
# What this host's Docker and pip call for, as make assignments (`KEY?=VALUE`, one a line) that a setting
# of the user's own overrides; the Makefile reads them for the targets that use Docker, and preflight
# says what they chose:
#   DOCKER_BUILDKIT   1 where the docker CLI can build with BuildKit (its buildx plugin, or a client older
#                     than 23, which has it built in); else 0, Docker's legacy builder
#   BUILD_NETWORK, PREPARE_NETWORK   host, on an engine without a bridge network (containers could reach
#                     nothing through the default one)
#   PIP_CA, WHEELHOUSE   pip's own CA bundle and find-links directory (PIP_CERT / PIP_FIND_LINKS, or
#                     `pip config`), so that pip in the build reaches what pip on this host reaches
set -u
docker=${DOCKER:-docker}

if "$docker" buildx version >/dev/null 2>&1; then
  echo "DOCKER_BUILDKIT?=1"
else
  major=$("$docker" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
  if [ -n "$major" ] && [ "$major" -lt 23 ]; then echo "DOCKER_BUILDKIT?=1"; else echo "DOCKER_BUILDKIT?=0"; fi
fi

if "$docker" info >/dev/null 2>&1 && ! "$docker" network inspect bridge >/dev/null 2>&1; then
  echo "BUILD_NETWORK?=host"
  echo "PREPARE_NETWORK?=host"
fi

pip_setting() {  # pip_setting ENV_VAR KEY: the variable, else pip's configuration; its first word
  local value=${!1:-}
  if [ -z "$value" ]; then
    value=$(python3 -m pip config get "$2" 2>/dev/null || true)
  fi
  echo "${value%% *}"
}
ca=$(pip_setting PIP_CERT global.cert)
[ -n "$ca" ] && [ -f "$ca" ] && echo "PIP_CA?=$ca"
links=$(pip_setting PIP_FIND_LINKS global.find-links)
links=${links#file://}
[ -n "$links" ] && [ -d "$links" ] && echo "WHEELHOUSE?=$links"
exit 0
