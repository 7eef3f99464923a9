"""Signed QR tokens: `LYGV1.<key id>.<voucher code>.<signature>`.

The signature is an HMAC over version, key id and code, truncated to 128 bits and base64url
encoded: HMAC-SHA256, or HMAC-SM3 where the ring names it for the key id (voucher/core/keyed_mac.py).
The key id fixes the algorithm, so a token verifies only under the algorithm it was signed with. The
token carries no personal data. It is verified before any database lookup; a key id missing from
the configured key ring (retired or never issued) is refused.
"""
from __future__ import annotations

import base64

from voucher.core import keyed_mac
from voucher.core.errors import InvalidToken
from voucher.vouchers import codes

PREFIX = "LYGV1"
_SIG_BYTES = 16


def _signature(key: bytes, key_id: str, code: str) -> str:
    mac = keyed_mac.digest(key, f"{PREFIX}|{key_id}|{code}".encode())[:_SIG_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign(code: str, keys: dict[str, bytes], active_key_id: str) -> str:
    return f"{PREFIX}.{active_key_id}.{code}.{_signature(keys[active_key_id], active_key_id, code)}"


def looks_like_token(text: str) -> bool:
    return text.strip().upper().startswith(PREFIX + ".")


def verify(token: str, keys: dict[str, bytes]) -> str:
    """Return the voucher code of a genuine token; raise InvalidToken for anything else."""
    parts = token.strip().split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise InvalidToken()
    _, key_id, code, signature = parts
    key = keys.get(key_id)
    if key is None:
        raise InvalidToken("券码无效：签名密钥未知或已停用")
    if not keyed_mac.equal(_signature(key, key_id, code), signature):
        raise InvalidToken("券码无效：二维码签名校验失败，可能被篡改或伪造")
    if not codes.is_well_formed(code):
        raise InvalidToken()
    return code
