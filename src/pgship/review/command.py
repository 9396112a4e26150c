"""``pgship review``: what a release will do to the production database, before it runs.

A command module of the CLI (listed in :mod:`pgship.cli.registry`). Gathers
(the I/O): the pending files (from the tracking table when a database is
given, else every file or the files named), each statement's locks
(:mod:`pgship.review.locks`), the tables' sizes in production
(:mod:`pgship.review.sizes`), squawk's findings, and with ``--replay`` each
migration's duration on a throwaway server; then renders it
(:mod:`pgship.review.render`, ``--json``, ``--markdown``) and applies the gate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pgship import config
from pgship.cli.checks import lint_or_reason, replay_wanted
from pgship.cli.context import Context
from pgship.cli.options import replay_arguments, wait_option
from pgship.database import passwords_in
from pgship.errors import ExitCode, PgshipError, UsageError
from pgship.migrations import Discovery, MigrationFile
from pgship.planner import State
from pgship.review.release import GATE_EXIT_CODE, MigrationReview, ReleaseReview, Threshold, relations_of

DESCRIPTION = """\
Review what a release will do to the production database before it runs: for each
pending migration and each statement in it, the statement kind, the lock it takes and
on which table (PostgreSQL's documented lock levels, read from the parse tree), whether
it rewrites or scans the table, whether it runs in a transaction, and squawk's findings.

With a database (-d or DATABASE_URL) the pending migrations are those the tracking table
lacks, and each table's size in production is shown (pg_class.reltuples,
pg_total_relation_size), so "ACCESS EXCLUSIVE on a 40 M-row table" stands out. Without
one, every file (or the FILES named) is reviewed and sizes are unknown. Nothing is changed:
the database is read in one read-only transaction.

Locks: ACCESS EXCLUSIVE blocks reads and writes; SHARE, SHARE ROW EXCLUSIVE and
EXCLUSIVE block writes; SHARE UPDATE EXCLUSIVE (CONCURRENTLY, VALIDATE CONSTRAINT) and
weaker block neither.

exit codes: 0 reviewed; 7 a --fail-on threshold is crossed; 2 bad input (a pending file
that migrate would refuse, a bad --fail-on); 1 the --replay failed; 3 database unreachable.
"""

EPILOG = """\
examples:
  pgship review                                   the pending migrations, worst lock first
  pgship review --markdown >> "$GITHUB_STEP_SUMMARY"
  pgship review --fail-on access-exclusive:1000000   exit 7 on ACCESS EXCLUSIVE on a table of >1M rows
  pgship review --fail-on share                   exit 7 on any lock that blocks writes
  pgship review --replay --json                   with each migration's duration on a replay
  pgship review --allure-results reports/allure-results   the review in the living documentation
"""


def add_arguments(review: argparse.ArgumentParser) -> None:
    review.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="review these migrations (file names, paths or versions) instead of the pending ones",
    )
    review.add_argument(
        "--markdown", action="store_true", help="print Markdown (a pull-request comment, a CI job summary)"
    )
    review.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="LOCK[:ROWS]",
        help="exit 7 when a statement takes LOCK or a stronger one on an existing table of more than ROWS "
        "rows (any size without :ROWS; 1m, 500k accepted). LOCK: access-exclusive, exclusive, "
        "share-row-exclusive, share, share-update-exclusive, row-exclusive. An unknown size (no database, "
        "table never analysed) counts as too big. Repeatable.",
    )
    review.add_argument("--no-lint", dest="lint", action="store_false", help="skip squawk")
    review.add_argument(
        "--replay",
        action="store_true",
        help="also replay every migration on a throwaway PostgreSQL and show each pending one's duration",
    )
    replay_arguments(review, implies_replay=True)
    review.add_argument(
        "--allure-results",
        type=Path,
        metavar="DIR",
        default=None,
        help="also write the review as Allure results (epic 'Release review') into DIR",
    )
    wait_option(review)


def run(ctx: Context) -> int:
    args = ctx.args
    if args.markdown and ctx.out.as_json:
        raise UsageError("--markdown and --json are two formats: choose one")
    try:
        thresholds = [Threshold.parse(text) for text in args.fail_on]
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}", hint="Example: --fail-on access-exclusive:1000000") from None
    discovery: Discovery = ctx.discover()
    database = None
    sizes = None
    server_version = None
    server_major = None
    with_database = ctx.settings.has_database
    pending = _chosen(discovery, args.files) if args.files else None
    conn_context = ctx.connect() if with_database else None
    reviews: list[MigrationReview]
    if conn_context is not None:
        from pgship.review.sizes import server_major as read_major
        from pgship.review.sizes import table_sizes

        database = ctx.header()["database"]
        with conn_context as conn:
            if pending is None:
                plan = ctx.runner(conn).plan(discovery, allow_out_of_order=True, allow_missing=True)
                for refusal in plan.refusals:
                    ctx.out.warn(f"migrate would refuse: {refusal.message}")
                pending = [e.file for e in plan.with_state(State.PENDING, State.OUT_OF_ORDER) if e.file]
            server_version = str(conn.execute("SHOW server_version").fetchone()[0])
            server_major = read_major(conn)
            reviews = _read(pending, server_major)
            sizes = table_sizes(conn, relations_of(reviews))
    else:
        if pending is None:
            pending = list(discovery.migrations)
        reviews = _read(pending, server_major)
    review = ReleaseReview(reviews, sizes=sizes, server_version=server_version, thresholds=thresholds)
    if args.lint:
        _lint(review, pending)
    replay_failed = None
    if replay_wanted(args):
        replay_failed = _replay(ctx, review, discovery)
    if args.allure_results is not None:
        from pgship.review.allure import write_results

        try:
            write_results(review, args.allure_results, database=database, secrets=ctx.out.secrets)
        except OSError as exc:
            raise UsageError(
                f"--allure-results: cannot write to {args.allure_results}: {exc.strerror or exc}",
                hint="Name a directory pgship can create or write into.",
            ) from None
    _render(ctx, review, database)
    if replay_failed is not None:
        return ExitCode.FAILED
    if any(m.problems for m in review.migrations):
        return ExitCode.INVALID
    return GATE_EXIT_CODE if review.violations() else ExitCode.OK


def _chosen(discovery: Discovery, names: list[str]) -> list[MigrationFile]:
    chosen: list[MigrationFile] = []
    for name in names:
        base = Path(name).name
        match = [m for m in discovery.migrations if base in (m.filename, str(m.version))]
        if not match:
            raise UsageError(
                f"{name}: not a migration in {discovery.directory}",
                hint="Name files of the migrations directory (or versions); `pgship status` lists them.",
            )
        chosen.extend(m for m in match if m not in chosen)
    return sorted(chosen, key=lambda m: m.version)


def _read(migrations: list[MigrationFile], server_major: int | None) -> list[MigrationReview]:
    from pgship.review.locks import review_sql
    from pgship.sqlscript import analyse

    reviews = []
    for migration in migrations:
        script = analyse(migration.text)
        locks = review_sql(migration.text, no_transaction=script.no_transaction, server_major=server_major)
        problems = [f"line {p.line}: {p.message}" if p.line else p.message for p in script.problems] or (
            [locks.error] if locks.error else []
        )
        reviews.append(
            MigrationReview(
                version=str(migration.version),
                file=migration.filename,
                no_transaction=script.no_transaction,
                statements=locks.statements,
                problems=problems,
            )
        )
    return reviews


def _lint(review: ReleaseReview, migrations: list[MigrationFile]) -> None:
    no_transaction = {m.file for m in review.migrations if m.no_transaction}
    parseable = [m for m, r in zip(migrations, review.migrations, strict=True) if not r.problems]
    findings, reason = lint_or_reason(parseable, no_transaction)
    if reason is not None:
        review.lint_error = reason
        return
    by_file = {m.file: m for m in review.migrations}
    for finding in findings:
        if finding.file in by_file:
            by_file[finding.file].lint.append(finding)


def _replay(ctx: Context, review: ReleaseReview, discovery: Discovery) -> PgshipError | None:
    """Replay every migration from empty; record each reviewed one's duration. The error, if it failed."""
    from pgship.replay import ReplayFailed, ReplayOptions, replayed
    from pgship.runner import Event

    url = config.replay_url(ctx.args.replay_url)
    ctx.out.secrets = sorted({*ctx.out.secrets, *passwords_in(url, environ={})}, key=len, reverse=True)
    options = ReplayOptions(url=url, pg_version=ctx.args.replay_pg_version, roles=tuple(ctx.args.replay_role))
    durations: dict[str, int] = {}

    def on_event(event: Event) -> None:
        if event.kind == "applied":
            durations[str(event.data.get("file"))] = int(event.data.get("execution_ms", 0))

    failure: PgshipError | None = None
    try:
        with replayed(discovery, ctx.table, options, on_event=on_event) as done:
            review.replay = {**done.result.to_dict(), "summary": done.result.summary()}
    except ReplayFailed as error:
        failure = error
        review.replay = {**error.result.to_dict(), "error": error.message, "summary": error.message}
        failed_file = error.details.file
        for migration in review.migrations:
            if migration.file == failed_file:
                migration.problems.append(f"replay failed: {error.message}")
    for migration in review.migrations:
        migration.replay_ms = durations.get(migration.file)
    return failure


def _render(ctx: Context, review: ReleaseReview, database: str | None) -> None:
    from pgship.review.render import markdown, terminal_lines

    if ctx.out.as_json:
        ctx.out.document({**ctx.header(), "database": database, **review.to_dict()})
    elif ctx.args.markdown:
        ctx.out.line(markdown(review, database).rstrip("\n"))
    else:
        for line in terminal_lines(review, database):
            ctx.out.line(line)


__all__ = ["DESCRIPTION", "EPILOG", "add_arguments", "run"]
