"""Every shell example in the deployment guide runs, in order, against a throwaway PostgreSQL.

The guide is a walkthrough: the examples build on each other (a migration
created in one section is applied in the next), so they run in one scratch
project, a copy of the sample application's migrations, with ``DATABASE_URL``
pointing at a fresh database. An example exits as annotated (0 unless
``<!-- example: exit N -->``), and the output shown after it (a ``text`` block)
must appear in what it really printed, numbers aside. Examples that need a
remote system are annotated ``<!-- example: skip (why) -->`` and only
syntax-checked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docs.guide import read, shown_lines_missing

GUIDE = ROOT / "docs" / "DEPLOYMENT.md"
READMES = [ROOT / "README.md", ROOT / "docker" / "postgres" / "migrations" / "README.md"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, pg_server):
    """A scratch copy of the project layout the guide's commands expect."""
    root = tmp_path_factory.mktemp("guide")
    shutil.copytree(ROOT / "docker" / "postgres" / "migrations", root / "docker" / "postgres" / "migrations")
    name = pg_server.create_database(prefix="app")
    staging = pg_server.create_database(prefix="staging")
    urls = {"DATABASE_URL": pg_server.url_for(name), "STAGING_DATABASE_URL": pg_server.url_for(staging)}
    shown = {
        f"{pg_server.user}@127.0.0.1:{pg_server.port}/{name}": "app@db:5432/app",
        f"{pg_server.user}@127.0.0.1:{pg_server.port}/{staging}": "app@db:5432/staging",
    }
    try:
        yield root, urls, shown
    finally:
        _stop_processes_started_in(root)  # the service the guide's deploy example leaves running
        for database in (name, staging):
            pg_server.drop_database(database)


def _stop_processes_started_in(root: Path) -> None:
    """SIGTERM every process whose working directory is inside ``root`` (Linux: read from /proc)."""
    import signal
    import time

    def running_in_root() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")).is_relative_to(root):
                    found.append(int(entry.name))
        return found

    for pid in running_in_root():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while running_in_root() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in running_in_root():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def run_example(
    code: str, root: Path, urls: dict[str, str], server_bin: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **urls,
        "PATH": f"{Path(sys.executable).parent}:{server_bin}:{os.environ['PATH']}",
        "COLUMNS": "120",
    }
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", code],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_guide_examples_run_in_order_and_print_what_the_guide_shows(project, pg_server):
    root, urls, shown = project
    document = read(GUIDE)
    assert document.examples, "the guide has no examples"
    failures = []
    for example in document.examples:
        where = f"docs/DEPLOYMENT.md:{example.line} (#{example.section})"
        if example.skip:
            syntax = subprocess.run(["bash", "-n", "-c", example.code], capture_output=True, text=True)
            if syntax.returncode:
                failures.append(f"{where}: shell syntax error: {syntax.stderr}")
            continue
        result = run_example(example.code, root, urls, pg_server.bin)
        output = result.stdout + result.stderr
        for real, shown_as in shown.items():
            output = output.replace(real, shown_as)
        if result.returncode != example.expected_exit:
            failures.append(
                f"{where}: exit {result.returncode}, the guide expects {example.expected_exit}\n"
                f"$ {example.code}\n{output}"
            )
            break  # later examples build on this one
        if example.shown_output:
            missing = shown_lines_missing(example.shown_output, output)
            if missing:
                failures.append(f"{where}: shown output not printed: {missing}\nactual:\n{output}")
        assert pg_server.password not in output
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("path", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_examples_are_valid_shell(path):
    for example in read(path).examples:
        syntax = subprocess.run(["bash", "-n", "-c", example.code], capture_output=True, text=True)
        assert syntax.returncode == 0, f"{path.name}:{example.line}: {syntax.stderr}"
