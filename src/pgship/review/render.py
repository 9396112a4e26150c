"""The release review for people: a terminal view (worst lock first) and Markdown for a pull request.

Pure: turns a :class:`~pgship.review.release.ReleaseReview` into lines of text.
The JSON form is ``ReleaseReview.to_dict()``.
"""

from __future__ import annotations

from pgship.review.locks import LockMode, Work
from pgship.review.release import Hazard, ReleaseReview

_WORK_WORDS = {
    Work.REWRITE: "rewrites the table",
    Work.SCAN: "scans the table",
    Work.ROWS: "writes rows",
    Work.NONE: "",
}


def _size(review: ReleaseReview, hazard: Hazard) -> str:
    if review.sizes is None:
        return "size unknown: no database"
    if hazard.size is None:
        return "size unknown"
    return hazard.size.describe()


def headline(review: ReleaseReview) -> str:
    """One sentence: how many migrations, and the worst thing among them."""
    count = len(review.migrations)
    if not count:
        return "Nothing to review: no pending migration."
    hazards = review.hazards()
    noun = f"{count} pending migration{'s' if count != 1 else ''}"
    if not hazards:
        return f"{noun}; none locks an existing table."
    worst = hazards[0]
    work = _WORK_WORDS[worst.lock.work]
    return (
        f"{noun}; worst: {worst.lock.mode.label} on {worst.lock.relation} ({_size(review, worst)})"
        f"{', ' + work if work else ''}, in {worst.migration.file}:{worst.statement.line}."
    )


def terminal_lines(review: ReleaseReview, database: str | None) -> list[str]:
    """What ``pgship review`` prints: the headline, every lock worst first, then each migration."""
    lines = [f"Release review of {database}" if database else "Release review (no database: sizes unknown)"]
    if review.server_version:
        lines[0] += f", PostgreSQL {review.server_version}"
    lines += [headline(review), ""]
    hazards = review.hazards()
    if hazards:
        lines.append("Locks on existing tables, worst first:")
        table = [("LOCK", "TABLE", "SIZE", "WORK", "WHERE", "STATEMENT")]
        for hazard in hazards:
            table.append(
                (
                    hazard.lock.mode.label,
                    hazard.lock.relation,
                    _size(review, hazard),
                    hazard.lock.work if hazard.lock.work != Work.NONE else "-",
                    f"{hazard.migration.file}:{hazard.statement.line}",
                    hazard.statement.kind,
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        lines.append("")
    created = review.created_in_release()
    for migration in review.migrations:
        how = "statement by statement, no transaction" if migration.no_transaction else "in one transaction"
        replay = f"; replay {migration.replay_ms} ms" if migration.replay_ms is not None else ""
        lines.append(f"{migration.file} ({how}{replay})")
        for problem in migration.problems:
            lines.append(f"  problem: {problem}")
        for statement in migration.statements:
            lines.append(f"  line {statement.line}: {statement.kind}")
            for lock in statement.locks:
                if lock.new:
                    continue
                work = _WORK_WORDS[lock.work]
                lines.append(
                    f"      {lock.mode.label} on {lock.relation}: {lock.mode.effect}"
                    + (f"; {work}" if work else "")
                    + (f" ({lock.reason})" if lock.reason else "")
                    + (
                        "; created earlier in this release"
                        if (migration.file, lock.relation) in created
                        else ""
                    )
                )
            if not [lock for lock in statement.locks if not lock.new] and not statement.unknown:
                lines.append("      no lock on an existing table")
            for note in statement.notes:
                lines.append(f"      note: {note}")
        for rule, findings in migration.lint_by_rule().items():
            at = ", ".join(str(f.line) for f in findings)
            lines.append(f"  lint [{rule}] line {at}: {findings[0].message}")
            if findings[0].help:
                lines.append(f"      {findings[0].help}")
        lines.append("")
    if review.lint_error:
        lines.append(f"lint skipped: {review.lint_error}")
    if review.replay:
        lines.append(f"Replay: {review.replay.get('summary', '')}".rstrip())
    violations = review.violations()
    if review.thresholds:
        if violations:
            lines.append(f"GATE FAILED: {len(violations)} lock(s) cross --fail-on:")
            lines.extend(f"  {v.message}" for v in violations)
        else:
            limits = ", ".join(t.describe() for t in review.thresholds)
            lines.append(f"Gate passed: nothing takes {limits}.")
    return [line for index, line in enumerate(lines) if line or (index and lines[index - 1])]


def _md(text: str) -> str:
    """Table-cell safe: no pipes, newlines or HTML, and no backtick to end a code span early."""
    text = text.replace("|", "\\|").replace("\n", " ").replace("\r", " ").replace("`", "'")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def markdown(review: ReleaseReview, database: str | None) -> str:
    """A pull-request comment / ``$GITHUB_STEP_SUMMARY``: every pending migration, worst lock first."""
    out = ["## Release review", ""]
    where = f"`{_md(database)}`" if database else "no database (table sizes unknown)"
    if review.server_version:
        where += f", PostgreSQL {review.server_version}"
    out += [f"{_md(headline(review))}  ", f"Reviewed against: {where}.", ""]
    violations = review.violations()
    if review.thresholds:
        if violations:
            out.append(f"> [!CAUTION]\n> **Gate failed**: {len(violations)} lock(s) cross `--fail-on`:")
            out.extend(f"> - {_md(v.message)}" for v in violations)
        else:
            limits = ", ".join(t.describe() for t in review.thresholds)
            out.append(f"> [!NOTE]\n> Gate passed: nothing takes {_md(limits)}.")
        out.append("")
    if review.migrations:
        out += [
            "| migration | transaction | strongest lock | attention | replay |",
            "|---|---|---|---|---|",
        ]
        for migration in review.migrations:
            attention = review.needs_attention(migration)
            out.append(
                f"| `{_md(migration.file)}` | {'no' if migration.no_transaction else 'yes'} | "
                f"{migration.mode.label if migration.mode is not LockMode.NONE else 'none'} | "
                f"{'⚠️ ' + str(len(attention)) if attention else '✅'} | "
                f"{str(migration.replay_ms) + ' ms' if migration.replay_ms is not None else '-'} |"
            )
        out.append("")
    hazards = review.hazards()
    if hazards:
        out += [
            "### Locks on existing tables, worst first",
            "",
            "| lock | table | size | effect | work | where | statement |",
            "|---|---|---|---|---|---|---|",
        ]
        for hazard in hazards:
            out.append(
                f"| **{hazard.lock.mode.label}** | `{_md(hazard.lock.relation)}` | "
                f"{_md(_size(review, hazard))} | "
                f"{hazard.lock.mode.effect} | {_WORK_WORDS[hazard.lock.work] or '-'} | "
                f"`{_md(hazard.migration.file)}:{hazard.statement.line}` | {_md(hazard.statement.kind)} |"
            )
        out.append("")
    for migration in review.migrations:
        attention = review.needs_attention(migration)
        if not attention and not migration.lint:
            continue
        out += [
            f"<details><summary><code>{_md(migration.file)}</code>: {len(attention)} to look at</summary>",
            "",
        ]
        out.extend(f"- {_md(reason)}" for reason in attention)
        for statement in migration.statements:
            out.extend(f"- line {statement.line}, note: {_md(note)}" for note in statement.notes)
        for rule, findings in migration.lint_by_rule().items():
            lines = ", ".join(str(f.line) for f in findings)
            out.append(f"- squawk `{rule}` (line {lines}): {_md(findings[0].message)}")
        out += ["", "</details>", ""]
    if review.lint_error:
        out.append(f"Lint skipped: {_md(review.lint_error)}")
    return "\n".join(out).rstrip() + "\n"


__all__ = ["headline", "markdown", "terminal_lines"]
