"""Finding a password wherever it may have leaked: text captured from a command, files, whole directories.

A secret can leak in disguise: percent-encoded as in a URL, escaped as in
JSON, ``+`` for spaces as in a form. Every form is searched, in text and in
the raw bytes of every file under the given paths (``reports/`` of a spec run
included, once the harness lands).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus


@dataclass(frozen=True)
class Hit:
    """One place a secret was found."""

    where: str
    form: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.form!r} in ...{self.context}..."


def secret_forms(*secrets: str) -> set[str]:
    """Each secret as it could appear: raw, URL-encoded, form-encoded, JSON-escaped."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}
    return {form for form in forms if form}


def scan_text(text: str, forms: Iterable[str], where: str) -> list[Hit]:
    hits = []
    for form in forms:
        start = text.find(form)
        if start >= 0:
            hits.append(Hit(where, form, text[max(0, start - 40) : start + len(form) + 40]))
    return hits


def scan_paths(paths: Iterable[Path], forms: Iterable[str]) -> list[Hit]:
    """Search every regular file under ``paths`` (files or directories, recursively), byte for byte."""
    encoded = [(form, form.encode("utf-8")) for form in forms]
    hits: list[Hit] = []
    for root in paths:
        files = (
            [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        )
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for form, needle in encoded:
                start = data.find(needle)
                if start >= 0:
                    context = data[max(0, start - 40) : start + len(needle) + 40].decode("utf-8", "replace")
                    hits.append(Hit(str(path), form, context))
    return hits
