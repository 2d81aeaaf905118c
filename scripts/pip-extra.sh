#!/usr/bin/env bash
# Fill the build's pip extras from the build options, so that every build sees exactly what was asked for:
#   scripts/pip-extra.sh DIR PIP_CA WHEELHOUSE
# DIR/ca.pem is the CA bundle pip trusts (a proxy that re-signs TLS); DIR/wheels/ the wheels pip may take
# (e.g. torch's CPU build from an offline mirror). Only the images' dependency stage reads them.
set -eu
dir=$1 ca=${2:-} wheels=${3:-}
find "$dir" -mindepth 1 ! -name .gitignore -exec rm -rf {} +
if [ -n "$ca" ]; then
  [ -f "$ca" ] || { echo "PIP_CA=$ca: no such file" >&2; exit 2; }
  cp "$ca" "$dir/ca.pem"
  echo "build: pip trusts the CA bundle $ca"
fi
if [ -n "$wheels" ]; then
  [ -d "$wheels" ] || { echo "WHEELHOUSE=$wheels: no such directory" >&2; exit 2; }
  mkdir "$dir/wheels"
  # Hard links where the file system allows (no copy of large wheels), else a copy.
  cp -l "$wheels"/*.whl "$dir/wheels/" 2>/dev/null || cp "$wheels"/*.whl "$dir/wheels/" 2>/dev/null \
    || { echo "WHEELHOUSE=$wheels: no .whl files in it" >&2; exit 2; }
  echo "build: pip may take wheels from $wheels ($(find "$dir/wheels" -name '*.whl' | wc -l) files)"
fi
