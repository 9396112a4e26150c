"""Comparing the migration files with the tracking table: what to run, and what must stop a run.

Pure: takes a :class:`~pgship.migrations.Discovery` and a
:class:`~pgship.history.History`, returns a :class:`Plan`. It never opens a
connection, which keeps every decision unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pgship.history import AppliedMigration, History
from pgship.migrations import Discovery, MigrationFile, Version


class State(StrEnum):
    """Where one version stands, comparing the files with the database."""

    APPLIED = "applied"
    PENDING = "pending"
    OUT_OF_ORDER = "out_of_order"  # pending, but older than the newest applied version
    DRIFTED = "drifted"  # applied, and its file has been edited since
    NO_CHECKSUM = "no_checksum"  # applied by an older runner; the next migrate records the checksum
    MISSING = "missing"  # applied, but its file is gone from the middle of the history
    AHEAD = "ahead"  # applied, newer than every file of this release (a newer release applied it)


IN_SYNC_STATES = frozenset({State.APPLIED, State.NO_CHECKSUM})


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One version in the plan, with its file and its tracking row where they exist."""

    version: Version
    state: State
    file: MigrationFile | None
    applied: AppliedMigration | None

    @property
    def name(self) -> str:
        if self.file is not None:
            return self.file.name
        return (self.applied.name if self.applied else None) or ""


@dataclass(frozen=True)
class Refusal:
    """A reason ``migrate`` must not run without an explicit decision."""

    kind: str  # drifted | missing | out_of_order | empty | foreign
    versions: list[str]
    message: str
    hint: str


@dataclass
class Plan:
    """The comparison, and what ``migrate`` would do with it."""

    entries: list[PlanEntry]
    to_apply: list[MigrationFile] = field(default_factory=list)
    to_adopt: list[MigrationFile] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def with_state(self, *states: State) -> list[PlanEntry]:
        return [e for e in self.entries if e.state in states]

    @property
    def in_sync(self) -> bool:
        return all(e.state in IN_SYNC_STATES for e in self.entries)

    @property
    def applied_count(self) -> int:
        return sum(1 for e in self.entries if e.applied is not None)

    @property
    def latest_applied(self) -> Version | None:
        applied = [e.version for e in self.entries if e.applied is not None]
        return max(applied) if applied else None


def make_plan(
    discovery: Discovery,
    history: History,
    *,
    target: Version | None = None,
    allow_out_of_order: bool = False,
    allow_missing: bool = False,
) -> Plan:
    """Classify every version and decide what ``migrate`` applies (in version order)."""
    history = history.resolved(discovery)  # another tool's table: what it counts as applied (pgship.adopt)
    # keyed by the versions' comparison keys (plain tuples): hashing them costs nothing in Python
    files = {m.version.key: m for m in discovery.migrations}
    applied = {r.version.key: r for r in history.rows}
    newest_applied = history.rows[-1].version if history.rows else None  # rows come sorted
    # the states are decided on the plain keys (the order of Version): no method call per comparison
    newest_applied_key = newest_applied.key if newest_applied is not None else None
    newest_file_key = max(files, default=None)

    entries = []
    by_state: dict[State, list[PlanEntry]] = {}
    for key in sorted(files.keys() | applied.keys()):
        file, row = files.get(key), applied.get(key)
        if row is None:
            assert file is not None  # the key came from the files or the rows
            version = file.version
            early = newest_applied_key is not None and key < newest_applied_key
            state = State.OUT_OF_ORDER if early else State.PENDING
        elif file is None:
            version = row.version
            state = State.AHEAD if newest_file_key is None or key > newest_file_key else State.MISSING
        else:
            version = file.version
            if row.checksum is None:
                state = State.NO_CHECKSUM
            elif row.checksum != file.checksum:
                state = State.DRIFTED
            else:
                state = State.APPLIED
        entry = PlanEntry(version, state, file, row)
        entries.append(entry)
        by_state.setdefault(state, []).append(entry)
    plan = Plan(entries)
    if history.foreign is not None:  # another tool's table that cannot be taken over as it is
        plan.warnings.extend(history.foreign.warnings)
        if (refusal := history.foreign.refusal) is not None:
            plan.refusals.append(Refusal("foreign", refusal.versions, refusal.message, refusal.hint))

    drifted = by_state.get(State.DRIFTED, [])
    if drifted:
        names = [e.file.filename for e in drifted if e.file]
        plan.refusals.append(
            Refusal(
                "drifted",
                [str(e.version) for e in drifted],
                f"applied migration{'s' if len(names) > 1 else ''} edited since "
                f"{'they were' if len(names) > 1 else 'it was'} applied: {', '.join(names)}",
                "Never edit an applied migration: restore the file (git checkout / git revert) and put "
                "the change in a new migration. If the edit is deliberate and harmless (a comment, "
                "formatting), accept it with `pgship repair`.",
            )
        )
    missing = by_state.get(State.MISSING, [])
    if missing and not allow_missing:
        plan.refusals.append(
            Refusal(
                "missing",
                [str(e.version) for e in missing],
                "applied migration file(s) no longer in the migrations directory: "
                + ", ".join(f"{e.version}_{e.name}" if e.name else str(e.version) for e in missing),
                "Restore the deleted file(s) from git; applied migrations must stay in the repository. "
                "To run anyway, pass --allow-missing.",
            )
        )
    ahead = by_state.get(State.AHEAD, [])
    if not discovery.migrations:
        plan.warnings.append(
            f"no migration files in {discovery.directory}"
            + (f" (the database has {len(ahead)} applied: {_span(ahead)})" if ahead else "")
        )
    elif ahead:
        plan.warnings.append(
            "the database has migrations newer than this release: "
            + ", ".join(str(e.version) for e in ahead)
            + " (applied by a newer release; normal after rolling the application back)"
        )
    out_of_order = by_state.get(State.OUT_OF_ORDER, [])
    if out_of_order and not allow_out_of_order:
        plan.refusals.append(
            Refusal(
                "out_of_order",
                [str(e.version) for e in out_of_order],
                f"pending migration(s) older than the newest applied version {newest_applied}: "
                + ", ".join(e.file.filename for e in out_of_order if e.file),
                "Renumber them after the newest applied version (usually a merge of two branches), "
                "or apply them deliberately with --allow-out-of-order.",
            )
        )
    if history.unreadable_versions:
        plan.warnings.append(
            "ignored tracking rows whose version is not a number: " + ", ".join(history.unreadable_versions)
        )

    runnable = (
        plan.with_state(State.PENDING, State.OUT_OF_ORDER)  # in version order, both kinds mixed
        if allow_out_of_order
        else by_state.get(State.PENDING, [])
    )
    plan.to_apply = [e.file for e in runnable if e.file and (target is None or e.version <= target)]
    plan.to_adopt = [e.file for e in by_state.get(State.NO_CHECKSUM, []) if e.file]
    return plan


def empty_directory_refusal(discovery: Discovery, plan: Plan) -> Refusal | None:
    """A mis-pointed directory: no files at all, while the database has applied migrations.

    Without files every applied migration would read as "applied by a newer release" (a warning),
    and a deploy pointed at the wrong directory would pass. ``migrate``, ``plan``, ``verify`` and
    ``deploy`` refuse it unless ``--allow-empty`` says it is intended.
    """
    applied = [e for e in plan.entries if e.applied is not None]
    if discovery.migrations or not applied:
        return None
    return Refusal(
        "empty",
        [str(e.version) for e in applied],
        f"no migration files in {discovery.directory}, but the database has {len(applied)} applied "
        f"migration{'s' if len(applied) != 1 else ''} ({_span(applied)})",
        "Is the directory right? Point pgship at the release's migrations with --migrations-dir (or "
        "PGSHIP_MIGRATIONS_DIR, or migrations_dir in [tool.pgship]). If this release deliberately has "
        "none, pass --allow-empty.",
    )


def _span(entries: list[PlanEntry]) -> str:
    versions = [str(e.version) for e in entries]
    return ", ".join(versions) if len(versions) <= 3 else f"{versions[0]} to {versions[-1]}"
