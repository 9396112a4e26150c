"""behave hooks for pgship's specification: one server per run, one fresh database per scenario.

Kept at the repository root (with ``steps/`` beside it) as docs/ARCHITECTURE.md lays out:
behave starts from ``features/`` and walks up until it finds a ``steps/``
directory or this file, and takes that directory as its base.

Every hook is wrapped by :func:`loud_hook`, which records a failure for the
Allure formatter: a broken hook shows as a broken result and fails the run,
never as a skipped or missing scenario. Backend: ``-D db=embedded|container|url``
or ``PGSHIP_TEST_DB``; see README "Running the specification".
"""

from __future__ import annotations

from typing import Any

from pgship.testing.spec.runinfo import RUN, loud_hook
from pgship.testing.spec.session import SpecSession


@loud_hook
def before_all(context: Any) -> None:
    RUN.reset()
    context.config.setup_logging()
    context.spec = SpecSession.from_userdata(context.config.userdata).start()


@loud_hook
def before_scenario(context: Any, scenario: Any) -> None:
    context.world = context.spec.begin_scenario()


@loud_hook
def after_scenario(context: Any, scenario: Any) -> None:
    world = getattr(context, "world", None)
    if world is not None:
        context.spec.end_scenario(world)


@loud_hook
def after_all(context: Any) -> None:
    spec = getattr(context, "spec", None)
    if spec is None:
        return
    spec.close()
    timings = context.config.userdata.get("pgship.timings")
    if timings:
        spec.write_timings(timings)
