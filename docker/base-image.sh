#!/usr/bin/env bash
# Makes the base image debian:bookworm-slim locally, for a machine that reaches a Debian mirror but no image
# registry (an air-gapped build host). Needs root and debootstrap (apt-get install debootstrap); about a minute.
#   docker/base-image.sh [TAG]            TAG: debian:bookworm-slim unless given
# The mirror is this machine's own, read from its apt sources (or DEBIAN_MIRROR).
set -euo pipefail
tag=${1:-debian:bookworm-slim}

apt_mirror() {  # the first non-security URI of the deb822 or one-line sources (either may be absent)
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | awk '$1 == "URIs:" {print $2}'
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
      | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; break }}'
}

mirror=${DEBIAN_MIRROR:-$(apt_mirror | awk '!/-security/' | head -1)}
[ -n "$mirror" ] || { echo "base-image.sh: no Debian mirror in /etc/apt/sources*; set DEBIAN_MIRROR" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "base-image.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base-image.sh: debootstrap bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
# what Debian's own slim image leaves out: downloaded packages, package lists, documentation
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/*
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "base-image.sh: $tag $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')" >&2
