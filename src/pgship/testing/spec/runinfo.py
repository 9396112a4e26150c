"""What the hooks learn during a run that the report must show: its environment and its hook failures.

behave hands its formatters no runner and no context, so the hooks (which
know the server) and the Allure formatter (which writes the results) meet
here, in one process-wide record per run.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class HookFailure:
    """A hook that raised: which one, for what, and why."""

    hook: str
    target: str
    message: str
    trace: str


@dataclass
class RunInfo:
    #: written to ``environment.properties`` (shown on the report's overview)
    environment: dict[str, str] = field(default_factory=dict)
    failures: list[HookFailure] = field(default_factory=list)

    def reset(self) -> None:
        self.environment.clear()
        self.failures.clear()


RUN = RunInfo()


def loud_hook(function: F) -> F:
    """Record a hook's exception for the report, then let behave see it too (it fails the run)."""

    @functools.wraps(function)
    def wrapper(context: Any, *args: Any) -> Any:
        try:
            return function(context, *args)
        except BaseException as exc:
            target = getattr(args[0], "name", "") if args else "the run"
            RUN.failures.append(
                HookFailure(
                    hook=function.__name__,
                    target=target,
                    message=f"{type(exc).__name__}: {exc}",
                    trace="".join(traceback.format_exception(exc)),
                )
            )
            raise

    return cast(F, wrapper)  # functools.wraps keeps the hook's name and signature
