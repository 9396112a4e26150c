"""A server started on a port the caller chose never refuses the right password while it starts.

A deploy waiting for a database (``--wait``) connects the moment the port opens; the embedded
server is copied from a template with another password and sets its own after starting. Had it
listened on TCP before that, the waiting client would be refused for good (exit 6)."""

from __future__ import annotations

import socket
import threading

import psycopg

from pgship.testing.embedded import EmbeddedPostgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_client_knocking_during_start_up_is_never_refused_the_right_password():
    port, password = free_port(), "Knock-Knock-42"
    refusals: list[str] = []
    connected = threading.Event()
    stop = threading.Event()

    def knock() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(
                    host="127.0.0.1",
                    port=port,
                    user="postgres",
                    password=password,
                    dbname="postgres",
                    connect_timeout=2,
                ):
                    connected.set()
                    return
            except psycopg.OperationalError as exc:
                if "password authentication failed" in str(exc):
                    refusals.append(str(exc))

    knocker = threading.Thread(target=knock, daemon=True)
    knocker.start()
    try:
        with EmbeddedPostgres(port=port, password=password):
            assert connected.wait(30), "the client never got in"
    finally:
        stop.set()
        knocker.join(10)
    assert refusals == []


def test_only_the_postmaster_s_own_fatal_means_the_start_failed():
    from pgship.testing.embedded import postmaster_failed

    starting = (
        "2026-11-30 06:56:25.168 UTC [27963] LOG:  starting PostgreSQL 16.15\n"
        '2026-11-30 06:56:25.168 UTC [27963] LOG:  listening on IPv4 address "127.0.0.1", port 40283\n'
    )
    client_turned_away = "2026-11-30 06:56:25.173 UTC [27967] FATAL:  the database system is starting up\n"
    assert not postmaster_failed(starting + client_turned_away)
    assert postmaster_failed(
        starting + "2026-11-30 06:56:25.2 UTC [27963] FATAL:  could not bind IPv4 address\n"
    )
    assert postmaster_failed('2026-11-30 06:56:25.1 UTC [27963] FATAL:  invalid value for parameter "port"\n')
    assert postmaster_failed(
        starting + "2026-11-30 06:56:26 UTC [27963] LOG:  database system is shut down\n"
    )
    assert not postmaster_failed("")
