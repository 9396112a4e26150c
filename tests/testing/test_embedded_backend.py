"""The embedded server: PostgreSQL 14-18, each with the contrib extensions real applications create.

These start real servers from the cached builds (fetched on first use, pgship.testing.binaries).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgship.testing import EmbeddedPostgres, EmbeddedServerError, binaries


@pytest.mark.parametrize("major", binaries.MAJORS)
def test_every_major_creates_every_common_contrib_extension(major: int) -> None:
    with (
        EmbeddedPostgres(version=major) as server,
        psycopg.connect(server.admin_url, autocommit=True) as conn,
    ):
        assert conn.execute("SHOW server_version").fetchone()[0].startswith(f"{major}.")
        for extension in binaries.COMMON_EXTENSIONS:
            # CREATE, not just listed as available: proves each one's shared library loads here
            conn.execute(f'CREATE EXTENSION "{extension}"')
        installed = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        assert set(binaries.COMMON_EXTENSIONS) <= installed
        assert conn.execute("SELECT uuid_generate_v4() <> gen_random_uuid()").fetchone()[0]
        assert conn.execute("SELECT similarity('pgship', 'pgshop') > 0.3").fetchone()[0]


@pytest.mark.parametrize("major", binaries.MAJORS)
def test_this_machine_has_every_library_the_builds_load(major: int) -> None:
    """What `ldd` reports missing (make venv installs libossp-uuid16 for uuid-ossp)."""
    assert binaries.missing_libraries(binaries.ensure_installed(major)) == {}


def test_servers_cloned_from_one_template_each_have_their_own_password() -> None:
    with EmbeddedPostgres() as first, EmbeddedPostgres() as second:
        assert first.password != second.password
        wrong = second.admin_url.replace(second.password, first.password)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(wrong).close()
        psycopg.connect(second.admin_url).close()


def test_a_major_pgship_does_not_run_is_refused_naming_those_it_does() -> None:
    with pytest.raises(EmbeddedServerError, match=r"PostgreSQL 13 is not available .* 14, 15, 16, 17, 18"):
        EmbeddedPostgres(version=13)


def test_parallel_first_uses_fetch_once_and_both_get_the_same_build(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = "from pgship.testing import binaries; print(binaries.ensure_installed(16))"
    env = {**os.environ, "PGSHIP_CACHE_DIR": str(cache)}
    processes = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0].strip() for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert outputs[0] == outputs[1] == str(cache / f"postgresql-{binaries.RELEASES[16]}")
    assert (Path(outputs[0]) / "bin" / "postgres").is_file()
    leftovers = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert leftovers == [f"postgresql-{binaries.RELEASES[16]}"]  # no second copy, no scratch directory


def test_the_password_set_at_start_never_reaches_the_servers_log() -> None:
    settings = {"log_statement": "all", "log_min_duration_statement": "0", "log_min_error_statement": "info"}
    with EmbeddedPostgres(settings=settings) as server:
        psycopg.connect(server.admin_url).close()
        log = server.log_file.read_text(errors="replace")
        assert "statement: " in log  # the log does record statements...
        assert server.password not in log  # ...but not the one that set the password


def test_a_server_that_cannot_start_says_why_and_stops_and_starts_again_after_a_stop() -> None:
    with pytest.raises(EmbeddedServerError, match="shared_buffers"):
        EmbeddedPostgres(settings={"shared_buffers": "plenty"}).setup()
    with EmbeddedPostgres() as server:
        server.stop()  # the log now says "database system is shut down": a later start must not mind
        server.start()
        psycopg.connect(server.admin_url).close()
        server.restart()
        psycopg.connect(server.admin_url).close()


def _build_needing(tmp_path: Path, needed: bytes, instead: bytes) -> Path:
    """A cache whose PostgreSQL 16 ``postgres`` needs ``instead`` (no machine has it) for ``needed``."""
    assert len(needed) == len(instead)
    real = binaries.ensure_installed(16)
    prefix = tmp_path / "cache" / real.name
    (prefix / "bin").mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        shutil.copy2(real / "bin" / name, prefix / "bin" / name)
    binary = (real / "bin" / "postgres").read_bytes()
    assert binary.count(needed + b"\0") == 1
    (prefix / "bin" / "postgres").write_bytes(binary.replace(needed + b"\0", instead + b"\0"))
    (prefix / "bin" / "postgres").chmod(0o755)
    for name in ("lib", "share"):
        (prefix / name).symlink_to(real / name)
    (prefix / ".pgship-complete").write_text("test\n")
    return prefix


def test_a_machine_without_a_library_the_server_needs_is_told_which_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Ubuntu 24.04, whose ICU is not Debian 12's libicuuc.so.72."""
    prefix = _build_needing(tmp_path, b"libzstd.so.1", b"libzzzz.so.1")
    assert binaries.missing_libraries(prefix, core_only=True) == {"libzzzz.so.1": ["postgres"]}
    monkeypatch.setenv("PGSHIP_CACHE_DIR", str(tmp_path / "cache"))
    server = EmbeddedPostgres(version=16)
    try:
        with pytest.raises(
            EmbeddedServerError, match=r"cannot run on this machine: it lacks libzzzz\.so\.1"
        ) as caught:
            server.setup()
        assert "Debian 12" in caught.value.hint and "--replay-url" in caught.value.hint
    finally:
        server.close()
