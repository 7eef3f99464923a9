"""Columns encrypted at rest: AES-256-GCM, or SM4-GCM for the 商用密码 option (SM4: GB/T 32907-2016).

A column declared `EncryptedString("<purpose>")` holds `v1.<key id>.<base64(nonce | ciphertext | tag)>`
and reads back as the plain text, so the code around it is unchanged. The keys are a ring in the
configuration (FIELD_ENCRYPTION_KEYS, each key id with its algorithm): new values are written under
FIELD_ENCRYPTION_ACTIVE_KEY_ID, every key in the ring reads. `flask crypto rotate-fields`
(voucher/core/field_rotation.py) rewrites the values under older keys, after which those keys can go.

The associated data binds a value to its version, key id and purpose (say "merchants.bank_account_no"):
a ciphertext copied into a column of another purpose fails to decrypt instead of reading as that
column's value. What is stored cannot be searched or compared in SQL: each write takes a fresh nonce.
Anything that cannot be decrypted raises FieldDecryptionError, never a guess.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app
from sqlalchemy import String
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

AES_256_GCM = "aes-256-gcm"
SM4_GCM = "sm4-gcm"
#: key length in bytes for each algorithm
KEY_BYTES = {AES_256_GCM: 32, SM4_GCM: 16}
VERSION = "v1"
_NONCE_BYTES = 12  # the size GCM is defined for; random per value
_TAG_BYTES = 16


@dataclass(frozen=True)
class FieldKey:
    algorithm: str
    secret: bytes

    def __post_init__(self) -> None:
        if KEY_BYTES.get(self.algorithm) != len(self.secret):
            raise ValueError(f"a {self.algorithm} key has {KEY_BYTES.get(self.algorithm)} bytes")

    def __repr__(self) -> str:
        # Config dumps and tracebacks show which key, never the secret.
        return f"FieldKey({self.algorithm!r}, <{len(self.secret)} bytes>)"


class FieldDecryptionError(RuntimeError):
    """A stored value that cannot be read back: wrong or missing key, altered, or copied from elsewhere."""


def _associated_data(key_id: str, purpose: str) -> bytes:
    return f"{VERSION}|{key_id}|{purpose}".encode()


def _cipher(key: FieldKey, nonce: bytes, tag: bytes | None = None) -> Cipher:
    algorithm = algorithms.AES(key.secret) if key.algorithm == AES_256_GCM else algorithms.SM4(key.secret)
    return Cipher(algorithm, modes.GCM(nonce, tag))


def seal(key: FieldKey, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """nonce | ciphertext | tag."""
    encryptor = _cipher(key, nonce).encryptor()
    encryptor.authenticate_additional_data(associated_data)
    ciphertext = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + ciphertext + encryptor.tag


def open_sealed(key: FieldKey, sealed: bytes, associated_data: bytes) -> bytes:
    """The plaintext of seal()'s output; cryptography's InvalidTag if anything differs."""
    nonce, ciphertext, tag = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:-_TAG_BYTES], sealed[-_TAG_BYTES:]
    decryptor = _cipher(key, nonce, tag).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    return decryptor.update(ciphertext) + decryptor.finalize()


def encrypt(plaintext: str, purpose: str, keys: dict[str, FieldKey], active_key_id: str) -> str:
    sealed = seal(keys[active_key_id], os.urandom(_NONCE_BYTES), plaintext.encode(),
                  _associated_data(active_key_id, purpose))
    return f"{VERSION}.{active_key_id}.{base64.b64encode(sealed).decode()}"


def key_id_of(stored: str) -> str | None:
    """The key id a stored value was written under; None if it is not a value of this format."""
    version, _, rest = stored.partition(".")
    key_id, sep, _ = rest.partition(".")
    return key_id if version == VERSION and sep and key_id else None


def decrypt(stored: str, purpose: str, keys: dict[str, FieldKey]) -> str:
    key_id = key_id_of(stored)
    if key_id is None:
        raise FieldDecryptionError(f"字段 {purpose} 的值不是 {VERSION} 密文，无法解密（明文或已损坏？）")
    if key_id not in keys:
        raise FieldDecryptionError(f"字段 {purpose} 的值使用的密钥 {key_id} 不在 FIELD_ENCRYPTION_KEYS 中，无法解密")
    try:
        sealed = base64.b64decode(stored.split(".", 2)[2], validate=True)
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise ValueError("too short")
        return open_sealed(keys[key_id], sealed, _associated_data(key_id, purpose)).decode()
    except (binascii.Error, ValueError, InvalidTag) as error:
        # UnicodeDecodeError is a ValueError; the value itself stays out of the message and the logs.
        raise FieldDecryptionError(f"字段 {purpose} 的值无法用密钥 {key_id} 解密：密钥不对，或密文被改动、"
                                   f"或从其他字段复制而来") from error


def active_ring() -> tuple[dict[str, FieldKey], str]:
    config = current_app.config
    return config["FIELD_ENCRYPTION_KEYS"], config["FIELD_ENCRYPTION_ACTIVE_KEY_ID"]


class EncryptedString(TypeDecorator):
    """A text column stored encrypted under the configured key ring (read in the app context at each
    write and read). `purpose` names what the column holds; it is bound into every ciphertext."""

    impl = String
    cache_ok = True

    class Comparator(TypeDecorator.Comparator):
        """Only IS [NOT] NULL: any other comparison would run against ciphertext, which no value matches."""

        def operate(self, op, *other, **kwargs):
            if op in (operators.is_, operators.is_not) or (
                    op in (operators.eq, operators.ne) and len(other) == 1 and other[0] is None):
                return super().operate(op, *other, **kwargs)
            raise TypeError(f"加密字段 {self.type.purpose} 不能在 SQL 中比较、排序或检索，只能判断是否为空")

        def reverse_operate(self, op, other, **kwargs):
            raise TypeError(f"加密字段 {self.type.purpose} 不能在 SQL 中比较、排序或检索，只能判断是否为空")

    comparator_factory = Comparator

    def __init__(self, purpose: str, length: int | None = None) -> None:
        super().__init__(length)
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        return encrypt(value, self.purpose, *active_ring())

    def process_result_value(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        return decrypt(value, self.purpose, current_app.config["FIELD_ENCRYPTION_KEYS"])
