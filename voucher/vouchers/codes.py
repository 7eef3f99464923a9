"""Short typeable voucher codes: 10 random characters and a check character.

The alphabet leaves out 0/O, 1/I/L so a cashier cannot mistype one for another; 31 symbols (a prime)
with position weights make every single wrong character and every swap of neighbours detectable
before any database lookup.
"""
from __future__ import annotations

import secrets

from voucher.core.typed_text import clean

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
assert len(ALPHABET) == 31
DATA_LENGTH = 10
CODE_LENGTH = DATA_LENGTH + 1
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}


def check_char(data: str) -> str:
    total = sum((position + 1) * _INDEX[ch] for position, ch in enumerate(data))
    return ALPHABET[total % 31]


def new_code() -> str:
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_LENGTH))
    return data + check_char(data)


def new_codes(count: int) -> list[str]:
    """`count` codes at once (a big release mints a million): the same uniform draw as new_code(), from
    one block of random bytes. A byte below 248 (8 x 31) stands for ALPHABET[byte % 31]; the others are
    dropped, so no symbol is likelier than another."""
    codes: list[str] = []
    while len(codes) < count:
        wanted = count - len(codes)
        symbols = [ALPHABET[b % 31] for b in secrets.token_bytes(wanted * DATA_LENGTH * 9 // 8 + 64) if b < 248]
        for start in range(0, len(symbols) - DATA_LENGTH + 1, DATA_LENGTH):
            if len(codes) == count:
                break
            data = "".join(symbols[start:start + DATA_LENGTH])
            codes.append(data + check_char(data))
    return codes


def normalise(typed: str) -> str:
    """A typed short code as stored: cleaned (voucher/core/typed_text.py), upper-cased, and without the
    dashes people type between groups."""
    return clean(typed).upper().replace("-", "")


def is_well_formed(code: str) -> bool:
    return (
        len(code) == CODE_LENGTH
        and all(ch in _INDEX for ch in code)
        and check_char(code[:DATA_LENGTH]) == code[DATA_LENGTH]
    )


def display(code: str) -> str:
    """Groups of four for reading aloud: ABCD-EFGH-JKM."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
