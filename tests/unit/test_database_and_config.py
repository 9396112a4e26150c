"""Secrets stay hidden; settings come from flags, then environment, then pyproject.toml."""

from __future__ import annotations

import pytest

from pgship import config
from pgship.database import check_url, describe, is_permanent, passwords_in, redact, scrub
from pgship.errors import UsageError


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app:s3cr%40t@db:5432/app",
        "postgres://app:s3cr%40t@db/app?sslmode=require",
        "host=db user=app password=s3cr%40t dbname=app",
        "host=db password='s3cr%40t x' dbname=app",
    ],
)
def test_redact_hides_passwords_in_urls_and_conninfo(text):
    assert "s3cr" not in redact(text)
    assert "***" in redact(text)


def test_passwords_are_found_in_url_and_environment_and_scrubbed_anywhere():
    secrets = passwords_in("postgresql://app:p%40ss-word@db/app", {"PGPASSWORD": "envsecret"})
    assert {"p@ss-word", "p%40ss-word", "envsecret"} <= set(secrets)
    assert "p@ss-word" not in scrub("server said p@ss-word and envsecret", secrets)


def test_describe_names_the_target_without_password():
    assert describe("postgresql://app:secret@db.example:6543/shop") == "app@db.example:6543/shop"


def test_credential_errors_are_permanent_and_refused_connections_are_not():
    assert is_permanent('FATAL:  password authentication failed for user "app"')
    assert is_permanent('FATAL:  database "x" does not exist')
    assert not is_permanent("Connection refused\n\tIs the server running on that host")
    assert not is_permanent("FATAL:  the database system is starting up")


def test_flags_win_over_environment_over_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pgship]\nmigrations_dir = "db/mig"\ntable = "from_file"\n'
    )
    env = {"PGSHIP_TABLE": "from_env", "DATABASE_URL": "postgresql://u@h/d"}
    settings = config.resolve(environ=env, cwd=tmp_path)
    assert settings.table == "from_env" and settings.migrations_dir == tmp_path / "db/mig"
    assert settings.database_url == "postgresql://u@h/d" and settings.database_source == "DATABASE_URL"
    flagged = config.resolve(
        table="from_flag", migrations_dir="x", database_url="postgresql://f@h/d", environ=env, cwd=tmp_path
    )
    assert (flagged.table, flagged.migrations_dir.name, flagged.database_source) == ("from_flag", "x", "flag")


def test_defaults_without_any_setting(tmp_path):
    settings = config.resolve(environ={}, cwd=tmp_path)
    assert settings.migrations_dir == tmp_path / "docker/postgres/migrations"
    assert settings.table == "schema_migrations" and not settings.has_database


def test_a_database_url_in_pyproject_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.pgship]\ndatabase_url = "postgresql://u:p@h/d"\n')
    with pytest.raises(UsageError) as error:
        config.resolve(environ={}, cwd=tmp_path)
    assert "never in a committed file" in error.value.hint


# -- malformed URLs: refused as bad input, and the password is hidden however broken the URL is ----------
SECRET = "s3cret:Canary"  # a raw colon too: a library may quote either piece
MALFORMED = [
    f"postgresql//app:{SECRET}@db/app",  # missing colon
    f"postgresql:/app:{SECRET}@db/app",  # one slash
    f"postgresql:app:{SECRET}@db/app",  # no slash
    f"postgresql://app:{SECRET} x@db/app",  # a raw space in the password
    f"postgresql://app:{SECRET}#x@db/app",  # a raw # (libpq accepts it; every URL parser reads a fragment)
    f"postgresql://app:{SECRET}?x@db/app",  # a raw ?
    f"postgresql://app:{SECRET}/x@db/app",  # a raw /
    f"postgresql://app:{SECRET}@x@db/app",  # a raw @
    f"postgresql://app:{SECRET}@db:54x2/app",  # a port that is not a number
    f"postgresql://app:{SECRET}@db:99999/app",  # a port out of range
    f"postgresql://app:{SECRET}%zz@db/app",  # a broken percent-encoding
    f"postgresql://app:{SECRET}@db/app?no_such_option=1",  # a parameter libpq does not know
    f"postgresql+psycopg://app:{SECRET}@db/app",  # SQLAlchemy's spelling
    f"https://app:{SECRET}@db/app",  # not PostgreSQL at all
]


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_is_a_usage_error_that_quotes_no_part_of_the_password(url):
    with pytest.raises(UsageError) as error:
        check_url(url)
    shown = f"{error.value.message}\n{error.value.hint}"
    assert "not a valid postgresql:// URL" in error.value.message
    assert "Canary" not in shown and "s3cret" not in shown, shown


@pytest.mark.parametrize("url", MALFORMED)
def test_describe_redact_and_scrub_hide_the_password_of_a_malformed_url(url):
    secrets = passwords_in(url, {})
    assert "Canary" not in describe(url, {})
    assert "Canary" not in scrub(f"connecting to {url} failed", secrets)
    # a library quoting just a piece of the password ("invalid port 'Canary'") is scrubbed too
    assert "Canary" not in scrub("invalid value 's3cret:Canary' and 'Canary' and s3cret", secrets)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr%40t@db:5432/app",
        "postgres://app@db/app?sslmode=require&application_name=x",
        "postgresql://app:pw@h1:5432,h2:5433/app?target_session_attrs=read-write",
        "postgresql://[::1]:5432/app",
        "postgresql:///app?host=/var/run/postgresql",
        "host=db user=app password='x y' dbname=app",
    ],
)
def test_well_formed_urls_and_connection_strings_pass_the_check(url):
    check_url(url)


def test_without_any_setting_describe_names_what_libpq_falls_back_on():
    described = describe(None, {"PGUSER": "deploy"})
    assert described == "deploy@local socket:5432/deploy"
    assert describe(None, {"PGHOST": "db", "PGPORT": "6432", "PGDATABASE": "shop"}).endswith("@db:6432/shop")


def test_what_libraries_print_on_their_own_is_scrubbed_or_dropped_never_raw():
    """psycopg's "error ignored terminating <psycopg.Pipeline ...>" warning, warnings, __del__ noise."""
    import io
    import logging
    import sys
    import warnings

    from pgship.output import Output, library_output

    url = f"postgresql://app:{SECRET}@db.internal:5432/app"
    secrets = passwords_in(url, {})
    for debug in (False, True):
        stdout, stderr = io.StringIO(), io.StringIO()
        out = Output(as_json=True, secrets=secrets, stdout=stdout, stderr=stderr)
        saved_stderr, sys.stderr = sys.stderr, stderr  # where the last-resort log handler would print
        try:
            with library_output(out, debug=debug), warnings.catch_warnings():
                warnings.simplefilter("always")
                logging.getLogger("psycopg").warning(
                    "error ignored terminating %r: %s", f"<psycopg.Pipeline [BAD] {url}>", "pipeline aborted"
                )
                warnings.warn(f"connection {url} was deleted while still open", ResourceWarning, stacklevel=1)
                sys.unraisablehook(
                    type("Info", (), {"err_msg": None, "object": url, "exc_value": ValueError(SECRET)})()
                )
        finally:
            sys.stderr = saved_stderr
        shown = stdout.getvalue() + stderr.getvalue()
        assert "Canary" not in shown and "s3cret" not in shown, shown
        assert stdout.getvalue() == "", "library output must never reach the JSON document's stdout"
        assert ("pipeline aborted" in shown) is debug, shown  # psycopg's noise only with PGSHIP_DEBUG=1
    assert logging.getLogger("psycopg").handlers == [], "the routing is undone after the command"
