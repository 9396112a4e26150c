"""Turning samples into medians, ratios and tables (terminal and markdown) and the JSON record."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    size: int
    tool: str
    phase: str  # apply | noop | status | reference
    rep: int
    seconds: float
    peak_rss_kib: int
    ok: bool
    load_before: float = 0.0
    cpu_s: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class Summary:
    size: int
    tool: str
    phase: str
    runs: int
    failures: int
    median_s: float | None
    min_s: float | None
    max_s: float | None
    median_rss_mib: float | None
    max_rss_mib: float | None
    median_cpu_s: float | None = None


def summarise(samples: list[Sample]) -> list[Summary]:
    groups: dict[tuple[int, str, str], list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[(sample.size, sample.tool, sample.phase)].append(sample)
    result = []
    for (size, tool, phase), group in groups.items():
        good = [s for s in group if s.ok]
        times = [s.seconds for s in good]
        rss = [s.peak_rss_kib / 1024 for s in good]
        result.append(
            Summary(
                size=size,
                tool=tool,
                phase=phase,
                runs=len(group),
                failures=len(group) - len(good),
                median_s=statistics.median(times) if times else None,
                min_s=min(times) if times else None,
                max_s=max(times) if times else None,
                median_rss_mib=statistics.median(rss) if rss else None,
                max_rss_mib=max(rss) if rss else None,
                median_cpu_s=statistics.median(s.cpu_s for s in good) if good else None,
            )
        )
    return result


class Tables:
    """Lookups over summaries, and the three tables every report shows."""

    def __init__(
        self,
        summaries: list[Summary],
        labels: dict[str, str],
        noop_size: int | None,
        noop_sizes: list[int] | None = None,
    ) -> None:
        self.by_key = {(s.size, s.tool, s.phase): s for s in summaries}
        self.labels = labels
        self.noop_size = noop_size
        # every size with a no-op rerun and status measured (the first is ``noop_size``)
        self.noop_sizes = noop_sizes or ([noop_size] if noop_size else [])
        self.sizes = sorted({s.size for s in summaries if s.phase == "apply"})
        self.tools = [key for key in labels if any(s.tool == key for s in summaries if s.phase == "apply")]

    def get(self, size: int, tool: str, phase: str) -> Summary | None:
        return self.by_key.get((size, tool, phase))

    def ratio(self, size: int, tool: str, phase: str, base_tool: str, base_phase: str) -> float | None:
        this, base = self.get(size, tool, phase), self.get(size, base_tool, base_phase)
        if this is None or base is None or this.median_s is None or not base.median_s:
            return None
        return this.median_s / base.median_s

    @staticmethod
    def _cell(summary: Summary | None, ratio: float | None) -> str:
        if summary is None:
            return "—"
        if summary.median_s is None:
            return f"FAILED ({summary.failures}/{summary.runs})"
        text = f"{summary.median_s:.3f} s"
        if ratio is not None:
            text += f" ({ratio:.2f}x)"
        if summary.failures:
            text += f" [{summary.failures} failed]"
        return text

    def apply_rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["tool", *[f"N={n}" for n in self.sizes], "peak RSS"]
        rows = []
        for tool in self.tools:
            cells = [self.labels[tool]]
            peaks = []
            for size in self.sizes:
                summary = self.get(size, tool, "apply")
                cells.append(self._cell(summary, self.ratio(size, tool, "apply", "floor", "apply")))
                if summary and summary.max_rss_mib is not None:
                    peaks.append(summary.max_rss_mib)
            cells.append(f"{max(peaks):.1f} MiB" if peaks else "—")
            rows.append(cells)
        return header, rows

    def per_migration_rows(self) -> tuple[list[str], list[list[str]]]:
        """Milliseconds per migration at each N, and the marginal cost between consecutive sizes."""
        header = ["tool", *[f"ms/migr. N={n}" for n in self.sizes]]
        header += [f"marginal {a}→{b}" for a, b in zip(self.sizes, self.sizes[1:], strict=False)]
        rows = []
        for tool in self.tools:
            cells = [self.labels[tool]]
            medians = {}
            for size in self.sizes:
                summary = self.get(size, tool, "apply")
                if summary and summary.median_s is not None:
                    medians[size] = summary.median_s
                cells.append(f"{1000 * medians[size] / size:.2f}" if size in medians else "—")
            for a, b in zip(self.sizes, self.sizes[1:], strict=False):
                if a in medians and b in medians:
                    cells.append(f"{1000 * (medians[b] - medians[a]) / (b - a):.2f}")
                else:
                    cells.append("—")
            rows.append(cells)
        return header, rows

    def cpu_rows(self) -> tuple[list[str], list[list[str]]]:
        """The runner's own CPU (user + system, its processes only): robust to a busy machine."""
        header = ["tool", *[f"CPU s N={n}" for n in self.sizes], *[f"CPU ms/migr. N={n}" for n in self.sizes]]
        rows = []
        for tool in self.tools:
            summaries = [self.get(size, tool, "apply") for size in self.sizes]
            cpu = [s.median_cpu_s if s else None for s in summaries]
            rows.append(
                [
                    self.labels[tool],
                    *[f"{c:.2f}" if c is not None else "—" for c in cpu],
                    *[
                        f"{1000 * c / size:.2f}" if c is not None else "—"
                        for c, size in zip(cpu, self.sizes, strict=True)
                    ],
                ]
            )
        return header, rows

    def cpu_ratio(
        self, size: int, tool: str, base_tool: str, phase: str = "apply", base_phase: str = "apply"
    ) -> float | None:
        this, base = self.get(size, tool, phase), self.get(size, base_tool, base_phase)
        if this is None or base is None or this.median_cpu_s is None or not base.median_cpu_s:
            return None
        return this.median_cpu_s / base.median_cpu_s

    def ratio_rows(self, tool: str = "pgship", *, noisy: bool = False) -> tuple[list[str], list[list[str]]]:
        """The same-run ratios that decide the performance goals, before any absolute time.

        ``noisy``: the load average exceeded the CPU count during the run; a verdict on wall time then
        says so, since the tools' waits for a CPU, not their own work, decide it.
        """
        header = ["measurement", "pgship ÷ reference", "goal", "verdict"]
        rows: list[list[str]] = []

        def add(what: str, value: float | None, limit: float | None, *, wall: bool = True) -> None:
            if value is None:
                return
            verdict = (
                "" if limit is None else ("met" if value <= limit else f"missed by {value / limit - 1:.0%}")
            )
            if verdict and wall and noisy:
                verdict += " (wall time on an overloaded machine: unreliable, see the CPU rows)"
            rows.append([what, f"{value:.2f}x", f"≤ {limit:.2f}x" if limit is not None else "", verdict])

        start_up_goal = {1000: 1.1, 3000: 1.3}  # issue "Performance": no-op and status vs the Python floor
        for size in self.noop_sizes:
            limit = start_up_goal.get(size)
            for phase, what in (("noop", "no-op migrate"), ("status", "status")):
                value = self.ratio(size, tool, phase, "python-floor", "reference")
                add(f"{what} N={size} ÷ Python floor", value, limit)
                # user + system time: what the command itself costs, far less moved by a busy machine
                cpu = self.cpu_ratio(size, tool, "python-floor", phase, "reference")
                add(f"{what} N={size} ÷ Python floor, CPU time", cpu, limit, wall=False)
        for size in self.sizes:
            add(
                f"apply N={size} ÷ floor (one psql session)",
                self.ratio(size, tool, "apply", "floor", "apply"),
                None,
            )
            add(
                f"apply N={size} ÷ dbmate (Go binary)",
                self.ratio(size, tool, "apply", "dbmate", "apply"),
                1.0,
            )
            add(
                f"apply N={size} ÷ minimal runner, 1 round trip",
                self.ratio(size, tool, "apply", "psycopg-1rt", "apply"),
                None,
            )
            add(
                f"runner CPU N={size} ÷ minimal runner, 1 round trip",
                self.cpu_ratio(size, tool, "psycopg-1rt"),
                1.2 if size >= 1000 else None,  # the goal is per migration at N=1000 and 10000
                wall=False,
            )
        return header, rows

    def noop_rows(self, size: int | None = None) -> tuple[list[str], list[list[str]]]:
        size = self.noop_size if size is None else size
        header = [
            "tool",
            f"no-op rerun N={size}",
            f"status N={size}",
            "peak RSS",
        ]
        rows = []
        for key, label in (
            ("python-floor", "Python floor (import psycopg, connect, SELECT 1)"),
            ("psql-floor", "psql floor (connect, SELECT 1)"),
        ):
            summary = self.get(size, key, "reference") if size else None
            if summary is not None:
                rss = f"{summary.max_rss_mib:.1f} MiB" if summary.max_rss_mib is not None else "—"
                rows.append([label, self._cell(summary, 1.0 if key == "python-floor" else None), "", rss])
        for tool in self.tools:
            noop = self.get(size, tool, "noop") if size else None
            status = self.get(size, tool, "status") if size else None
            if noop is None and status is None:
                continue
            peaks = [s.max_rss_mib for s in (noop, status) if s and s.max_rss_mib is not None]
            rows.append(
                [
                    self.labels[tool],
                    self._cell(noop, self.ratio(size, tool, "noop", "python-floor", "reference")),
                    self._cell(status, self.ratio(size, tool, "status", "python-floor", "reference")),
                    f"{max(peaks):.1f} MiB" if peaks else "—",
                ]
            )
        return header, rows

    def goal_rows(self, tool: str = "pgship") -> tuple[list[str], list[list[str]]]:
        """pgship's speed goals (issue 7, point 2), each with what this run measured."""
        header = ["goal", "target", "measured", "verdict"]
        rows: list[list[str]] = []

        def verdict(value: float | None, limit: float) -> str:
            return (
                "—" if value is None else ("met" if value <= limit else f"missed by {value / limit - 1:.0%}")
            )

        goal_size = 1000  # the goals are stated at N=1000; other sizes show "—"
        ratio = self.ratio(goal_size, tool, "apply", "floor", "apply")
        rows.append(
            [
                f"apply N={goal_size} vs the floor",
                "≤ 1.25x",
                f"{ratio:.2f}x" if ratio is not None else "—",
                verdict(ratio, 1.25),
            ]
        )
        per_migration = {}
        for size in self.sizes:
            summary = self.get(size, tool, "apply")
            if size >= 1000 and summary and summary.median_s is not None:
                per_migration[size] = summary.median_s / size
        # Linear means the cost per migration does not grow with N; it may shrink as the
        # fixed start-up cost is spread over more migrations.
        costs = list(per_migration.values())
        growth = max((b / a for a, b in pairwise(costs)), default=None)
        rows.append(
            [
                f"linear: ms/migration from N={' to '.join(map(str, per_migration)) or '1000 to 10000'}",
                "grows ≤ 20%",
                f"{growth - 1:+.0%} ({' → '.join(f'{1000 * v:.2f}' for v in costs)})"
                if growth is not None
                else "—",
                verdict(growth, 1.2),
            ]
        )
        for phase, what in (("noop", "no-op rerun"), ("status", "status")):
            value = self.ratio(goal_size, tool, phase, "python-floor", "reference")
            rows.append(
                [
                    f"{what} N={goal_size} vs the Python floor",
                    "≤ 1.2x",
                    f"{value:.2f}x" if value is not None else "—",
                    verdict(value, 1.2),
                ]
            )
        peaks = [s.max_rss_mib for s in self.by_key.values() if s.tool == tool and s.max_rss_mib is not None]
        peak = max(peaks) if peaks else None
        rows.append(
            [
                "peak RSS (any N, any command)",
                "≤ 60 MB",
                f"{peak:.1f} MiB" if peak else "—",
                verdict(peak * 1.048576 if peak else None, 60),
            ]
        )
        return header, rows


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(tables: Tables, *, markdown: bool, repeat: int, noisy: bool = False) -> str:
    draw = render_markdown if markdown else render_text
    heading = (lambda text: f"\n#### {text}\n") if markdown else (lambda text: f"\n{text}\n")
    parts = []
    if "pgship" in tables.tools:
        header, rows = tables.ratio_rows(noisy=noisy)
        if rows:
            parts += [
                heading("Same-run ratios (pgship ÷ the reference measured in this run)"),
                draw(header, rows),
            ]
    parts += [
        heading(f"Apply N fresh migrations — median of {repeat}, seconds (ratio to the floor)"),
        draw(*tables.apply_rows()),
        heading("Cost per migration — median ms/migration, and marginal ms/migration between sizes"),
        draw(*tables.per_migration_rows()),
        heading("The runner's own CPU (user + system of its processes, not the server's) — median"),
        draw(*tables.cpu_rows()),
    ]
    for size in tables.noop_sizes:
        parts += [
            heading(f"Nothing to do, N={size} applied — median seconds (ratio to the Python floor)"),
            draw(*tables.noop_rows(size)),
        ]
    if "pgship" in tables.tools:
        parts += [heading("pgship's goals (issue 7)"), draw(*tables.goal_rows())]
    return "\n".join(parts) + "\n"


def write_json(
    path: Path, *, meta: dict[str, object], samples: list[Sample], summaries: list[Summary]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "meta": meta,
        "summary": [asdict(s) for s in summaries],
        "samples": [asdict(s) for s in samples],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
