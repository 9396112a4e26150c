"""A release review: every pending migration, its statements, their locks, the tables' sizes, the gate.

Pure: assembles what :mod:`pgship.review.locks` reads from the files with what
the caller measured (table sizes from production, durations from a replay,
squawk's findings) and decides which statements need attention and whether a
``--fail-on`` threshold is crossed. The CLI (``pgship review``) does the I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pgship.errors import ExitCode
from pgship.lint import Finding
from pgship.review.locks import LockMode, RelationLock, StatementReview, Work
from pgship.review.sizes import TableSize

#: ``pgship review --fail-on``: the release crosses a threshold (documented in README "Exit codes").
GATE_EXIT_CODE = int(ExitCode.GATE)


@dataclass(frozen=True)
class Threshold:
    """``--fail-on LOCK[:ROWS]``: a lock at least this strong on an existing table of more than ROWS rows."""

    mode: LockMode
    rows: int | None = None

    @classmethod
    def parse(cls, text: str) -> Threshold:
        mode_text, colon, rows_text = text.partition(":")
        mode = LockMode.from_slug(mode_text)
        rows = None
        if colon:
            cleaned = rows_text.replace("_", "").replace(",", "")
            multiplier = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(cleaned[-1:].lower(), 1)
            if multiplier != 1:
                cleaned = cleaned[:-1]
            if not cleaned.isascii() or not cleaned.isdigit():
                raise ValueError(f"{rows_text!r} is not a number of rows (e.g. 1000000 or 1m)")
            rows = int(cleaned) * multiplier
        return cls(mode, rows)

    def __str__(self) -> str:
        return self.mode.slug + (f":{self.rows}" if self.rows is not None else "")

    def describe(self) -> str:
        size = f" on a table of more than {self.rows:,} rows" if self.rows is not None else ""
        stronger = "" if self.mode is LockMode.ACCESS_EXCLUSIVE else " or stronger"
        return f"{self.mode.label}{stronger}{size}"


@dataclass
class MigrationReview:
    """One pending migration."""

    version: str
    file: str
    no_transaction: bool
    statements: list[StatementReview] = field(default_factory=list)
    lint: list[Finding] = field(default_factory=list)
    replay_ms: int | None = None
    problems: list[str] = field(default_factory=list)  # the file cannot run as it is (parse, transaction)

    @property
    def mode(self) -> LockMode:
        return max((s.mode for s in self.statements), default=LockMode.NONE)

    def lint_by_rule(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = defaultdict(list)
        for finding in self.lint:
            grouped[finding.rule].append(finding)
        return dict(sorted(grouped.items()))


@dataclass(frozen=True)
class Hazard:
    """One lock of one statement on one existing relation, with that relation's size: a row of the view."""

    migration: MigrationReview
    statement: StatementReview
    lock: RelationLock
    size: TableSize | None

    @property
    def rows(self) -> int | None:
        return self.size.rows if self.size is not None else None

    def sort_key(self) -> tuple[int, int, int]:
        work = {Work.REWRITE: 3, Work.SCAN: 2, Work.ROWS: 1}.get(self.lock.work, 0)
        rows = self.rows if self.rows is not None else -1
        return (-int(self.lock.mode), -work, -rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.migration.file,
            "line": self.statement.line,
            "kind": self.statement.kind,
            "relation": self.lock.relation,
            "mode": self.lock.mode.label,
            "pg_mode": self.lock.mode.pg_name,
            "blocks_reads": self.lock.mode.blocks_reads,
            "blocks_writes": self.lock.mode.blocks_writes,
            "work": self.lock.work,
            "reason": self.lock.reason,
            "rows": self.rows,
            "bytes": self.size.bytes if self.size else None,
            "exists": self.size.exists if self.size else None,
        }


@dataclass(frozen=True)
class Violation:
    threshold: Threshold
    hazard: Hazard

    @property
    def message(self) -> str:
        hazard = self.hazard
        size = hazard.size.describe() if hazard.size else "size unknown (no database given)"
        return (
            f"{hazard.migration.file}:{hazard.statement.line}: {hazard.lock.mode.label} on "
            f"{hazard.lock.relation} ({size}) crosses --fail-on {self.threshold}"
        )


@dataclass
class ReleaseReview:
    """What the release will do to the database."""

    migrations: list[MigrationReview]
    sizes: dict[str, TableSize] | None = None  # None: no database given
    server_version: str | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    lint_error: str | None = None
    replay: dict[str, Any] | None = None
    #: relations created before the first of ``migrations`` by migrations of the same release
    created_before: set[str] = field(default_factory=set)

    def only(self, migration: MigrationReview) -> ReleaseReview:
        """This review narrowed to one migration, still knowing what the release created before it."""
        created = {relation for file, relation in self.created_in_release() if file == migration.file}
        return ReleaseReview(
            [migration],
            sizes=self.sizes,
            server_version=self.server_version,
            thresholds=self.thresholds,
            lint_error=self.lint_error,
            replay=self.replay,
            created_before=created,
        )

    def hazards(self) -> list[Hazard]:
        """Every lock on a relation that exists before the release, worst first."""
        rows = []
        created = self.created_in_release()
        for migration in self.migrations:
            for statement in migration.statements:
                for lock in statement.locks:
                    if lock.new or lock.mode is LockMode.NONE or (migration.file, lock.relation) in created:
                        continue
                    size = self.sizes.get(lock.relation) if self.sizes is not None else None
                    if size is not None and not size.exists:
                        continue  # not in the database before the release: nobody waits for it
                    rows.append(Hazard(migration, statement, lock, size))
        return sorted(rows, key=Hazard.sort_key)

    def created_in_release(self) -> set[tuple[str, str]]:
        """``(file, relation)`` pairs: the relation was created by an earlier statement of the release."""
        pairs: set[tuple[str, str]] = set()
        created: set[str] = set(self.created_before)
        for migration in self.migrations:
            for statement in migration.statements:
                pairs.update((migration.file, relation) for relation in created)
                created.update(lock.relation for lock in statement.locks if lock.new)
            pairs.update((migration.file, relation) for relation in created)
        return pairs

    def violations(self) -> list[Violation]:
        found = []
        for hazard in self.hazards():
            for threshold in self.thresholds:
                if hazard.lock.mode < threshold.mode:
                    continue
                if hazard.size is not None and not hazard.size.exists:
                    continue  # created earlier in this release: empty when the lock is taken
                if threshold.rows is not None and hazard.rows is not None and hazard.rows <= threshold.rows:
                    continue
                found.append(Violation(threshold, hazard))  # unknown size counts as too big
                break
        return found

    def needs_attention(self, migration: MigrationReview) -> list[str]:
        """Why a reviewer should look at this migration (empty: it is lint-clean and harmless)."""
        reasons = list(migration.problems)
        for finding in migration.lint:
            reasons.append(f"lint {finding.rule} at line {finding.line}")
        for hazard in self.hazards():
            if hazard.migration is not migration:
                continue
            if hazard.lock.mode.blocks_writes or hazard.lock.work == Work.REWRITE:
                where = hazard.size.describe() if hazard.size else "size unknown"
                reasons.append(
                    f"line {hazard.statement.line}: {hazard.lock.mode.label} on {hazard.lock.relation} "
                    f"({where}), {hazard.lock.mode.effect}"
                )
        for statement in migration.statements:
            if statement.unknown:
                reasons.append(f"line {statement.line}: {statement.kind}: locks unknown")
        for violation in self.violations():
            if violation.hazard.migration is migration:
                reasons.append(violation.message)
        return list(dict.fromkeys(reasons))

    @property
    def status(self) -> str:
        return "gate_failed" if self.violations() else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "server_version": self.server_version,
            "sizes_known": self.sizes is not None,
            "thresholds": [str(t) for t in self.thresholds],
            "violations": [{"threshold": str(v.threshold), "message": v.message} for v in self.violations()],
            "worst": [h.to_dict() for h in self.hazards()],
            "lint_error": self.lint_error,
            "replay": self.replay,
            "migrations": [
                {
                    "version": m.version,
                    "file": m.file,
                    "no_transaction": m.no_transaction,
                    "in_transaction": not m.no_transaction,
                    "replay_ms": m.replay_ms,
                    "strongest_lock": m.mode.label,
                    "attention": self.needs_attention(m),
                    "problems": m.problems,
                    "lint": {rule: [f.to_dict() for f in items] for rule, items in m.lint_by_rule().items()},
                    "statements": [
                        {
                            "line": s.line,
                            "kind": s.kind,
                            "text": s.text,
                            "in_transaction": s.in_transaction,
                            "strongest_lock": s.mode.label,
                            "work": s.work,
                            "notes": list(s.notes),
                            "locks_unknown": s.unknown,
                            "locks": [
                                {
                                    "relation": lock.relation,
                                    "mode": lock.mode.label,
                                    "pg_mode": lock.mode.pg_name,
                                    "blocks_reads": lock.mode.blocks_reads,
                                    "blocks_writes": lock.mode.blocks_writes,
                                    "work": lock.work,
                                    "reason": lock.reason,
                                    "new": lock.new,
                                    "size": self.sizes[lock.relation].to_dict()
                                    if self.sizes and lock.relation in self.sizes
                                    else None,
                                }
                                for lock in s.locks
                            ],
                        }
                        for s in m.statements
                    ],
                }
                for m in self.migrations
            ],
        }


def relations_of(migrations: list[MigrationReview]) -> set[str]:
    """Every relation a lock is taken on (whose size is worth reading)."""
    return {lock.relation for m in migrations for s in m.statements for lock in s.locks if lock.relation}


__all__ = [
    "GATE_EXIT_CODE",
    "Hazard",
    "MigrationReview",
    "ReleaseReview",
    "Threshold",
    "Violation",
    "relations_of",
]
