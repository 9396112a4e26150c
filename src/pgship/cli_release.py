"""The commands that run a release: ``pgship serve`` (health endpoints) and ``pgship deploy``.

They plug into :mod:`pgship.cli` through its ``_EXTENSIONS`` hook; like the rest of
the CLI they only parse, call the library (:mod:`pgship.health`, :mod:`pgship.deploy`)
and render.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgship.cli import (
    _EXTENSIONS,
    COMMANDS,
    Context,
    _plan_options,
    _wait_option,
    add_pooler_options,
    add_run_options,
    migrate_payload,
)
from pgship.errors import ExitCode, PgshipError, StageFailed, UsageError
from pgship.options import (
    connection_count,
    header_bytes,
    port_number,
    run_options_from,
    target_version,
    timeout_seconds,
    wait_seconds,
)
from pgship.output import Output
from pgship.runner import Event

DEFAULT_TOKEN_ENV = "PGSHIP_HEALTH_TOKEN"
RELEASE_ID_ENV = "PGSHIP_RELEASE_ID"

AddCommand = Callable[..., argparse.ArgumentParser]


# -- serve ---------------------------------------------------------------------------
SERVE_DESCRIPTION = """\
Serve the health endpoints (application/health+json) under uvicorn:

  GET /health/live      200 while the process serves; never touches the database
  GET /health           readiness: 200 when the database answers and nothing is pending, else 503
  GET /health/database  details (response time, server version, applied and shipped migrations,
                        pending, applied-without-file, checksum mismatches); pass/warn 200, fail 503

"Shipped" migrations are the files in the migrations directory, read once at start-up.
The database check is bounded (--check-timeout) and cached (--cache-ttl): however many
requests arrive, the database sees at most one check per cache period.

Slow, broken or hostile clients cannot starve the probes:
  - a connection must deliver a complete request within --header-timeout of opening (or of
    its previous answer), or it is closed (408 if a request had begun); so is one that stops
    reading its answers for as long. Idle keep-alive connections close after 5 s at most;
  - a request line plus headers over --max-header-size gets 431, and is never buffered whole;
  - at --max-connections open, a new connection closes the one that has waited longest for a
    complete request. The open-files soft limit is raised to the hard limit at start-up, and
    the connection cap is kept 64 under it.
"""


def add_serve(add: AddCommand) -> None:
    from pgship.config import HEALTH_CACHE_TTL_S as DEFAULT_CACHE_TTL_S
    from pgship.config import HEALTH_CHECK_TIMEOUT_S as DEFAULT_CHECK_TIMEOUT_S
    from pgship.health_limits import (
        DEFAULT_HEADER_TIMEOUT_S,
        DEFAULT_MAX_CONNECTIONS,
        DEFAULT_MAX_HEADER_BYTES,
    )

    serve = add("serve", "serve the health endpoints over HTTP", SERVE_DESCRIPTION)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=port_number, default=8080, help="default: %(default)d")
    serve.add_argument(
        "--release-id",
        metavar="ID",
        help=f"reported as releaseId, e.g. the git SHA (default: ${RELEASE_ID_ENV})",
    )
    serve.add_argument(
        "--token-env",
        metavar="NAME",
        default=DEFAULT_TOKEN_ENV,
        help="environment variable holding the bearer token that /health/database requires "
        "(default: %(default)s; unset or empty: no token). Never pass a token as an argument.",
    )
    serve.add_argument(
        "--cache-ttl",
        type=wait_seconds,
        default=DEFAULT_CACHE_TTL_S,
        metavar="SECONDS",
        help="reuse a database check this long (default: %(default)g; 0: check on every request)",
    )
    serve.add_argument(
        "--check-timeout",
        type=timeout_seconds,
        default=DEFAULT_CHECK_TIMEOUT_S,
        metavar="SECONDS",
        help="a database check that takes longer fails with 503 (default: %(default)g)",
    )
    serve.add_argument(
        "--header-timeout",
        type=timeout_seconds,
        default=DEFAULT_HEADER_TIMEOUT_S,
        metavar="SECONDS",
        help="close a connection that has not sent a complete request this long after opening "
        "or after its previous response (default: %(default)g)",
    )
    serve.add_argument(
        "--max-header-size",
        type=header_bytes,
        default=DEFAULT_MAX_HEADER_BYTES,
        metavar="BYTES",
        help="answer 431 to a request whose line and headers are larger (default: %(default)d)",
    )
    serve.add_argument(
        "--max-connections",
        type=connection_count,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="open client connections; beyond, the one waiting longest for a complete request "
        "is closed (default: %(default)d, and at most the open-files limit less 64)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (method, path, status; no query string)"
    )
    COMMANDS["serve"] = cmd_serve


def cmd_serve(ctx: Context) -> int:
    import gc

    import uvicorn

    gc.enable()  # `pgship` runs with the collector off (cli.run): a server lives long enough to need it

    from pgship.health import create_app
    from pgship.health_limits import ServerLimits, effective_max_connections, raise_fd_limit
    from pgship.health_server import protocol_factory

    args = ctx.args
    if args.check_timeout <= 0:
        raise UsageError("--check-timeout must be more than 0 s")
    limits = ServerLimits(args.header_timeout, args.max_header_size, args.max_connections)
    fd_soft_limit, _ = raise_fd_limit()
    max_connections = effective_max_connections(limits, fd_soft_limit)
    token = os.environ.get(args.token_env) or None
    if token:
        ctx.out.secrets.append(token)
    release_id = args.release_id or os.environ.get(RELEASE_ID_ENV) or None
    app = create_app(
        database_url=ctx.settings.database_url,
        migrations_dir=ctx.settings.migrations_dir,
        table=ctx.settings.table,
        release_id=release_id,
        token=token,
        cache_ttl_s=args.cache_ttl,
        check_timeout_s=args.check_timeout,
    )
    release = app.state.health.release
    for warning in release.discovery.warnings:
        ctx.out.warn(warning)
    url = f"http://{args.host}:{args.port}"
    if ctx.out.as_json:
        ctx.out.document(
            {
                **ctx.header(),
                "status": "serving",
                "url": url,
                "release_id": release_id,
                "shipped": release.shipped_count,
                "latest_shipped": release.latest_shipped,
                "token_required": token is not None,
                "cache_ttl_s": args.cache_ttl,
                "check_timeout_s": args.check_timeout,
                "header_timeout_s": limits.header_timeout_s,
                "max_header_bytes": limits.max_header_bytes,
                "max_connections": max_connections,
            }
        )
    else:
        ctx.out.line(
            f"pgship serve: {url}/health (release {release_id or 'not set'}; "
            f"{release.shipped_count} migrations shipped, latest {release.latest_shipped or 'none'}; "
            f"/health/database {'needs a bearer token' if token else 'is open'})"
        )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=protocol_factory(limits, max_connections),
        ws="none",  # no WebSocket upgrades: an upgraded connection would leave the guard
        log_config=uvicorn_log_config(),
        access_log=args.access_log,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # SIGINT/SIGTERM: uvicorn has shut down gracefully, then re-raised the signal
    except SystemExit:
        if not server.started:
            raise PgshipError(
                f"cannot listen on {args.host}:{args.port}",
                hint="Another process may use the port: stop it or pick another with --port.",
            ) from None
        raise
    return ExitCode.OK


class PathOnly(logging.Filter):
    """Drops the query string from access-log lines: nothing but the path is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging, plus pgship's health log; psycopg's own (unscrubbed) warnings are muted."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["path_only"] = {"()": PathOnly}
    config["handlers"]["access"]["filters"] = ["path_only"]
    config["loggers"]["pgship"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["psycopg"] = {"handlers": ["default"], "level": "ERROR", "propagate": False}
    return config


# -- deploy --------------------------------------------------------------------------
DEPLOY_DESCRIPTION = """\
Run a release's deploy pipeline, stage by stage, each timed and reported:

  wait     wait for the database to accept connections (--wait)
  verify   parse every migration file; refuse edited, deleted or out-of-order migrations
  build    run --build CMD, if given (before anything changes in the database)
  migrate  apply the pending migrations
  start    run --start CMD, if given (see below)
  health   poll --health-url until it reports pass (and --release-id, if given)

The first failure stops the pipeline: when a migration fails the start command never runs.
A start command that exits within --start-grace seconds (docker compose up -d) succeeds or
fails by its exit code; one still running then (pgship serve, ./app) is the service: it is
left running, with its output in --start-log. Commands get DATABASE_URL, PGSHIP_MIGRATIONS_DIR,
PGSHIP_TABLE and PGSHIP_RELEASE_ID in their environment.

exit codes: 0 deployed, 1 a migration, command or the health gate failed, 2 invalid or
refused migration files or options, 3 database unreachable within --wait, 4 migration lock not
acquired, 6 the database refused the connection (password, database, role: waiting will not
help), 130 interrupted.
"""


def add_deploy(add: AddCommand) -> None:
    from pgship.deploy import DEFAULT_START_LOG, DeployOptions

    deploy = add(
        "deploy", "wait, verify, build, migrate, start and health-check a release", DEPLOY_DESCRIPTION
    )
    _wait_option(deploy, default=DeployOptions.wait_s)
    deploy.add_argument("--build", metavar="CMD", help="shell command that builds the release")
    deploy.add_argument("--start", metavar="CMD", help="shell command that starts the release")
    deploy.add_argument(
        "--start-grace",
        type=timeout_seconds,
        default=DeployOptions.start_grace_s,
        metavar="SECONDS",
        help="a start command still running after this long is a service (default: %(default)g)",
    )
    deploy.add_argument(
        "--start-log",
        type=Path,
        default=DEFAULT_START_LOG,
        metavar="FILE",
        help="where the start command's output goes, appended (default: %(default)s)",
    )
    deploy.add_argument("--health-url", metavar="URL", help="health endpoint to poll after the start")
    deploy.add_argument(
        "--health-timeout",
        type=timeout_seconds,
        default=DeployOptions.health_timeout_s,
        metavar="SECONDS",
        help="how long to wait for pass (default: %(default)g)",
    )
    deploy.add_argument(
        "--health-token-env",
        metavar="NAME",
        default=DEFAULT_TOKEN_ENV,
        help="environment variable with the bearer token for --health-url (default: %(default)s)",
    )
    deploy.add_argument(
        "--accept-warn", action="store_true", help="let the health gate pass on warn too (e.g. a rollback)"
    )
    deploy.add_argument(
        "--release-id",
        metavar="ID",
        help=f"the release being deployed; the health gate waits for it (default: ${RELEASE_ID_ENV})",
    )
    _plan_options(deploy)
    add_run_options(deploy)
    add_pooler_options(deploy)
    COMMANDS["deploy"] = cmd_deploy


def cmd_deploy(ctx: Context) -> int:
    from pgship.deploy import Deployment, DeployOptions, summary

    args = ctx.args
    if args.health_url and not args.health_url.startswith(("http://", "https://")):
        raise UsageError(
            f"--health-url {args.health_url!r} is not an http:// or https:// URL",
            hint="Example: --health-url http://127.0.0.1:8080/health",
        )
    token = os.environ.get(args.health_token_env) or None
    if token:
        ctx.out.secrets.append(token)
    release_id = args.release_id or os.environ.get(RELEASE_ID_ENV) or None
    options = DeployOptions(
        wait_s=args.wait,
        build_command=args.build,
        start_command=args.start,
        start_grace_s=args.start_grace,
        start_log=args.start_log,
        health_url=args.health_url,
        health_timeout_s=args.health_timeout,
        health_token=token,
        accept_warn=args.accept_warn,
        release_id=release_id,
        target=target_version(args),
        allow_out_of_order=args.allow_out_of_order,
        allow_missing=args.allow_missing,
        allow_empty=args.allow_empty,
        run_options=run_options_from(args),
        direct_url=args.direct_url,
        lease_ttl_s=args.lease_ttl,
    )
    report = Deployment(
        ctx.settings, options, on_event=DeployRenderer(ctx.out), secrets=ctx.out.secrets
    ).run()
    payload: dict[str, Any] = {
        **ctx.header(),
        "release_id": release_id,
        "failed_stage": report.failed_stage,
        "stages": [stage.to_dict() for stage in report.stages],
        "migrate": migrate_payload(report.migrate, "failed" if report.failed_stage == "migrate" else "ok")
        if report.migrate
        else None,
        "service": {"pid": report.service_pid, "log": report.start_log} if report.service_pid else None,
        "duration_ms": report.duration_ms,
    }
    ctx.out.stop_progress()
    if report.error is None:
        ctx.out.document({**payload, "status": "ok"})
        ctx.out.line(summary(report))
        return ExitCode.OK
    ctx.out.line(summary(report))
    error = report.error
    if isinstance(error, StageFailed) and error.output:
        ctx.out.line("  last output:")
        for line in error.output:
            ctx.out.line(f"    | {line}")
    error.payload = payload
    raise error


class DeployRenderer:
    """Turns deploy events into lines: a header per stage, its outcome, command output, progress."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        from pgship.deploy import StageResult, format_duration

        out = self.out
        stage = event.data.get("stage")
        if event.kind == "stage_begin":
            assert isinstance(stage, StageResult)
            out.line(f"==> {stage.name}: {event.message}")
        elif event.kind == "stage_end":
            assert isinstance(stage, StageResult)
            out.stop_progress()
            if stage.status == "skipped":
                out.line(f"==> {stage.name}: skipped ({stage.detail})")
            else:
                outcome = "ok" if stage.status == "ok" else "FAILED"
                out.line(f"    {outcome} in {format_duration(stage.duration_ms)}: {stage.detail}")
        elif event.kind == "output":
            out.line(f"    | {event.message}")
        elif event.kind == "warning":
            out.warn(event.message)
        else:
            out.event(event)


_EXTENSIONS.extend([add_serve, add_deploy])
