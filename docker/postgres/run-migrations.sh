#!/usr/bin/env bash
# Compatibility entry point for deploy jobs written for the old shell runner.
#
# The old runner read DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD and looped
# over `psql -f`. This script keeps that interface and hands the work to
# `pgship migrate`, which checks every file first, applies each migration in its own
# transaction under an advisory lock, and exits non-zero when anything fails
# (exit codes: docs/DEPLOYMENT.md#exit-codes).
#
#   DB_HOST=db DB_NAME=app DB_USER=app DB_PASSWORD=... docker/postgres/run-migrations.sh
#
# Extra arguments are passed to `pgship migrate` (for example --wait 60).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -z "${DATABASE_URL:-}" ]]; then
    : "${DB_HOST:?set DB_HOST (or DATABASE_URL)}"
    : "${DB_NAME:?set DB_NAME (or DATABASE_URL)}"
    : "${DB_USER:?set DB_USER (or DATABASE_URL)}"
    # libpq's variables carry the settings, so the password never appears in a URL
    # or a command line (where `ps` would show it).
    export PGHOST="$DB_HOST" PGPORT="${DB_PORT:-5432}" PGDATABASE="$DB_NAME" PGUSER="$DB_USER"
    if [[ -n "${DB_PASSWORD:-}" ]]; then
        export PGPASSWORD="$DB_PASSWORD"
    fi
fi

export PGSHIP_MIGRATIONS_DIR="${PGSHIP_MIGRATIONS_DIR:-${MIGRATIONS_DIR:-$script_dir/migrations}}"

if command -v pgship >/dev/null 2>&1; then
    exec pgship migrate "$@"
fi
exec "${PYTHON:-python3}" -m pgship migrate "$@"
