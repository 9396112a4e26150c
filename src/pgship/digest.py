"""SHA-256 for checksums and lock keys, from CPython's built-in module when there is one.

``import hashlib`` loads OpenSSL first: 3-4 ms of every command's start-up, to hash a few hundred
bytes per migration file. The digests are the same either way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol


class Digest(Protocol):
    """What pgship uses of a hash object."""

    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


def _load_sha256() -> Callable[[bytes], Digest]:
    """The built-in module's ``sha256`` (Python 3.12+: ``_sha2``, 3.11: ``_sha256``), else hashlib's."""
    for module in ("_sha2", "_sha256"):  # Python 3.12+, 3.11
        with suppress(ImportError):
            function: Callable[[bytes], Digest] = importlib.import_module(module).sha256
            return function
    import hashlib

    return hashlib.sha256


#: ``sha256(data)``, as ``hashlib.sha256`` (checksums of files, lock keys of tables)
sha256 = _load_sha256()
