"""pgship's Allure formatter: allure-behave 2.16.2 plus what living documentation needs.

One file although over 400 lines: it is one subclass of allure-behave's formatter, whose
hooks share the formatter's state; the differences below are each a few overridden hooks.

Differences from ``allure_behave.formatter:AllureFormatter``, and why:

* Scenarios under a Gherkin ``Rule:`` are reported. The stock formatter only
  wraps ``feature.scenarios``, which excludes rules, so those scenarios were
  silently dropped (allure-python issue 886).
* The description is the Feature's narrative ("As a ... I want ... so that"),
  then the rule's name and text, then the scenario's own text: a reader of one
  result sees why it exists. Rule tags count like feature and scenario tags,
  and a rule without an explicit story label becomes the story.
* Nothing reaches the results folder without passing the secret scrubber
  (:class:`ScrubbingFileLogger`): results, error messages and attachments.
* Hook failures are loud. A failing ``before_scenario`` makes the stock
  formatter show a *skipped* scenario, a failing ``before_feature`` makes the
  feature vanish, and a failing ``before_all`` leaves an empty report. Here
  they become *broken* results carrying the hook's error.
* A scenario that skips itself while running (``context.scenario.skip()`` in
  a step) is shown *skipped*; the stock formatter drops it like a scenario
  excluded by tags. Pending and undefined steps are *broken*, never passed.
* ``--dry-run`` writes nothing (it would fill the results with "skipped").
* The results folder is emptied at the start of a run (one run, one report;
  ``-D pgship.keep_results=true`` keeps earlier files, for parallel workers)
  and gets ``environment.properties`` and ``executor.json`` at the end.
  ``-D pgship.results_dir=DIR`` moves it (a second ``-o`` would add a formatter).
* Underscores in epic/feature/story tag values read as spaces.
* Each scenario's result has a stable id (derived from its history id), so the
  report's address of a scenario, ``index.html#<md5 of the uuid>``, stays the
  same from run to run and the guide can link to it (:func:`report_anchor`).
* A relative ``AllureFormatter.link_pattern`` (relative to the report's
  ``index.html``, e.g. ``guide.html#{}``) becomes an absolute ``file://`` URL.
  Allure 3 draws a relative link as text; a ``file://`` one it can be taught
  to draw as a link (:func:`pgship.testing.spec.report.allow_file_links`).
* The overview shows what a reader needs: no framework/language labels, no
  executor block for a local run, only the run's pgship, PostgreSQL, backend
  and Python versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from pathlib import Path
from typing import Any

import allure_behave.listener as stock_listener
import allure_commons
from allure_behave.formatter import AllureFormatter
from allure_behave.listener import AllureListener
from allure_behave.utils import scenario_history_id, scenario_status_details
from allure_commons.logger import AllureFileLogger
from allure_commons.mapping import labels_set, parse_tag
from allure_commons.model2 import Label, Link, Parameter, Status, StatusDetails, TestResult
from allure_commons.types import LabelType, Severity
from allure_commons.utils import md5, now, uuid4
from behave.model import Rule, ScenarioOutline

from pgship.testing.binaries import DEFAULT_MAJOR
from pgship.testing.spec.attachments import scrubber
from pgship.testing.spec.runinfo import RUN, HookFailure

_HOOK_STATUSES = {"hook_error", "cleanup_error"}
#: What the report's overview shows about a run (environment.properties); the rest is harness detail.
OVERVIEW_KEYS = ("pgship", "PostgreSQL", "Backend", "Python")


def stable_uuid(history_id: str) -> str:
    """A result uuid that is the same on every run of the same scenario (outline rows included)."""
    return str(uuid.UUID(hashlib.md5(f"pgship-scenario:{history_id}".encode()).hexdigest()))


def report_anchor(result_uuid: str) -> str:
    """The fragment Allure 3 shows a result at: ``index.html#<anchor>`` (its id is the uuid's md5)."""
    return hashlib.md5(result_uuid.encode()).hexdigest()


#: The guide page the report build writes beside index.html (pgship.testing.spec.report).
GUIDE_PAGE = "guide.html"
#: Where `make spec` writes the report, relative to the project root (allurerc.json's "output").
REPORT_DIR = Path("reports") / "allure-report"


def absolute_link_pattern(pattern: str | None, root: Path, report_dir: Path = REPORT_DIR) -> str | None:
    """A relative link pattern made absolute (``file://``), resolved from the report's folder."""
    if not pattern or "://" in pattern or pattern.startswith(("mailto:", "tel:")):
        return pattern
    path, hash_sign, fragment = pattern.partition("#")
    target = Path(os.path.normpath(root / report_dir / path))
    return target.as_uri() + hash_sign + fragment


_SPACED_LABELS = {LabelType.EPIC, LabelType.FEATURE, LabelType.STORY, LabelType.SUITE, LabelType.PARENT_SUITE}


def rule_of(scenario: Any) -> Rule | None:
    """The ``Rule:`` a scenario (or an outline's example) belongs to, if any."""
    parent = getattr(scenario, "parent", None)
    while parent is not None:
        if isinstance(parent, Rule):
            return parent
        parent = getattr(parent, "parent", None)
    return None


def scenario_description(scenario: Any) -> str:
    """Markdown: the feature's narrative, the feature's other text, the rule, the scenario's text."""
    parts: list[str] = []
    narrative, prose = _split_narrative(scenario.feature.description)
    if narrative:
        parts.append("  \n".join(narrative))
    if prose:
        parts.append(" ".join(prose))
    rule = rule_of(scenario)
    if rule is not None:
        rule_text = f"**Rule: {rule.name}**"
        if rule.description:
            rule_text += "  \n" + " ".join(line.strip() for line in rule.description)
        parts.append(rule_text)
    if scenario.description:
        parts.append(" ".join(line.strip() for line in scenario.description))
    return "\n\n".join(parts)


_NARRATIVE_STARTS = ("as a", "as an", "as the", "i want", "so that", "in order to")


def _split_narrative(lines: list[str]) -> tuple[list[str], list[str]]:
    """The "As a / I want / So that" lines (kept as lines) and the prose after them (one paragraph)."""
    stripped = [line.strip() for line in lines if line.strip()]
    count = 0
    while count < len(stripped) and stripped[count].lower().startswith(_NARRATIVE_STARTS):
        count += 1
    return stripped[:count], stripped[count:]


def all_tags(scenario: Any) -> list[str]:
    """Feature, then rule, then scenario (and outline) tags: later ones win for unique labels."""
    tags = list(scenario.feature.tags)
    rule = rule_of(scenario)
    if rule is not None:
        tags += list(rule.tags)
    outline = getattr(scenario, "parent", None)
    if isinstance(outline, ScenarioOutline):
        tags += list(outline.tags)
    return tags + [tag for tag in scenario.tags if tag not in tags]


class PgshipAllureListener(AllureListener):  # type: ignore[misc]  # allure_behave has no types
    """The stock listener with rule-aware labels, narrative descriptions and loud hook errors."""

    current_scenario_uuid: str | None  # the stock listener's, set by its start_scenario

    def __init__(self, behave_config: Any) -> None:
        super().__init__(behave_config)
        self.reported: set[int] = set()
        report_dir = Path(behave_config.userdata.get("pgship.report_dir", REPORT_DIR))
        self.link_pattern: str | None = absolute_link_pattern(self.link_pattern, Path.cwd(), report_dir)
        self.used_uuids: set[str] = set()

    def start_scenario(self, scenario: Any) -> None:
        history_id = scenario_history_id(scenario)
        major = str(self.behave_config.userdata.get("pg") or "")
        if major and major != str(DEFAULT_MAJOR):
            # `make spec-matrix` writes every major's results into one directory: each needs its own
            # file. The default major keeps the plain id, so the guide's links to scenarios still land.
            history_id = f"{history_id}:pg{major}"
        stable = stable_uuid(history_id)
        if stable in self.used_uuids:  # the same scenario twice in one run (a rerun): keep both
            stable = uuid4()
        self.used_uuids.add(stable)
        original = stock_listener.uuid4
        supply = iter([stable])  # the stock start_scenario's first uuid4() is the result's; later ones not
        stock_listener.uuid4 = lambda: next(supply, None) or original()
        try:
            super().start_scenario(scenario)
        finally:
            stock_listener.uuid4 = original
        test_case = self.logger.get_test(self.current_scenario_uuid)
        tags = all_tags(scenario)
        parsed = [
            parse_tag(tag, issue_pattern=self.issue_pattern, link_pattern=self.link_pattern) for tag in tags
        ]
        labels = [Label(name=LabelType.SEVERITY, value=Severity.NORMAL)]
        labels += [_readable(item) for item in parsed if isinstance(item, Label)]
        rule = rule_of(scenario)
        if rule is not None and not any(label.name == LabelType.STORY for label in labels):
            labels.append(Label(name=LabelType.STORY, value=rule.name))
        test_case.labels = [*labels_set(labels), Label(name=LabelType.FEATURE, value=scenario.feature.name)]
        test_case.links = _unique_links(_named(item, tag) for item, tag in zip(parsed, tags, strict=True))
        test_case.description = scenario_description(scenario)
        if rule is not None:
            test_case.titlePath = [*test_case.titlePath, rule.name]
        if major:  # `make spec-matrix`: one result per scenario and PostgreSQL major, side by side
            test_case.parameters = [
                *(test_case.parameters or []),
                Parameter(name="PostgreSQL", value=str(major)),
            ]
            test_case.historyId = md5(test_case.historyId, "pg", str(major))

    def stop_scenario(self, scenario: Any) -> None:
        """As the stock listener, except that a failed hook makes the result broken, never skipped,
        and a scenario that skips itself while running is shown skipped instead of vanishing."""
        self.reported.add(id(scenario))
        hook_failed = (
            bool(getattr(scenario, "hook_failed", False)) or _status_name(scenario) in _HOOK_STATUSES
        )
        skipped_while_running = not hook_failed and self._skipped_while_running(scenario)
        if not hook_failed and not skipped_while_running:
            super().stop_scenario(scenario)
            return
        self.flush_steps()
        test_result = self.logger.get_test(self.current_scenario_uuid)
        test_result.stop = now()
        if skipped_while_running:
            test_result.status = Status.SKIPPED
            test_result.statusDetails = StatusDetails(
                message=f"skipped: {scenario.skip_reason or 'no reason'}"
            )
        else:
            test_result.status = Status.BROKEN
            test_result.statusDetails = _hook_details(scenario) or scenario_status_details(scenario)
        self.logger.close_test(self.current_scenario_uuid)
        self.current_step_uuid = None
        self.group_context.append_test(self.current_scenario_uuid)
        self.group_context.exit()
        self.current_scenario_uuid = None

    def _skipped_while_running(self, scenario: Any) -> bool:
        """Skipped after it was selected to run (a step called ``scenario.skip()``), not excluded by tags.

        The stock listener drops every skipped scenario unless ``show_skipped``: one that skipped
        itself half-way would silently disappear from the documentation.
        """
        if _status_name(scenario) != "skipped":
            return False
        tag_expression = getattr(self.behave_config, "tag_expression", None)
        if tag_expression is not None and not scenario.should_run_with_tags(tag_expression):
            return False
        ran = any(
            getattr(step.status, "name", "") not in ("untested", "skipped") for step in scenario.all_steps
        )
        return ran or bool(getattr(scenario, "skip_reason", None))

    def report_not_run(self, scenario: Any, details: StatusDetails) -> None:
        """A scenario a hook kept from running: shown broken, with the hook's error."""
        self.start_scenario(scenario)
        self.steps.clear()
        test_result = self.logger.get_test(self.current_scenario_uuid)
        test_result.stop = now()
        test_result.status = Status.BROKEN
        test_result.statusDetails = details
        self.logger.close_test(self.current_scenario_uuid)
        self.group_context.append_test(self.current_scenario_uuid)
        self.group_context.exit()
        self.current_scenario_uuid = None
        self.reported.add(id(scenario))

    def report_harness_failure(self, failure: HookFailure) -> None:
        """A run- or feature-level hook failure, as a broken result of its own."""
        name = f"Harness: {failure.hook} failed" + (f" ({failure.target})" if failure.target else "")
        test_case = TestResult(uuid=uuid4(), start=now(), stop=now(), name=name, fullName=name)
        test_case.historyId = md5("pgship-harness", failure.hook, failure.target)
        test_case.testCaseId = test_case.historyId
        test_case.status = Status.BROKEN
        test_case.statusDetails = StatusDetails(message=failure.message, trace=failure.trace)
        test_case.description = (
            "The specification's own machinery failed, so the scenarios it guards did not run "
            "(or their cleanup did not finish). Fix the harness error below first."
        )
        test_case.labels = [
            Label(name=LabelType.EPIC, value="Specification harness"),
            Label(name=LabelType.FEATURE, value="Hooks"),
            Label(name=LabelType.SEVERITY, value=Severity.BLOCKER),
        ]
        self.logger.schedule_test(test_case.uuid, test_case)
        self.logger.close_test(test_case.uuid)


def _readable(label: Label) -> Label:
    """Gherkin tags cannot hold spaces: ``@allure.label.epic:Safe_deployments`` reads "Safe deployments"."""
    if label.name in _SPACED_LABELS and isinstance(label.value, str):
        return Label(name=label.name, value=label.value.replace("_", " "))
    return label


def _status_name(scenario: Any) -> str:
    status = getattr(scenario, "status", None)
    return getattr(status, "name", str(status))


def _hook_details(scenario: Any) -> StatusDetails | None:
    message = getattr(scenario, "error_message", None)
    if not message:
        return None
    failures = [failure for failure in RUN.failures if failure.target == scenario.name]
    trace = failures[-1].trace if failures else None
    return StatusDetails(message=message, trace=trace)


def _named(item: Any, tag: str) -> Link | None:
    """Links only; a ``docs`` link is named after the guide's section it points to."""
    if not isinstance(item, Link):
        return None
    if item.name == "docs":
        anchor = tag.split(":", 1)[1]
        return Link(type=item.type, url=item.url, name=f"Deployment guide: {anchor.replace('-', ' ')}")
    return item


def _unique_links(links: Any) -> list[Link]:
    seen: dict[str, Link] = {}
    for link in links:
        if link is not None:
            seen.setdefault(link.url, link)
    return list(seen.values())


class ScrubbingFileLogger(AllureFileLogger):
    """Writes results and attachments with every known secret masked: the one gate to the report.

    Step names, error messages, tracebacks and attachments all pass here, so a
    password that reached any of them (a DSN in an assertion message, say) is
    still never written.
    """

    def _report_item(self, item: Any) -> None:
        _scrub_strings(item)
        super()._report_item(item)  # type: ignore[no-untyped-call]  # allure_commons: unannotated

    @allure_commons.hookimpl
    def report_attached_data(self, body: Any, file_name: str) -> None:
        if isinstance(body, bytes):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                super().report_attached_data(body, file_name)  # type: ignore[no-untyped-call]  # allure_commons: unannotated
                return
        super().report_attached_data(scrubber()(body), file_name)  # type: ignore[no-untyped-call]  # allure_commons: unannotated

    @allure_commons.hookimpl
    def report_attached_file(self, source: Any, file_name: str) -> None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            super().report_attached_file(source, file_name)  # type: ignore[no-untyped-call]  # allure_commons: unannotated
            return
        AllureFileLogger.report_attached_data(self, scrubber()(text), file_name)


def _scrub_strings(item: Any) -> None:
    """Mask secrets in every string attribute of an attrs model object, recursively."""
    scrub = scrubber()
    for name in getattr(type(item), "__attrs_attrs__", ()):
        value = getattr(item, name.name)
        if isinstance(value, str):
            setattr(item, name.name, scrub(value))
        elif isinstance(value, list):
            for element in value:
                _scrub_strings(element)
        elif value is not None:
            _scrub_strings(value)


class PgshipAllureFormatter(AllureFormatter):  # type: ignore[misc]  # allure_behave has no types
    """Configured in ``pyproject.toml``: ``pgship.testing.spec.allure_formatter:PgshipAllureFormatter``."""

    name = "pgship-allure"
    description = "Allure results for pgship's living documentation"
    listener: AllureListener  # the stock ones, until __init__ swaps in ours
    file_logger: AllureFileLogger

    def __init__(self, stream_opener: Any, config: Any) -> None:
        self.inert = bool(config.dry_run)
        if self.inert:
            super(AllureFormatter, self).__init__(stream_opener, config)
            return
        override = config.userdata.get("pgship.results_dir")
        if override:  # lets a test or a parallel worker write elsewhere without a second -o
            stream_opener.name = override
        self.results_dir = Path(stream_opener.name).absolute()  # in-process commands change the cwd
        keep = str(config.userdata.get("pgship.keep_results", "")).lower() in ("1", "true", "yes")
        self.keep_results = keep
        if not keep and self.results_dir.is_dir():
            shutil.rmtree(self.results_dir)
        super().__init__(stream_opener, config)
        # swap the stock listener and file writer for ours
        allure_commons.plugin_manager.unregister(self.listener)
        allure_commons.plugin_manager.unregister(self.file_logger)
        self.listener = PgshipAllureListener(config)
        # AllureFileLogger's __init__, inherited, is unannotated
        self.file_logger = ScrubbingFileLogger(self.results_dir)  # type: ignore[no-untyped-call]
        allure_commons.plugin_manager.register(self.listener)
        allure_commons.plugin_manager.register(self.file_logger)
        self._features: list[Any] = []

    def feature(self, feature: Any) -> None:
        if self.inert:
            return
        self._features.append(feature)
        # every scenario, including those under a Rule (allure-python issue 886)
        self._wrap_scenario(feature.walk_scenarios())

    def uri(self, uri: str) -> None:
        if not self.inert:
            super().uri(uri)

    def step(self, step: Any) -> None:
        if not self.inert:
            super().step(step)

    def match(self, match: Any) -> None:
        if not self.inert:
            super().match(match)

    def result(self, result: Any) -> None:
        if not self.inert:
            super().result(result)

    def eof(self) -> None:
        if self.inert:
            return
        feature = self._features[-1] if self._features else None
        if feature is not None and getattr(feature, "hook_failed", False):
            self._report_unrun_scenarios(feature)
        super().eof()

    def _report_unrun_scenarios(self, feature: Any) -> None:
        failures = [failure for failure in RUN.failures if failure.target == feature.name]
        message = feature.error_message or (failures[-1].message if failures else "a feature hook failed")
        details = StatusDetails(message=f"not run: {message}", trace=failures[-1].trace if failures else None)
        tag_expression = getattr(self.config, "tag_expression", None)
        for scenario in feature.walk_scenarios():
            if id(scenario) in self.listener.reported:
                continue
            if tag_expression is not None and not scenario.should_run_with_tags(tag_expression):
                continue  # excluded by tags (e.g. @pending): absent, as in a green run
            self.listener.report_not_run(scenario, details)

    def close_stream(self) -> None:
        if self.inert:
            return
        reported_in_scenarios = {"before_scenario", "after_scenario", "before_feature"}
        for failure in RUN.failures:
            if failure.hook not in reported_in_scenarios:
                self.listener.report_harness_failure(failure)
        super().close_stream()
        self._write_environment()

    def close(self) -> None:
        if self.inert:
            super(AllureFormatter, self).close()
            return
        super().close()

    def _write_environment(self) -> None:
        environment = {"Python": platform.python_version(), **RUN.environment}
        write_environment(self.results_dir, environment, keep=self.keep_results)
        executor = executor_info()
        if executor is not None:  # a local run has nothing to link to: no "executor: local run" block
            (self.results_dir / "executor.json").write_text(json.dumps(executor, indent=2), encoding="utf-8")


def write_environment(results_dir: Path, environment: dict[str, str], *, keep: bool) -> None:
    """``environment.properties`` for the report's overview; with ``keep``, merged with the one there.

    Runs adding to one report (spec-matrix, parallel workers) list each PostgreSQL version and backend.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    target = results_dir / "environment.properties"
    if keep and target.exists():
        environment = merged_environment(target.read_text(encoding="utf-8"), environment)
    lines = [
        f"{_property_key(key)}={_property_value(environment[key])}"
        for key in OVERVIEW_KEYS
        if key in environment
    ]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_environment(text: str) -> dict[str, str]:
    """The overview's keys and values from an ``environment.properties`` this formatter wrote."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")  # the overview's keys hold no '='
        if sep:
            found[key.replace("\\ ", " ").replace("\\:", ":")] = value
    return found


def merged_environment(previous: str, current: dict[str, str]) -> dict[str, str]:
    """This run's environment, with the earlier runs' different PostgreSQL versions and backends kept."""
    earlier = dict(line.split("=", 1) for line in previous.splitlines() if "=" in line)
    merged = dict(current)
    for key in ("PostgreSQL", "Backend"):
        values = [v.strip() for v in earlier.get(_property_key(key), "").split(",") if v.strip()]
        if key in current and current[key] not in values:
            values.append(current[key])
        if values:
            merged[key] = ", ".join(values)
    return merged


def executor_info(environ: Any = os.environ) -> dict[str, Any] | None:
    """Who ran the specification: GitHub Actions or another CI; None for a run on this machine."""
    if environ.get("GITHUB_ACTIONS") == "true":
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        repository = environ.get("GITHUB_REPOSITORY", "")
        run_id = environ.get("GITHUB_RUN_ID", "")
        run_url = f"{server}/{repository}/actions/runs/{run_id}"
        return {
            "name": "GitHub Actions",
            "type": "github",
            "buildName": f"{environ.get('GITHUB_WORKFLOW', 'CI')} #{environ.get('GITHUB_RUN_NUMBER', '')}",
            "buildOrder": int(environ.get("GITHUB_RUN_NUMBER", "0") or 0),
            "buildUrl": run_url,
            "reportName": "pgship specification",
        }
    if not environ.get("CI"):
        return None
    return {
        "name": "CI",
        "type": "ci",
        "buildName": f"CI on {platform.node()}",
        "reportName": "pgship specification",
    }


def _property_key(key: str) -> str:
    return key.replace(" ", "\\ ").replace("=", "\\=").replace(":", "\\:")


def _property_value(value: object) -> str:
    return str(value).replace("\n", " ")
