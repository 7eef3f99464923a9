"""Keyed MACs by algorithm name: HMAC-SHA256, and HMAC-SM3 for the 商用密码 option (SM3: GB/T 32905-2016).

The QR token, identity and audit key rings name an algorithm per key id (voucher/config.py). A key is
its secret bytes tagged with the algorithm; a plain `bytes` key is HMAC-SHA256, as every key was before
the algorithm could be chosen, so existing rings, records and tokens keep verifying.
"""
from __future__ import annotations

import hmac as _std_hmac
from typing import Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

HMAC_SHA256 = "hmac-sha256"
HMAC_SM3 = "hmac-sm3"
ALGORITHMS = {HMAC_SHA256: hashes.SHA256, HMAC_SM3: hashes.SM3}


class MacKey(bytes):
    """A MAC secret with the algorithm it is used with.

    A bytes subclass so that code and tests holding `{kid: b"secret"}` rings keep working; it equals
    a plain bytes key only when it is HMAC-SHA256, which is what a plain key means."""

    algorithm: str

    def __new__(cls, secret: bytes, algorithm: str = HMAC_SHA256) -> Self:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown MAC algorithm {algorithm!r}")
        key = super().__new__(cls, secret)
        key.algorithm = algorithm
        return key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, bytes) and bytes(self) == bytes(other) and algorithm_of(other) == self.algorithm

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = bytes.__hash__

    def __repr__(self) -> str:
        # Config dumps and tracebacks show which key, never the secret.
        return f"MacKey(<{len(self)} bytes>, {self.algorithm!r})"


def algorithm_of(key: bytes) -> str:
    return key.algorithm if isinstance(key, MacKey) else HMAC_SHA256


def new(key: bytes) -> HMAC:
    """An incremental MAC (update(), then finalize()) under the key's algorithm."""
    return HMAC(bytes(key), ALGORITHMS[algorithm_of(key)]())


def digest(key: bytes, message: bytes) -> bytes:
    mac = new(key)
    mac.update(message)
    return mac.finalize()


def hexdigest(key: bytes, message: bytes) -> str:
    return digest(key, message).hex()


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison: how long it takes says nothing about where two MACs differ. Text is
    compared as UTF-8 (compare_digest refuses non-ASCII text, and a scanned token may hold any)."""
    return _std_hmac.compare_digest(a.encode() if isinstance(a, str) else a, b.encode() if isinstance(b, str) else b)
