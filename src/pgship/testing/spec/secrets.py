"""Keep passwords out of everything the specification publishes.

The report is public documentation: a command line, a DSN in an error message
or a health response must never show the server's password. Scrubbing is done
on text just before it is attached, with the actual password (plain and
URL-encoded) plus a pattern for any ``scheme://user:password@`` the text holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

MASK = "********"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?P<tail>@)", re.I)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'[^']*'|\S+)", re.I)


def password_of(url: str) -> str | None:
    """The password in a PostgreSQL URL, decoded, or ``None``."""
    password = urlsplit(url).password
    return unquote(password) if password else None


class Scrubber:
    """Replaces known secrets and anything shaped like a credential with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember a secret; its URL-encoded form is masked as well."""
        if not secret or len(secret) < 4:  # a tiny "secret" would mask ordinary words
            return
        self._secrets.update({secret, quote(secret, safe=""), quote(secret)})

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"], text)
        return _KEYWORD_PASSWORD.sub(lambda m: m["head"] + MASK, text)

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` still holds one of the known secrets (for tests and assertions)."""
        return any(secret in text for secret in self._secrets)
