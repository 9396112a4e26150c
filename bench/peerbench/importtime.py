"""What a pgship command imports beyond the Python floor, from ``python -X importtime``.

``-X importtime`` prints one line per imported module (self and cumulative microseconds, nested by
indentation, children before their parent). Running the floor (``import psycopg``) the same way
tells which modules pgship adds; the roots of those additions, with their cumulative time, are the
list to act on. ``-X importtime`` itself slows every import, so the absolute figures are inflated:
compare them with each other, not with wall times.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from peerbench.report import render_markdown, render_text

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass(frozen=True)
class Imported:
    module: str
    self_us: int
    cumulative_us: int
    depth: int
    parent: str  # "" at the top level


def parse_importtime(stderr: str) -> list[Imported]:
    """The modules in ``stderr`` of ``python -X importtime``, in the order printed."""
    raw: list[tuple[str, int, int, int]] = []
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            raw.append((module, int(self_us), int(cumulative_us), (len(indent) - 1) // 2))
    # children come before their parent: walking backwards, the parent of a line at depth d is the
    # nearest line after it at depth d - 1
    parents: list[str] = [""] * len(raw)
    open_at_depth: dict[int, str] = {}
    for index in range(len(raw) - 1, -1, -1):
        module, _, _, depth = raw[index]
        parents[index] = open_at_depth.get(depth - 1, "") if depth > 0 else ""
        open_at_depth[depth] = module
        for deeper in [d for d in open_at_depth if d > depth]:
            del open_at_depth[deeper]
    return [
        Imported(module, self_us, cumulative_us, depth, parent)
        for (module, self_us, cumulative_us, depth), parent in zip(raw, parents, strict=True)
    ]


def run_importtime(command: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> list[Imported]:
    """Run ``command`` (a Python command line; ``-X importtime`` is inserted after the interpreter)."""
    full = [command[0], "-X", "importtime", *command[1:]]
    result = subprocess.run(full, env=dict(env), cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(full[:4])}... exited {result.returncode}: {result.stderr[-800:]}")
    return parse_importtime(result.stderr)


@dataclass(frozen=True)
class ImportReport:
    command: str
    runs: int
    floor_total_ms: float  # every import of `import psycopg` (median over runs)
    command_total_ms: float  # every import of the command
    extra_self_ms: float  # the self time of the modules the floor does not import
    roots: list[dict[str, object]]  # pgship's modules whose imports add the most beyond the floor
    self_top: list[dict[str, object]]  # the modules with the most self time, floor included

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _total_ms(modules: list[Imported]) -> float:
    return sum(m.self_us for m in modules) / 1000


def import_report(
    command: Sequence[str],
    floor: Sequence[str],
    env: Mapping[str, str],
    *,
    label: str,
    runs: int = 3,
    top: int = 15,
    cwd: Path | None = None,
) -> ImportReport:
    """Median figures over ``runs`` alternating runs of ``command`` and ``floor``."""
    command_runs, floor_runs = [], []
    for _ in range(runs):
        command_runs.append(run_importtime(command, env, cwd))
        floor_runs.append(run_importtime(floor, env, cwd))
    floor_modules = {m.module for run in floor_runs for m in run}

    def median_by_module(runs_: list[list[Imported]], field: str) -> dict[str, float]:
        values: dict[str, list[int]] = {}
        for run in runs_:
            for m in run:
                values.setdefault(m.module, []).append(getattr(m, field))
        return {module: statistics.median(v) / 1000 for module, v in values.items()}

    self_ms = median_by_module(command_runs, "self_us")
    reference = command_runs[0]
    # what each module's subtree adds beyond the floor: the self time of its modules the floor lacks
    added: dict[str, float] = {}
    for m in reference:  # children are printed before their parent
        added[m.module] = added.get(m.module, 0.0) + (
            self_ms[m.module] if m.module not in floor_modules else 0
        )
        if m.parent:
            added[m.parent] = added.get(m.parent, 0.0) + added[m.module]
    extra = [m for m in reference if m.module not in floor_modules]
    heavy = sorted(extra, key=lambda m: added[m.module], reverse=True)
    by_self = sorted(reference, key=lambda m: self_ms[m.module], reverse=True)
    return ImportReport(
        command=label,
        runs=runs,
        floor_total_ms=round(statistics.median(_total_ms(r) for r in floor_runs), 1),
        command_total_ms=round(statistics.median(_total_ms(r) for r in command_runs), 1),
        extra_self_ms=round(sum(self_ms[m.module] for m in extra), 1),
        roots=[
            {"module": m.module, "added_ms": round(added[m.module], 1), "imported_by": m.parent}
            for m in heavy[:top]
        ],
        self_top=[
            {
                "module": m.module,
                "self_ms": round(self_ms[m.module], 1),
                "in_floor": m.module in floor_modules,
            }
            for m in by_self[:top]
        ],
    )


def render_import_report(report: ImportReport, *, markdown: bool) -> str:
    """The report as text: totals, then the modules that add the most, then the self-time leaders."""
    lines = [
        f"{report.command}: all imports {report.command_total_ms:.1f} ms vs `import psycopg` "
        f"{report.floor_total_ms:.1f} ms (-X importtime, median of {report.runs}; inflated by the "
        f"measurement); modules the floor does not import: {report.extra_self_ms:.1f} ms of self time.",
        "",
    ]
    header = ["module the floor does not import", "ms its imports add beyond the floor", "imported by"]
    rows = [[str(r["module"]), f"{r['added_ms']:.1f}", str(r["imported_by"]) or "—"] for r in report.roots]
    header2 = ["module (most self time)", "self ms", "also in the floor"]
    rows2 = [
        [str(r["module"]), f"{r['self_ms']:.1f}", "yes" if r["in_floor"] else "no"] for r in report.self_top
    ]
    draw = render_markdown if markdown else render_text
    return "\n".join([*lines, draw(header, rows), "", draw(header2, rows2)]) + "\n"
