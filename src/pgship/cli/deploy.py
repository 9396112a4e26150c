"""``pgship deploy``: run a release's pipeline (wait, verify, build, migrate, start, health).

Parses, calls the library (:mod:`pgship.deploy`) and renders its events and report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pgship import config
from pgship.cli.context import Context
from pgship.cli.options import plan_options, pooler_options, run_options, seconds_option, wait_option
from pgship.cli.registry import HTTP_CLIENT_EXTRA
from pgship.cli.render import migrate_payload
from pgship.errors import ExitCode, StageFailed, UsageError
from pgship.options import run_options_from, target_version
from pgship.output import Output
from pgship.runner import Event

DESCRIPTION = """\
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pgship.deploy import DEFAULT_START_LOG, DeployOptions

    wait_option(parser, default=DeployOptions.wait_s)
    parser.add_argument("--build", metavar="CMD", help="shell command that builds the release")
    parser.add_argument("--start", metavar="CMD", help="shell command that starts the release")
    seconds_option(
        parser,
        "--start-grace",
        default=DeployOptions.start_grace_s,
        timeout=True,
        help="a start command still running after this long is a service (default: %(default)g)",
    )
    parser.add_argument(
        "--start-log",
        type=Path,
        default=DEFAULT_START_LOG,
        metavar="FILE",
        help="where the start command's output goes, appended (default: %(default)s)",
    )
    parser.add_argument("--health-url", metavar="URL", help="health endpoint to poll after the start")
    seconds_option(
        parser,
        "--health-timeout",
        default=DeployOptions.health_timeout_s,
        timeout=True,
        help="how long to wait for pass (default: %(default)g)",
    )
    parser.add_argument(
        "--health-token-env",
        metavar="NAME",
        default=config.HEALTH_TOKEN_ENV,
        help="environment variable with the bearer token for --health-url (default: %(default)s)",
    )
    parser.add_argument(
        "--accept-warn", action="store_true", help="let the health gate pass on warn too (e.g. a rollback)"
    )
    parser.add_argument(
        "--release-id",
        metavar="ID",
        help=f"the release being deployed; the health gate waits for it (default: ${config.RELEASE_ID_ENV})",
    )
    plan_options(parser)
    run_options(parser)
    pooler_options(parser)


def run(ctx: Context) -> int:
    from pgship.deploy import Deployment, DeployOptions, summary

    args = ctx.args
    if args.health_url and not args.health_url.startswith(("http://", "https://")):
        raise UsageError(
            f"--health-url {args.health_url!r} is not an http:// or https:// URL",
            hint="Example: --health-url http://127.0.0.1:8080/health",
        )
    if args.health_url and HTTP_CLIENT_EXTRA.missing():
        raise UsageError(HTTP_CLIENT_EXTRA.message("deploy --health-url"), hint="Nothing was run.")
    token = config.secret_from_env(args.health_token_env)
    if token:
        ctx.out.secrets.append(token)
    release_id = config.release_id(args.release_id)
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
        direct_url=config.direct_url(args.direct_url),
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
