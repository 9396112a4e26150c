#!/usr/bin/env bash
# Build a Debian 12 root filesystem with debootstrap and import it as a Docker image.
#
#   scripts/import-debian-rootfs.sh IMAGE PACKAGE[,PACKAGE...]
#
# Why: no container registry is reachable here (nor on air-gapped CI), so base images cannot be
# pulled; Debian's package mirror is reachable, and debootstrap + `docker import` turn it into a
# base image. The image is labelled with the package list so a changed list is rebuilt.
# Environment: DEBIAN_MIRROR (default: the first deb.debian.org-style URI of this machine's apt
# sources, else http://deb.debian.org/debian), DEBIAN_SUITE (default bookworm).
set -euo pipefail

image=${1:?usage: import-debian-rootfs.sh IMAGE PACKAGE[,PACKAGE...]}
packages=${2:?usage: import-debian-rootfs.sh IMAGE PACKAGE[,PACKAGE...]}
suite=${DEBIAN_SUITE:-bookworm}

say() { printf 'import-debian-rootfs: %s\n' "$*" >&2; }
# debootstrap, and reading the tree it makes (/etc/shadow...), need root.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

default_mirror() {
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}
mirror=${DEBIAN_MIRROR:-$(default_mirror)}
label="pgship.rootfs=${suite}:${packages}"

if existing=$(docker image inspect --format '{{index .Config.Labels "pgship.rootfs"}}' "$image" 2>/dev/null); then
    if [ "$existing" = "${suite}:${packages}" ]; then
        say "$image exists (${suite}: ${packages}); reusing it"
        exit 0
    fi
    say "$image exists with other packages ($existing); rebuilding"
fi

if ! command -v debootstrap >/dev/null && ! [ -x /usr/sbin/debootstrap ]; then
    say "installing debootstrap from Debian"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
        { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi
command -v docker >/dev/null || { say "ERROR: docker is not installed: run scripts/start-docker.sh"; exit 1; }

root=$(mktemp -d /var/tmp/pgship-rootfs.XXXXXX)
trap 'as_root rm -rf "$root"' EXIT
started=$(date +%s)
say "debootstrap --variant=minbase --include=$packages $suite from $mirror"
if ! as_root debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
    say "ERROR: debootstrap failed; last lines of its log:"
    tail -n 20 "$root.log" >&2
    as_root tail -n 20 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    rm -f "$root.log"
    exit 1
fi
rm -f "$root.log"

# Smaller image, and nothing of this machine's identity inside it.
# (Globs expand here: the tree's directories are world-readable, only removing needs root.)
as_root rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/log/*.log "$root"/etc/hostname "$root"/etc/resolv.conf
# Debian's postgresql packages create a cluster "main" at install: images initialise their own.
as_root rm -rf "$root"/var/lib/postgresql/*/main "$root"/etc/postgresql/*/main

say "docker import -> $image"
as_root tar --numeric-owner -C "$root" -c . |
    docker import --change "LABEL $label" --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
say "$image built in $(($(date +%s) - started))s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
