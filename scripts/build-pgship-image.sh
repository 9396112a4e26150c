#!/usr/bin/env bash
# Build the pgship image (Dockerfile at the repository root) without network access in the build.
#
#   scripts/build-pgship-image.sh [TAG]        default tag: pgship-local/pgship:dev
#
# Wheels are made on the host (`pip wheel`, which reaches PyPI through the host's own settings)
# into build/wheelhouse and installed in the image with --no-index: the build needs no registry
# for Python packages, and no TLS set-up inside the build container.
# The base image: PGSHIP_IMAGE_BASE if set; else python:3.11-slim if it is on this machine or can
# be pulled; else pgship-local/debian-python:bookworm, imported offline with debootstrap.
# PYTHON (default python3) makes the wheels and must have the base's Python minor version,
# since compiled wheels (psycopg-binary, pglast) are built per version.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-pgship-local/pgship:dev}
python=${PYTHON:-python3}
offline_base=pgship-local/debian-python:bookworm

say() { printf 'build-pgship-image: %s\n' "$*" >&2; }

pick_base() {
    if [ -n "${PGSHIP_IMAGE_BASE:-}" ]; then
        echo "$PGSHIP_IMAGE_BASE"
    elif docker image inspect python:3.11-slim >/dev/null 2>&1 || docker pull -q python:3.11-slim >/dev/null 2>&1; then
        echo python:3.11-slim
    else
        say "python:3.11-slim cannot be pulled; using the offline Debian base $offline_base"
        "$here/scripts/import-debian-rootfs.sh" "$offline_base" python3,python3-venv,ca-certificates
        echo "$offline_base"
    fi
}

started=$(date +%s)
base=$(pick_base)
base_python=$(docker run --rm --entrypoint python3 "$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
host_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$base_python" != "$host_python" ]; then
    say "ERROR: $base has Python $base_python but $python is $host_python; set PYTHON to a Python $base_python"
    exit 1
fi

wheelhouse=build/wheelhouse
rm -rf "${here:?}/$wheelhouse"
say "pip wheel -> $wheelhouse (Python $host_python)"
"$python" -m pip wheel --quiet --wheel-dir "$here/$wheelhouse" "$here[serve]"  # the image serves health too

say "docker build -> $tag (FROM $base)"
# The classic builder: Debian's engine has no buildx, and FROM a local image needs no registry.
previous=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --quiet --build-arg BASE="$base" --build-arg WHEELHOUSE="$wheelhouse" \
    -t "$tag" "$here" >/dev/null
docker image prune -f --filter label=pgship.stage=build >/dev/null
# The image the tag used to name would linger untagged; drop it unless a container uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi
say "$tag built in $(($(date +%s) - started))s"
