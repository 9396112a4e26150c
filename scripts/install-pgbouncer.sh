#!/usr/bin/env bash
# Debian's pgbouncer for the pooler tests and the `embedded+pgbouncer` specification backend.
# Installed only when missing; the test harness (src/pgship/testing/pgbouncer.py) starts it itself.
set -euo pipefail
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "pgbouncer is missing; install it with: sudo apt-get install pgbouncer" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
# Debian's package may start its own instance on port 6432 where an init system runs; the harness
# never uses that one (it starts its own on a free port), so stop it to keep the machine quiet.
if command -v service >/dev/null 2>&1; then service pgbouncer stop >/dev/null 2>&1 || true; fi
pgbouncer --version | head -1
