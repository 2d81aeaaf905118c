#!/usr/bin/env bash
# Does a Docker engine answer? One line on stderr, prefixed with WHO, and exit 2 where not.
#   [DOCKER=docker] scripts/docker-answers.sh WHO
# preflight runs it before a build, and make's collector targets (report, compare) before compose, which
# would otherwise print a traceback.
who=${1:-docker}
docker=${DOCKER:-docker} # overridable for tests
if ! command -v "$docker" >/dev/null 2>&1; then
  echo "$who: docker not found: install Docker (with the compose plugin)" >&2
  exit 2
fi
if ! "$docker" info >/dev/null 2>&1; then
  echo "$who: no Docker engine answers ('docker info' failed): start it, join the docker group, or set DOCKER_HOST" >&2
  exit 2
fi
