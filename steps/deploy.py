"""Steps about the deploy pipeline (`pgship deploy`: wait, verify, build, migrate, start, health).

The pipeline runs as a real subprocess with the shop's build and start scripts
(``release_scripts``): they note what the database held when they ran, and the
start script leaves the release's health endpoint running as its service
(stopped after the scenario). pgship reaches the database through the
scenario's database link, so a step can make the database late or absent.

"When release N is deployed" means `pgship migrate` (steps/migrations.py);
here the whole pipeline is "the deploy pipeline ships release N".
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from behave import given, then, when

from pgship.testing.spec import attachments
from pgship.testing.spec.background import Watched
from pgship.testing.spec.commands import SUBPROCESS, CommandResult
from pgship.testing.spec.database_link import scenario_link, through_link
from pgship.testing.spec.health_endpoint import HealthEndpoint, free_port
from pgship.testing.spec.release_scripts import ReleaseScripts, release_id
from pgship.testing.spec.secrets import password_of
from pgship.testing.spec.workspace import EXPECTED_FAILURES, SAMPLE_APP
from steps.support import applied_versions, schema_snapshot, version_key, version_list

STAGES = ("wait", "verify", "build", "migrate", "start", "health")
_STAGE_BEGIN = re.compile(r"^==> (?P<stage>\w+): (?P<rest>.*)$")
_STAGE_END = re.compile(r"^    (?P<outcome>ok|FAILED) in [^:]+: ")


# -- running the pipeline ----------------------------------------------------------------
def release_scripts(context: Any) -> ReleaseScripts:
    """The shop's scripts in the workspace, written once; their service is stopped after the scenario."""
    world = context.world
    scripts = world.facts.get("release_scripts")
    if scripts is None:
        scenario_link(world)  # made first, so that it is closed after the service has stopped
        scripts = ReleaseScripts(world.workspace.root, free_port())
        world.cleanup.callback("the service the start script left running", scripts.stop_service)
        world.facts["release_scripts"] = scripts
        world.facts["script_options"] = {}
    return scripts


def write_scripts(context: Any, **options: bool) -> ReleaseScripts:
    scripts = release_scripts(context)
    context.world.facts["script_options"].update(options)
    for name, text in scripts.write(**context.world.facts["script_options"]).items():
        attachments.attach_text(name, text)
    return scripts


def pipeline_arguments(context: Any, number: int, *, wait_s: float, accept_warn: bool) -> list[str]:
    """`pgship deploy` with the release's scripts, its health endpoint and its release id."""
    world = context.world
    if world.facts.get("shipped_release") != number:
        world.workspace.ship_release(number)
        world.facts["shipped_release"] = number
    scripts = release_scripts(context)
    if not scripts.journal.parent.joinpath("build.sh").exists():
        write_scripts(context)
    scripts.stop_service()  # the previous deploy's service gives way, as `docker compose up -d` does
    world.facts["schema_before_pipeline"] = schema_snapshot(context)
    world.facts["rows_before_pipeline"] = world.tracking_rows()
    world.facts.setdefault("scan_from", time.time())
    applied = set(applied_versions(context))
    for path in sorted(world.workspace.migrations_dir.glob("*.sql")):
        if path.name.partition("_")[0] not in applied:
            attachments.attach_sql(path)
    arguments = [
        "deploy",
        "--wait", f"{wait_s:g}",
        "--build", "sh build.sh",
        "--start", start_command(context),
        "--start-grace", "0.2",
        "--health-url", f"http://127.0.0.1:{scripts.port}/health",
        "--health-timeout", "30",
        "--release-id", release_id(number),
    ]  # fmt: skip
    return [*arguments, "--accept-warn"] if accept_warn else arguments


def start_command(context: Any) -> str:
    """``sh start.sh``, or with the database URL written into it (the scripts ignore it)."""
    if context.world.facts.get("url_in_start_command"):
        return f"sh start.sh {shlex.quote(scenario_link(context.world).url)}"
    if context.world.facts.get("start_prints_environment"):
        return 'env; echo "url=$DATABASE_URL"; sh start.sh'
    return "sh start.sh"


def ship(
    context: Any, number: int, *, wait_s: float = 30, accept_warn: bool = False, as_json: bool = False
) -> CommandResult:
    """Run the pipeline for release ``number`` to the end and keep its result."""
    arguments = pipeline_arguments(context, number, wait_s=wait_s, accept_warn=accept_warn)
    cli = through_link(context.world)
    if context.world.facts.get("wrong_password"):
        cli = replace(cli, database_url=_with_wrong_password(cli.database_url))
    result = cli.run(*arguments, json_output=as_json, mode=SUBPROCESS, timeout=180)
    return remember(context, result)


def remember(context: Any, result: CommandResult) -> CommandResult:
    context.world.facts["pipeline"] = result
    context.world.facts.setdefault("pipelines", []).append(result)
    scripts = release_scripts(context)
    if scripts.start_log.exists():
        attachments.attach_text(
            "start log (.pgship/start.log)", scripts.start_log.read_text(errors="replace")
        )
    if scripts.journal.exists():
        attachments.attach_text("what the build and start scripts saw", scripts.journal.read_text())
    return result


def pipeline(context: Any) -> CommandResult:
    result = context.world.facts.get("pipeline")
    assert result is not None, "no deploy pipeline ran in this scenario"
    return result


def stage_outcomes(result: CommandResult) -> list[tuple[str, str]]:
    """``[(stage, ok | failed | skipped), ...]`` in the order the deploy log reports them."""
    outcomes: list[tuple[str, str]] = []
    current = None
    for line in result.stdout.splitlines():
        begin = _STAGE_BEGIN.match(line)
        if begin:
            current = begin["stage"]
            if begin["rest"].startswith("skipped"):
                outcomes.append((current, "skipped"))
                current = None
            continue
        end = _STAGE_END.match(line)
        if end and current:
            outcomes.append((current, end["outcome"].lower()))
            current = None
    return outcomes


WRONG_PASSWORD = "Not-The-Password-6"


def _with_wrong_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{WRONG_PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@given("the deploy's database URL has a wrong password")
def wrong_password(context: Any) -> None:
    context.world.facts["wrong_password"] = True


@given("the release's build is broken")
def build_broken(context: Any) -> None:
    write_scripts(context, build_fails=True)


@given("the release's build script prints the database URL")
def build_prints_url(context: Any) -> None:
    write_scripts(context, build_prints_url=True)


@given("the database is not accepting connections yet")
@given("the database does not accept connections")
def database_refuses(context: Any) -> None:
    scenario_link(context.world).refuse()


@given("a deploy pipeline of release {number:d} has failed on it")
def pipeline_failed_before(context: Any, number: int) -> None:
    result = ship(context, number)
    assert result.exit_code == 1 and "Deploy failed at the migrate stage" in result.stdout, result.output


@when("the deploy pipeline ships release {number:d}")
@when("the deploy pipeline ships release {number:d} again")
def ship_release(context: Any, number: int) -> None:
    ship(context, number)


@when("the deploy pipeline ships release {number:d}, accepting a health warning")
def ship_accepting_warn(context: Any, number: int) -> None:
    ship(context, number, accept_warn=True)


@when("the deploy pipeline ships release {number:d}, waiting at most {seconds:d} seconds for the database")
def ship_with_wait(context: Any, number: int, seconds: int) -> None:
    ship(context, number, wait_s=seconds)


@when("the deploy pipeline ships release {number:d} and the database comes up while it waits")
def ship_to_late_database(context: Any, number: int) -> None:
    arguments = pipeline_arguments(context, number, wait_s=60, accept_warn=False)
    deploy = Watched.start(through_link(context.world), *arguments)
    # act on what the deploy says, not on a clock: the database comes up once the deploy is waiting
    context.world.facts["waiting_line"] = deploy.wait_for(r"database not ready", timeout=60)
    scenario_link(context.world).forward()
    remember(context, deploy.finish(timeout=120))


@when("the author corrects migration {version}")
def author_corrects(context: Any, version: str) -> None:
    good = SAMPLE_APP.by_version(version)
    attachments.attach_sql(
        context.world.workspace.write(good.filename, good.sql), name=f"{good.filename} (corrected)"
    )


# -- the outcome --------------------------------------------------------------------------
@then("the pipeline succeeds")
def pipeline_succeeds(context: Any) -> None:
    result = pipeline(context)
    assert result.exit_code == 0, f"pgship deploy exited {result.exit_code}:\n{result.output}"
    assert re.search(r"^Deployed in ", result.stdout, re.M), result.output
    assert all(outcome in ("ok", "skipped") for _, outcome in stage_outcomes(result)), result.stdout


@then("the pipeline fails at the {stage:w} stage with exit code {code:d}")
def pipeline_fails_at(context: Any, stage: str, code: int) -> None:
    result = pipeline(context)
    assert result.exit_code == code, f"expected exit code {code}, got {result.exit_code}:\n{result.output}"
    assert f"Deploy failed at the {stage} stage" in result.stdout, result.output
    failed = [name for name, outcome in stage_outcomes(result) if outcome == "failed"]
    assert failed == [stage], f"the deploy log shows {failed} failed, expected [{stage!r}]:\n{result.stdout}"


@then("the {stages} stages did not run")
def stages_not_run(context: Any, stages: str) -> None:
    result = pipeline(context)
    expected = version_list(stages)
    ran = [name for name, _ in stage_outcomes(result)]
    assert not set(expected) & set(ran), f"the deploy log shows stages {ran}:\n{result.stdout}"
    summary = re.search(r"not run: (?P<names>[\w, ]+)\.$", result.stdout, re.M)
    assert summary and version_list(summary["names"]) == expected, (
        f"the summary says otherwise:\n{result.stdout}"
    )


@then("the deploy log shows the stages {stages}, in that order")
def stages_in_order(context: Any, stages: str) -> None:
    result = pipeline(context)
    expected = [(name, "ok") for name in version_list(stages)]
    assert stage_outcomes(result) == expected, (
        f"the deploy log shows {stage_outcomes(result)}:\n{result.stdout}"
    )


def _versions_at(number: int) -> list[str]:
    return [migration.version for migration in SAMPLE_APP.release(number)]


@then(
    "the build ran while the database was at release {before:d}, "
    "and the start once it was at release {after:d}"
)
def build_then_start(context: Any, before: int, after: int) -> None:
    entries = release_scripts(context).entries()
    stages = [entry["stage"] for entry in entries]
    assert stages == ["build", "start"], f"the scripts ran as {stages}, expected build then start"
    build, start = entries
    for entry, number in ((build, before), (start, after)):
        applied = sorted(entry["applied"] or [], key=version_key)
        assert applied == _versions_at(number), (
            f"the {entry['stage']} script saw migrations {applied}, expected those of release {number}"
        )
        assert entry["database_url_given"], f"the {entry['stage']} script got no DATABASE_URL"
        assert entry["release_id"] == release_id(after), (
            f"the {entry['stage']} script got {entry['release_id']!r}"
        )


@then("the release's {script:w} script never ran")
def script_never_ran(context: Any, script: str) -> None:
    scripts = release_scripts(context)
    stages = [entry["stage"] for entry in scripts.entries()]
    assert script not in stages, f"the {script} script ran: {stages}"
    if script == "start":
        assert not scripts.pid_file.exists(), "a service was started"


@then("the release's health endpoint reports release {number:d} as healthy")
def service_healthy(context: Any, number: int) -> None:
    answer = HealthEndpoint(release_scripts(context).port).ask("/health")
    document = answer.document()
    assert answer.status_code == 200 and document.get("status") == "pass", (
        f"{answer.status_code}: {answer.text}"
    )
    assert document.get("releaseId") == release_id(number), f"releaseId {document.get('releaseId')!r}"


@then("the release's health endpoint reports release {number:d} with a warning naming migrations {versions}")
def service_warns(context: Any, number: int, versions: str) -> None:
    answer = HealthEndpoint(release_scripts(context).port).ask("/health/database")
    document = answer.document()
    assert answer.status_code == 200 and document.get("status") == "warn", (
        f"{answer.status_code}: {answer.text}"
    )
    assert document.get("releaseId") == release_id(number), f"releaseId {document.get('releaseId')!r}"
    migrations = document["checks"]["database:migrations"][0]
    assert migrations["appliedWithoutFile"] == version_list(versions), migrations


@then("the database schema is exactly as it was before the pipeline ran")
def schema_unchanged(context: Any) -> None:
    world = context.world
    after = schema_snapshot(context)
    attachments.attach_json("schema after the deploy", after)
    assert after == world.facts["schema_before_pipeline"], "the schema changed"
    assert world.tracking_rows() == world.facts["rows_before_pipeline"], "the tracking table changed"


# -- the deploy log ------------------------------------------------------------------------
@then("the deploy log says there was nothing to apply")
def log_nothing_to_apply(context: Any) -> None:
    stdout = pipeline(context).stdout
    assert re.search(r"^    ok in .*: nothing to apply", stdout, re.M), stdout


@then("the deploy log warns that migrations {versions} are newer than this release")
def log_warns_newer(context: Any, versions: str) -> None:
    stderr = pipeline(context).stderr
    expected = ", ".join(version_list(versions))
    assert f"warning: the database has migrations newer than this release: {expected} " in stderr, stderr


@then("the deploy log shows the end of the build's output")
def log_shows_build_output(context: Any) -> None:
    stdout = pipeline(context).stdout
    assert "last output:" in stdout and "| error: the image does not build" in stdout, stdout


@then("the deploy log shows it waited for the database before going on")
def log_waited(context: Any) -> None:
    result = pipeline(context)
    assert "database not ready" in context.world.facts["waiting_line"]
    assert re.search(r"^warning: database not ready \(.+\); retrying for \d+ s more$", result.stderr, re.M), (
        result.stderr
    )
    assert ("wait", "ok") in stage_outcomes(result), result.stdout


@then("the deploy log reports that the database is not ready and how long it keeps trying")
def log_progress(context: Any) -> None:
    stderr = pipeline(context).stderr
    lines = re.findall(r"^warning: database not ready \((.+)\); retrying for (\d+) s more$", stderr, re.M)
    assert lines, f"no progress line while waiting:\n{stderr}"
    assert "refused" in lines[0][0].lower(), f"the progress line does not say why: {lines[0][0]}"


@then("the deploy log says it could not connect to the database after waiting, and what to check")
def log_gave_up(context: Any) -> None:
    world = context.world
    stderr = pipeline(context).stderr
    link = scenario_link(world)
    where = f"{urlsplit(world.database_url).username}@127.0.0.1:{link.port}/{world.database_name}"
    assert re.search(
        rf"^error: cannot connect to {re.escape(where)} after waiting \d+ s \(\d+ attempts\): ", stderr, re.M
    ), f"the error does not name {where} and the wait:\n{stderr}"
    assert "Check that the database is running and reachable" in stderr, stderr


@then("the deploy log says the password was refused and that waiting will not help, without waiting")
def log_refused_for_good(context: Any) -> None:
    stderr = pipeline(context).stderr
    assert "password authentication failed" in stderr, stderr
    assert "waiting will not help" in stderr and "exit 6" in stderr, stderr
    assert "database not ready" not in stderr and "after waiting" not in stderr, f"it waited:\n{stderr}"
    assert WRONG_PASSWORD not in pipeline(context).output


@then("the deploy log names the file of migration {version}, the line that failed and the database's reason")
def log_names_failure(context: Any, version: str) -> None:
    expected = EXPECTED_FAILURES[version]
    filename = SAMPLE_APP.broken_variant(version).filename
    stderr = pipeline(context).stderr
    where = f"{filename}:{expected.line}: {expected.message} [SQLSTATE {expected.sqlstate}]"
    assert f"error: {where}" in stderr, f"the error does not read {where!r}:\n{stderr}"


@then("the deploy log says the failed migration was rolled back and the release was not started")
def log_rolled_back(context: Any) -> None:
    result = pipeline(context)
    assert "The migration was rolled back" in result.stderr, result.stderr
    assert re.search(r"; not run: start, health\.$", result.stdout, re.M), result.stdout


# -- secrets -------------------------------------------------------------------------------
@when("the deploy pipeline ships release {number:d}, as text and as JSON")
def ship_both_ways(context: Any, number: int) -> None:
    for as_json in (False, True):
        ship(context, number, as_json=as_json)


@when("the deploy pipeline ships release {number:d}, in which migration {version} fails, as text and as JSON")
def ship_failing_both_ways(context: Any, number: int, version: str) -> None:
    context.world.workspace.ship_release(number, broken=(version,))
    context.world.facts["shipped_release"] = number
    for as_json in (False, True):
        assert ship(context, number, as_json=as_json).exit_code == 1, pipeline(context).output


@when("the deploy pipeline ships release {number:d} to a database that never comes up, as text and as JSON")
def ship_unreachable_both_ways(context: Any, number: int) -> None:
    scenario_link(context.world).refuse()
    for as_json in (False, True):
        assert ship(context, number, wait_s=1, as_json=as_json).exit_code == 3, pipeline(context).output


def _password_forms(context: Any) -> list[str]:
    password = password_of(context.world.database_url) or ""
    assert password, "the scenario's database URL has no password, so a scan would prove nothing"
    return [password, quote(password, safe="")]


@given("the release's start command prints its environment, database URL and password included")
def start_prints_environment(context: Any) -> None:
    context.world.facts["start_prints_environment"] = True


@then("the start log shows the database URL with the password masked")
def start_log_masked(context: Any) -> None:
    text = release_scripts(context).start_log.read_text(errors="replace")
    assert re.search(r"^DATABASE_URL=postgresql://\w+:\*+@127\.0\.0\.1:\d+/\w+$", text, re.M), (
        f"the start log does not show the database URL, masked:\n{text}"
    )
    assert re.search(r"^url=postgresql://\w+:\*+@", text, re.M), text


@then("the start log and its folder can be read by their owner only")
def start_log_private(context: Any) -> None:
    import stat

    log = release_scripts(context).start_log
    assert stat.S_IMODE(log.stat().st_mode) == 0o600, oct(log.stat().st_mode)
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700, oct(log.parent.stat().st_mode)


@given("the release's start command has the database URL written into it")
def url_in_start_command(context: Any) -> None:
    context.world.facts["url_in_start_command"] = True


@then("the deploy logs show the build's output and the start command with the password masked")
def masked_in_logs(context: Any) -> None:
    stdout = "\n".join(result.stdout for result in context.world.facts["pipelines"])
    start_log = release_scripts(context).start_log.read_text(errors="replace")
    masked_url = r"postgresql://\w+:\*+@127\.0\.0\.1:\d+/\w+"
    for where, text, pattern in (
        ("the deploy log", stdout, rf"\| building against {masked_url}$"),
        ("the deploy log", stdout, rf"^==> start: \$ sh start\.sh '?{masked_url}'?$"),
        ("the start log", start_log, rf"^=== pgship deploy .*: \$ sh start\.sh '?{masked_url}'?$"),
    ):
        assert re.search(pattern, text, re.M), f"{where} has no line matching {pattern!r}:\n{text}"


@then("nothing the deploys printed or wrote contains the password")
def nothing_contains_password(context: Any) -> None:
    results = context.world.facts["pipelines"]
    if not context.world.facts.get("start_prints_environment"):
        assert {r.exit_code for r in results} == {0, 1, 3}, [r.exit_code for r in results]
    texts = {f"`{r.display()}` (exit {r.exit_code})": r.output for r in results}
    for result in results:
        if "--json" in result.argv:
            assert result.json()["status"] in ("ok", "failed", "unreachable"), result.stdout
    scripts = release_scripts(context)
    for path in [scripts.journal, *scripts.start_log.parent.glob("*")]:
        texts[str(path.relative_to(context.world.workspace.root))] = path.read_text(errors="replace")
    assert scripts.start_log.name in " ".join(texts), "the start log was not written, so it was not scanned"
    for secret in _password_forms(context):
        for where, text in texts.items():
            assert secret not in text, f"{where} contains the password:\n{text}"


@then("no report attachment of this scenario contains the password")
def no_password_in_report(context: Any) -> None:
    written = attachments.files_written_since(context._runner, context.world.facts["scan_from"])
    assert len(written) >= len(context.world.facts["pipelines"]), "fewer attachments than deploys"
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in _password_forms(context):
            assert secret not in text, f"the report attachment {path.name} contains the password"
