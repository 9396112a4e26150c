#!/usr/bin/env bash
# Make a Docker engine answer on this machine: install it from Debian if missing, start dockerd
# if it is not running, wait until `docker info` answers.
#
# Why a script and not "assume Docker": CI machines here start fresh with no engine, no registry and
# no systemd. A run that needs containers must get an engine or fail with the engine's own words;
# it must never skip the container scenarios quietly.
#
# Idempotent: a second run finds the engine answering and returns at once.
# Environment:
#   PGSHIP_DOCKER_STORAGE   storage driver to force (default: overlay2, vfs only if overlay2 fails)
#   PGSHIP_DOCKER_LOG       dockerd log file (default /var/log/pgship-dockerd.log)
#   PGSHIP_DOCKER_WAIT      seconds to wait for the engine (default 60)
set -euo pipefail

LOG=${PGSHIP_DOCKER_LOG:-/var/log/pgship-dockerd.log}
WAIT=${PGSHIP_DOCKER_WAIT:-60}

say() { printf 'start-docker: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $*"
    fi
}

engine_answers() { docker info >/dev/null 2>&1; }

install_packages() {
    # docker.io brings dockerd, containerd, runc and a docker client; docker-compose is Compose v1
    # (Python), the only Compose in Debian 12 (no docker-compose-plugin, no buildx there).
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} from Debian"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" iptables ca-certificates >/dev/null
}

start_dockerd() {
    local driver=$1
    say "starting dockerd (storage driver: $driver, log: $LOG)"
    printf '\n==== %s dockerd --storage-driver=%s\n' "$(date -Is)" "$driver" | as_root tee -a "$LOG" >/dev/null
    # setsid + nohup: the engine outlives this script and the CI step that ran it.
    as_root setsid nohup dockerd --storage-driver="$driver" >>"$LOG" 2>&1 </dev/null &
    local waited=0
    while [ "$waited" -lt "$WAIT" ]; do
        if engine_answers; then
            say "engine ready after ${waited}s: $(docker info --format '{{.ServerVersion}} {{.Driver}}')"
            return 0
        fi
        if [ "$waited" -ge 2 ] && ! pgrep -x dockerd >/dev/null; then
            return 1 # dockerd exited: no point waiting
        fi
        sleep 1
        waited=$((waited + 1))
    done
    return 1
}

stop_failed_dockerd() {
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        as_root kill "$pid" || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
}

last_attempt_log() {
    # The log appends across attempts: print only what the latest dockerd wrote.
    # shellcheck disable=SC2016 # awk program, not shell
    as_root awk '/^==== /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$LOG" 2>/dev/null || true
}

show_engine_error() {
    local attempt
    attempt=$(last_attempt_log)
    say "errors the engine logged ($LOG):"
    grep -E 'level=(error|fatal)|failed to start|^Error' <<<"$attempt" | tail -n 10 >&2 || true
    say "last lines of its log:"
    tail -n 8 <<<"$attempt" >&2
}

engine_error() {
    say "the Docker engine did not start."
    show_engine_error
    exit 1
}

main() {
    if engine_answers; then
        say "engine already answering: $(docker info --format '{{.ServerVersion}} {{.Driver}}')"
        return 0
    fi
    install_packages
    command -v docker >/dev/null || die "docker client missing after installing docker.io"

    if pgrep -x dockerd >/dev/null; then
        say "dockerd is running but not answering yet; waiting"
        for _ in $(seq 1 "$WAIT"); do engine_answers && return 0; sleep 1; done
        engine_error
    fi

    if [ -n "${PGSHIP_DOCKER_STORAGE:-}" ]; then
        start_dockerd "$PGSHIP_DOCKER_STORAGE" || engine_error
        return 0
    fi
    if start_dockerd overlay2; then
        return 0
    fi
    say "overlay2 failed."
    show_engine_error
    stop_failed_dockerd
    say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    say "!! FALLING BACK TO THE vfs STORAGE DRIVER: every container start copies the"
    say "!! whole image; expect container scenarios to be about ten times slower."
    say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    start_dockerd vfs || engine_error
}

main "$@"
