"""What a person typed, a scanner sent or a bank's file wrote, as the plain ASCII it meant.

A Chinese IME types full-width digits and letters ("１２３", "ＡＢＣ"), the ideographic space and full
stop, and long dashes; a pasted value brings zero-width spaces and a byte-order mark; a scanner sends
control characters. Every reader of codes, amounts and numbers folds its input here first, so there is
one table of what counts as the same character, not one per reader.
"""
from __future__ import annotations

import unicodedata

#: Dash-like characters typed or pasted where "-" was meant, folded to "-" (after NFKC, which already
#: turns the full-width "－" U+FF0D and the small "﹣" U+FE63 into "-", and "﹘" U+FE58 into "—"): the
#: hyphens, figure dash, en and em dashes (a Chinese IME's "——"), horizontal bar, hyphen bullet, minus
#: sign, two- and three-em dashes. Not the kana prolonged sound mark "ー" (U+30FC), which is a letter,
#: nor the wave dashes "〜"/"～".
DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2e3a\u2e3b")
#: The ideographic full stop a Chinese IME types for "."; NFKC already folds the full-width "．".
FULL_STOPS = frozenset("\u3002")
#: Unicode categories dropped wherever they are: separators (U+3000 ideographic space, no-break
#: space, ...), control characters (tabs, line breaks, a scanner's GS) and invisible format characters
#: (zero-width space U+200B, byte-order mark U+FEFF, word joiner, soft hyphen, direction marks).
_DROPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def clean(typed: str | None) -> str:
    """Unicode NFKC (full-width "ＡＢＣ１２３．，％" becomes "ABC123.,%"), every kind of whitespace and
    invisible character removed, dashes folded to "-" and the ideographic full stop to ".". Case is
    kept: a signed token is case-sensitive."""
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
