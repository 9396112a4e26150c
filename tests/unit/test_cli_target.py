"""``--target`` names a version pgship can read, or the command stops before it connects (exit 2)."""

from __future__ import annotations

import pytest

UNREACHABLE = "postgresql://app:Target-Pw-9@127.0.0.1:9/app"  # nothing listens on port 9


@pytest.mark.parametrize("command", ["migrate", "plan", "deploy", "diff"])
def test_a_target_that_is_not_a_version_is_refused_before_connecting(cli, migrations, command):
    migrations.write("001_a.sql", "SELECT 1;\n")
    result = cli("-d", UNREACHABLE, "-m", str(migrations), command, "--target", "abc")
    assert result.code == 2, result.output
    assert "--target" in result.stderr and "'abc'" in result.stderr
    assert "cannot connect" not in result.output and "Target-Pw-9" not in result.output


def test_a_readable_target_still_reaches_the_database(cli, migrations):
    migrations.write("001_a.sql", "SELECT 1;\n")
    result = cli("-d", UNREACHABLE, "-m", str(migrations), "migrate", "--target", "001")
    assert result.code == 3, result.output  # unreachable: the target itself was fine
