"""The pure parts of the health server's guard: its limits, and the cap under the open-files limit."""

from __future__ import annotations

import pytest

from pgship.health.limits import FD_RESERVE, ServerLimits, effective_max_connections
from tests.toolkit import cli_script


def test_the_defaults_are_the_documented_ones():
    limits = ServerLimits()
    assert (limits.header_timeout_s, limits.max_header_bytes, limits.max_connections) == (5.0, 65536, 2048)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"header_timeout_s": 0},
        {"header_timeout_s": -1},
        {"header_timeout_s": float("nan")},
        {"header_timeout_s": float("inf")},
        {"max_header_bytes": 1023},
        {"max_connections": 0},
    ],
)
def test_limits_that_cannot_work_are_refused(kwargs):
    with pytest.raises(ValueError):
        ServerLimits(**kwargs)


@pytest.mark.parametrize(
    "wanted, fd_limit, expected",
    [
        (2048, 1_048_576, 2048),  # far under the limit: as asked
        (2048, 1024, 1024 - FD_RESERVE),  # a default container: kept under the limit
        (100, 1024, 100),
        (2048, 10, 1),  # absurdly low limit: still serves, one connection at a time
        (2048, -1, 2048),  # no limit (RLIM_INFINITY, or no such thing on this system)
    ],
)
def test_the_connection_cap_stays_under_the_open_files_limit(wanted, fd_limit, expected):
    assert effective_max_connections(ServerLimits(max_connections=wanted), fd_limit) == expected


def test_the_cli_reads_the_serve_defaults_without_importing_the_web_stack():
    import subprocess
    import sys

    code = cli_script(
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in ('uvicorn', 'httptools', 'starlette') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--header-timeout SECONDS" in result.stdout and "(default: 65536)" in result.stdout
