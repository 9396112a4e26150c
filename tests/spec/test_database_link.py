"""The database link the deploy and health scenarios use to make a database late, absent or hung."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgship.testing.spec.database_link import DatabaseLink
from pgship.testing.spec.release_scripts import ReleaseScripts


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=2, autocommit=True)


def test_the_link_refuses_then_forwards_then_drops_its_connections(database_url: str) -> None:
    link = DatabaseLink(database_url)
    try:
        assert link.url != database_url and f":{link.port}/" in link.url
        with pytest.raises(psycopg.OperationalError, match="refused"):
            _connect(link.url)

        link.forward()
        conn = _connect(link.url)
        assert conn.execute("SELECT current_database()").fetchone()[0] == database_url.rsplit("/", 1)[1]

        link.refuse()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="refused"):
            _connect(link.url)

        link.forward()  # back on the same port
        with _connect(link.url) as again:
            assert again.execute("SELECT 1").fetchone() == (1,)
    finally:
        link.close()


def test_a_frozen_link_accepts_connections_but_never_answers(database_url: str) -> None:
    link = DatabaseLink(database_url)
    try:
        link.freeze()
        with pytest.raises(psycopg.OperationalError, match="timeout"):
            _connect(link.url)  # the server's greeting never arrives
    finally:
        link.close()


def test_stopping_the_service_leaves_a_process_that_is_not_pgship_serve_alone(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        scripts = ReleaseScripts(tmp_path, port=0)
        scripts.pid_file.write_text(f"{other.pid}\n")
        scripts.stop_service()
        assert other.poll() is None, "a process that is not the release's service was stopped"
    finally:
        os.killpg(other.pid, 15)
        other.wait(timeout=10)
