#!/usr/bin/env bash
# Make a Debian base image from Debian's archive, for a host whose Docker cannot pull one (no registry):
#   sudo scripts/base-image.sh TAG        e.g. debian:12.15-slim, the CPU images' default base
# debootstrap builds a minimal Debian (RELEASE, default bookworm: the release of the default base) and
# `docker import` tags it TAG. It needs root and debootstrap, and reaches Debian's mirror.
set -eu
tag=${1:-}
release=${RELEASE:-bookworm}
docker=${DOCKER:-docker}
if [ -z "$tag" ]; then
  echo "usage: scripts/base-image.sh TAG (e.g. debian:12.15-slim)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "base-image: debootstrap is not installed (Debian, Ubuntu: apt-get install debootstrap)" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "base-image: debootstrap needs root: sudo $0 $tag" >&2
  exit 2
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap $release into $root (a few minutes)"
debootstrap --variant=minbase "$release" "$root" >"$root.log" 2>&1 || {
  echo "base-image: debootstrap failed; its log: $root.log" >&2
  exit 1
}
rm -f "$root.log"
tar -C "$root" -c . | "$docker" import - "$tag" >/dev/null
echo "base-image: $tag ($release, minbase) is ready"
