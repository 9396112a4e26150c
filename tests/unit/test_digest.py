"""pgship's SHA-256 (the built-in module, not OpenSSL) gives hashlib's digests."""

from __future__ import annotations

import hashlib

import pytest

from pgship.digest import sha256


@pytest.mark.parametrize("data", [b"", b"CREATE TABLE t (id int);\n", bytes(range(256)) * 40])
def test_the_digests_are_hashlibs(data: bytes):
    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert sha256(data).digest() == hashlib.sha256(data).digest()
