#!/usr/bin/env bash
# Build pgship-local/postgres:15 without any registry: a Debian 12 root filesystem with
# postgresql-15 (debootstrap + docker import), then docker/offline-postgres/Dockerfile on top.
#
# Reuses the image when it exists (FORCE=1 rebuilds it). Takes about a minute on a fresh machine,
# less than a second when the image exists. Needs a running engine: scripts/start-docker.sh.
#   IMAGE   image to build (default pgship-local/postgres:15)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
image=${IMAGE:-pgship-local/postgres:15}
base=pgship-local/debian-postgres-rootfs:bookworm
context="$here/docker/offline-postgres"
# The image records the hash of its build context, so an edited entrypoint is rebuilt.
context_hash=$(cat "$context"/* | sha256sum | cut -c1-16)

say() { printf 'build-offline-postgres-image: %s\n' "$*" >&2; }

if [ "${FORCE:-0}" != 1 ] &&
    [ "$(docker image inspect --format '{{index .Config.Labels "pgship.context"}}' "$image" 2>/dev/null)" = "$context_hash" ]; then
    say "$image exists; reusing it"
    exit 0
fi

started=$(date +%s)
if [ "${FORCE:-0}" = 1 ]; then
    docker image rm -f "$base" >/dev/null 2>&1 || true
fi
"$here/scripts/import-debian-rootfs.sh" "$base" postgresql-15
say "docker build -> $image"
# The classic builder: Debian's engine has no buildx, and FROM a local image needs no registry.
previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --quiet --build-arg BASE="$base" --label "pgship.context=$context_hash" \
    -t "$image" "$context" >/dev/null
# The image the tag used to name would linger untagged; drop it unless a container uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi
say "$image ready in $(($(date +%s) - started))s"
