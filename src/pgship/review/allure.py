"""The release review as Allure results: one test per pending migration, beside the specification.

Writes Allure's result format (``<uuid>-result.json`` plus attachment files)
into a results directory, so ``allure generate`` puts an epic "Release review"
next to the behaviour specification in the same report. A migration is
*passed* when nothing in it needs a reviewer's attention (lint-clean, no lock
that blocks writes on an existing table, no rewrite, replayed when a replay
ran) and *broken* otherwise, with the reasons as its status message; its
statements are the test's steps, and the statements, locks and sizes are
attachments (Markdown and JSON). Every byte written passes the password
scrubber.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from pgship.database import scrub
from pgship.review.release import MigrationReview, ReleaseReview
from pgship.review.render import markdown

EPIC = "Release review"


def write_results(
    review: ReleaseReview,
    directory: Path,
    *,
    database: str | None = None,
    secrets: list[str] | tuple[str, ...] = (),
) -> list[Path]:
    """Write one result per migration into ``directory`` (created if missing); return the result files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    written = []
    release = review.migrations[-1].version if review.migrations else "nothing pending"
    for migration in review.migrations:
        written.append(_write_one(review, migration, directory, now, release, database, list(secrets)))
    return written


def result_document(
    review: ReleaseReview, migration: MigrationReview, *, release: str, database: str | None, now: int
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """The result JSON for one migration, and its attachments as ``(name, mime type, text)``."""
    reasons = review.needs_attention(migration)
    replay = review.replay or {}
    if replay and migration.replay_ms is None and "error" not in replay:
        reasons.append("not replayed")
    status = "broken" if reasons else "passed"
    replayed = f"replayed in {migration.replay_ms} ms" if migration.replay_ms is not None else "not replayed"
    how = (
        "statement by statement, outside a transaction" if migration.no_transaction else "in one transaction"
    )
    description = (
        f"What `{migration.file}` will do to the database ({database or 'no database given: sizes unknown'})"
        f", {how}; {replayed}; strongest lock: {migration.mode.label}.\n\n"
        + (
            "Needs attention:\n\n" + "\n".join(f"- {r}" for r in reasons)
            if reasons
            else "Nothing to look at."
        )
    )
    steps = []
    created = {relation for file, relation in review.created_in_release() if file == migration.file}
    for statement in migration.statements:
        locks = ", ".join(
            f"{lock.mode.label} on {lock.relation}" + (" (new)" if lock.new else "")
            for lock in statement.locks
        )
        blocking = any(
            not lock.new
            and lock.relation not in created
            and (lock.mode.blocks_writes or lock.work == "rewrite")
            for lock in statement.locks
        )
        steps.append(
            {
                "name": f"line {statement.line}: {statement.kind}" + (f": {locks}" if locks else ""),
                "status": "broken" if blocking or statement.unknown else "passed",
                "stage": "finished",
                "start": now,
                "stop": now,
            }
        )
    one = review.only(migration)
    document = one.to_dict()["migrations"][0]
    attachments = [
        ("review.md", "text/markdown", markdown(one, database)),
        ("statements, locks and sizes.json", "application/json", json.dumps(document, indent=2)),
        (migration.file, "text/plain", "\n\n".join(s.text + ";" for s in migration.statements)),
    ]
    history = hashlib.md5(f"pgship-review:{migration.file}".encode()).hexdigest()
    result = {
        "uuid": str(uuid.uuid4()),
        "historyId": history,
        "testCaseId": history,
        "name": migration.file,
        "fullName": f"{EPIC}: {migration.file}",
        "status": status,
        "statusDetails": {"message": "\n".join(reasons)} if reasons else {},
        "stage": "finished",
        "description": description,
        "start": now,
        "stop": now + (migration.replay_ms or 0),
        "labels": [
            {"name": "epic", "value": EPIC},
            {"name": "feature", "value": f"Pending migrations, up to {release}"},
            {"name": "story", "value": f"Strongest lock: {migration.mode.label}"},
            {"name": "severity", "value": "critical" if migration.mode.blocks_reads else "normal"},
        ],
        "links": [],
        "parameters": [],
        "steps": steps,
        "titlePath": [EPIC],
    }
    return result, attachments


def _write_one(
    review: ReleaseReview,
    migration: MigrationReview,
    directory: Path,
    now: int,
    release: str,
    database: str | None,
    secrets: list[str],
) -> Path:
    result, attachments = result_document(review, migration, release=release, database=database, now=now)
    result["attachments"] = []
    for name, mime, text in attachments:
        extension = {"text/markdown": "md", "application/json": "json"}.get(mime, "txt")
        source = f"{uuid.uuid4()}-attachment.{extension}"
        (directory / source).write_text(scrub(text, secrets), encoding="utf-8")
        result["attachments"].append({"name": name, "source": source, "type": mime})
    path = directory / f"{result['uuid']}-result.json"
    path.write_text(scrub(json.dumps(result, ensure_ascii=False), secrets), encoding="utf-8")
    return path


__all__ = ["EPIC", "result_document", "write_results"]
