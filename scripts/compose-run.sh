#!/usr/bin/env bash
# $COMPOSE "$@", for make's `run`s of a service, with its exit status. Debian's docker-compose 1.29 logs a
# service's non-zero exit status as a line of its own on stderr (a bare "2" after the service's message);
# make says "SERVICE: exit N" itself, so with compose v1 that line is left out. Compose v2 prints none.
#   COMPOSE="docker-compose" scripts/compose-run.sh [OPTIONS] run [RUN OPTIONS] SERVICE [ARGS...]
set -u
read -ra compose <<<"${COMPOSE:-docker compose}"
case ${compose[0]##*/} in
docker-compose*) ;;
*) exec "${compose[@]}" "$@" ;;
esac
set -o pipefail
{ "${compose[@]}" "$@" 2>&1 1>&3 3>&- | { grep --line-buffered -vxE '[0-9]+' || true; } >&2; } 3>&1
