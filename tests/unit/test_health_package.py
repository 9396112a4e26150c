"""The health package's seams: what each module may import, and what the package re-exports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pgship.health
from pgship.health import documents, probe, service

WEB_STACK = ("starlette", "uvicorn", "httptools")


def loaded_after(statement: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has imported after running ``statement``."""
    report = f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))"
    code = f"import json, sys\n{statement}\n{report}\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import pgship.health.documents",
        "import pgship.health.probe",
        "import pgship.health.service",
        "import pgship.health.limits",
        "from pgship.health import create_app, database_report, DatabaseProbe",
    ],
)
def test_the_web_stack_stays_out_of_the_documents_probe_service_and_limits(statement):
    assert loaded_after(statement, WEB_STACK) == []


def test_the_server_module_is_the_one_that_imports_the_web_server():
    assert loaded_after("import pgship.health.server", WEB_STACK) == ["httptools", "uvicorn"]


def test_the_limits_the_cli_reads_on_every_start_load_nothing_else_of_the_package():
    others = ("pgship.health.documents", "pgship.health.probe", "pgship.health.service")
    assert loaded_after("import pgship.health.limits", others) == []


def test_every_exported_name_is_the_object_of_its_module():
    homes = {"documents": documents, "probe": probe, "service": service}
    assert sorted(pgship.health.__all__) == sorted(pgship.health.EXPORTED_FROM)
    for name in pgship.health.__all__:
        assert getattr(pgship.health, name) is getattr(homes[pgship.health.EXPORTED_FROM[name]], name)
    with pytest.raises(AttributeError):
        pgship.health.no_such_name  # noqa: B018
