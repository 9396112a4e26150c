#!/bin/sh
# Initialise a cluster on first start, then run PostgreSQL in the foreground as PID 1.
#
# Honours POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
# POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user name), and
# POSTGRES_INITDB_ARGS. Like the official image, set-up runs on a server that listens on the
# Unix socket only, so a TCP client (testcontainers' `psql --host 127.0.0.1` probe, a compose
# healthcheck) can only succeed once the user, password and database exist. The password is
# never echoed.
set -eu

if [ "${1:-postgres}" != "postgres" ] && [ "${1#-}" = "$1" ]; then
    exec "$@" # any other command (psql, sh, pg_isready...) runs as given
fi
[ "${1:-}" = "postgres" ] && shift

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
: "${POSTGRES_INITDB_ARGS:=}"

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo "docker-entrypoint: POSTGRES_PASSWORD is not set; set it (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    chown postgres "$pwfile" 2>/dev/null || true
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
    as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
        --encoding=UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS >/dev/null
    rm -f "$pwfile"
    {
        echo "listen_addresses = '*'"
        echo "password_encryption = scram-sha-256"
    } >>"$PGDATA/postgresql.conf"
    # initdb's pg_hba.conf covers 127.0.0.1/::1 only; containers are reached through a bridge.
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    # Set-up server: Unix socket only, so nobody outside sees a half-initialised cluster.
    as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start
    if [ "$POSTGRES_DB" != postgres ]; then
        # psql quotes the name (:"dbname"); variables are interpolated in scripts, not in -c.
        echo 'CREATE DATABASE :"dbname";' | as_postgres psql -v ON_ERROR_STOP=1 -q -X \
            -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -v dbname="$POSTGRES_DB" >/dev/null
    fi
    as_postgres pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    echo "docker-entrypoint: PostgreSQL init process complete; ready for start up."
fi

# The server logs "database system is ready to accept connections" when it listens on TCP.
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$PGDATA" "$@"
fi
exec postgres -D "$PGDATA" "$@"
