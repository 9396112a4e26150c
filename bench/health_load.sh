#!/usr/bin/env bash
# Load test of /health/database on loopback with wrk: requests/s, p99, and the database
# checks the load caused (counted in PostgreSQL's statement log), against the goal of
# >= 1,500 req/s, p99 < 20 ms and at most one database check per cache period.
#
#   bench/health_load.sh                          10 s per scenario, 2 threads, 32 connections
#   bench/health_load.sh --duration 30 --connections 64
#   bench/health_load.sh --only-product           just `pgship serve`, no comparison scenarios
#   bench/health_load.sh --guard-ab 5 --duration 5  the guard's cost: pgship serve and unguarded
#                                                 uvicorn alternately, 5 pairs, median ratios
#
# Installs wrk (Debian package) if missing; uses .venv (created by `make venv`).
# Results: bench/results/health_load.json. Exit 1 when the goal is not met.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "health_load: installing wrk (Debian package)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! $sudo apt-get install -y -qq wrk >/dev/null 2>&1; then
        $sudo apt-get update -qq >/dev/null
        $sudo apt-get install -y -qq wrk >/dev/null
    fi
fi

python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || make venv >/dev/null
exec "$python" bench/health_load.py "$@"
