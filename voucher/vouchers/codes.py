"""Short typeable voucher codes: 10 random characters and a check character.

The alphabet leaves out 0/O, 1/I/L so a cashier cannot mistype one for another; 31 symbols (a prime)
with position weights make every single wrong character and every swap of neighbours detectable
before any database lookup.
"""
from __future__ import annotations

import secrets
import unicodedata

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


#: Dash-like characters typed or pasted where "-" was meant, folded to "-" (after NFKC, which already
#: turns the full-width "－" U+FF0D and the small "﹣" U+FE63 into "-", and "﹘" U+FE58 into "—"): the
#: hyphens, figure dash, en and em dashes (a Chinese IME's "——"), horizontal bar, hyphen bullet, minus
#: sign, two- and three-em dashes. Not the kana prolonged sound mark "ー" (U+30FC), which is a letter,
#: nor the wave dashes "〜"/"～".
DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2e3a\u2e3b")
#: The ideographic full stop a Chinese IME types for "." (a token's separator); NFKC already folds "．".
FULL_STOPS = frozenset("\u3002")
#: Unicode categories dropped wherever they are: separators (U+3000 ideographic space, no-break
#: space, ...), control characters (tabs, line breaks, a scanner's GS) and invisible format characters
#: (zero-width space U+200B, byte-order mark U+FEFF, word joiner, soft hyphen, direction marks).
_DROPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def clean(typed: str) -> str:
    """What a scanner or a cashier typed, as plain ASCII where it meant ASCII: Unicode NFKC (full-width
    "ＡＢＣ１２３" becomes "ABC123"), every kind of whitespace and invisible character removed, dashes
    folded to "-" and the ideographic full stop to ".". Case is kept: a token's signature is
    case-sensitive. Used for short codes and signed tokens alike, before any check."""
    typed = typed or ""
    if typed.isascii() and typed.isprintable():
        return typed.replace(" ", "")  # what a scanner sends: nothing to fold, no per-character pass
    folded = unicodedata.normalize("NFKC", typed)
    kept = []
    for ch in folded:
        if ch.isspace() or unicodedata.category(ch) in _DROPPED_CATEGORIES:
            continue
        kept.append("-" if ch in DASHES else "." if ch in FULL_STOPS else ch)
    return "".join(kept)


def normalise(typed: str) -> str:
    """A typed short code as stored: cleaned (see `clean`), upper-cased, and without the dashes people
    type between groups."""
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
