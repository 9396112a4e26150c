"""The command table: every command listed imports and builds its parser; a command imports only its
own module, so `pgship migrate` never loads the web server; a missing optional extra is a clear exit 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import pytest

from pgship.cli import COMMANDS, build_parser
from pgship.cli.entry import find_command
from pgship.cli.registry import SERVE_EXTRA, command_name, load

#: What `pip install pgship` (no extras) must be enough for, and must not load.
OPTIONAL = ("starlette", "uvicorn", "httpx", "squawk", "psycopg_pool", "rich")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_in_the_table_imports_and_builds_its_parser(name):
    command = load(name)
    assert command.description.strip() and callable(command.run)
    parser = build_parser([name])
    sub = subcommands(parser)[name]
    own = [a for a in sub._actions if a.option_strings and "--json" not in a.option_strings]
    assert sub.description == command.description
    assert own or name == "new", f"{name} has no options of its own"
    parser.format_help()
    sub.format_help()


def test_the_full_parser_has_every_command_and_its_aliases():
    choices = subcommands(build_parser())
    for name, spec in COMMANDS.items():
        assert choices[name].description == load(name).description
        for alias in spec.aliases:
            assert choices[alias] is choices[name]
    assert command_name("up") == "migrate" and command_name("upp") is None


def test_help_lists_every_command_without_importing_any():
    result = run_python(
        """
        import contextlib, io, sys
        from pgship.cli import COMMANDS, main
        help_text = io.StringIO()
        with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
            main(["--help"])
        loaded = sorted(spec.module for spec in COMMANDS.values() if spec.module in sys.modules)
        print(repr(loaded))
        print(help_text.getvalue())
        """
    )
    assert result.returncode == 0, result.stderr
    loaded, _, help_text = result.stdout.partition("\n")
    assert loaded == "[]", f"pgship --help imported command modules: {loaded}"
    for name, spec in COMMANDS.items():
        assert name in help_text and spec.summary.split()[0] in help_text


@pytest.mark.parametrize(
    "arguments",
    [["migrate"], ["status"], ["plan"], ["--json", "up"], ["status", "--check"], ["plan", "--no-lint"]],
)
def test_the_runner_commands_do_not_import_the_optional_packages(arguments, database_url, migrations):
    migrations.write("001_accounts.sql", "CREATE TABLE accounts (id int PRIMARY KEY);\n")
    probe = """
        import json, sys
        from pgship.cli import COMMANDS, main
        code = main(sys.argv[1:])
        heavy = sorted({m.split(".")[0] for m in sys.modules} & set(OPTIONAL))
        loaded = sorted(s.module for s in COMMANDS.values() if s.module in sys.modules)
        print(json.dumps({"code": code, "heavy": heavy, "commands": loaded}))
        """.replace("OPTIONAL", repr(OPTIONAL))
    result = run_python(
        probe,
        "-d",
        database_url,
        "-m",
        str(migrations),
        *arguments,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, 5), result.stdout + result.stderr  # status --check: pending -> 5
    assert report["heavy"] == [], f"pgship {' '.join(arguments)} imported {report['heavy']}"
    name = command_name(next(a for a in arguments if not a.startswith("-")))
    assert report["commands"] == [COMMANDS[name].module]


BLOCKED = """
import sys
for module in sys.argv[1].split(","):
    sys.modules[module] = None  # as if the extra were not installed: importing it raises ImportError
from pgship.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_serve_without_the_web_server_says_which_extra_to_install(tmp_path):
    for blocked in ("uvicorn", "starlette", "psycopg_pool"):
        result = run_python(BLOCKED, blocked, "-d", "postgresql://app@127.0.0.1:9/app", "serve")
        assert result.returncode == 2, result.stderr
        assert (
            "error: pgship serve needs the optional web server: pip install 'pgship[serve]'" in result.stderr
        ), result.stderr
        assert "Traceback" not in result.stderr
    as_json = run_python(BLOCKED, "uvicorn", "--json", "serve")
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["kind"] == "usage" and "pip install 'pgship[serve]'" in error["message"]
    helped = run_python(BLOCKED, "uvicorn,starlette", "serve", "--help")
    assert helped.returncode == 0 and "--max-connections" in helped.stdout  # help needs no extra


def test_deploy_health_gate_without_the_http_client_says_which_extra_to_install(tmp_path):
    result = run_python(
        BLOCKED,
        "httpx",
        "-d",
        "postgresql://app@127.0.0.1:9/app",
        "deploy",
        "--health-url",
        "http://127.0.0.1:9/health",
    )
    assert result.returncode == 2, result.stderr
    assert "pgship deploy --health-url needs the optional HTTP client: pip install 'pgship[serve]'" in (
        result.stderr
    )


def test_the_serve_extra_is_checked_without_importing_it():
    assert SERVE_EXTRA.missing() == []  # the dev install has every extra
    result = run_python(
        """
        import sys
        from pgship.cli.registry import SERVE_EXTRA
        print(SERVE_EXTRA.missing(), sorted({"uvicorn", "starlette"} & set(sys.modules)))
        """
    )
    assert result.stdout.strip() == "[] []", result.stdout + result.stderr


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["migrate"], "migrate"),
        (["up", "--wait", "3"], "migrate"),
        (["--json", "status"], "status"),
        (["-d", "postgresql://h/status", "plan"], "plan"),
        (["--database-url", "new", "verify"], "verify"),  # "new" is the URL here
        (["--database", "x", "wait"], "wait"),  # an abbreviation argparse accepts
        (["--table=plan", "repair"], "repair"),
        (["-dpostgresql://h/db", "baseline", "001"], "baseline"),
        (["-m", "review", "diff"], "diff"),
        (["--help"], None),
        ([], None),
        (["frobnicate"], None),
    ],
)
def test_the_command_is_found_before_parsing(argv, command):
    assert find_command(argv) == command


def test_an_unknown_command_is_a_usage_error_listing_the_commands(cli):
    result = cli("frobnicate")
    assert result.code == 2
    assert "invalid choice: 'frobnicate'" in result.stderr and "migrate" in result.stderr
