"""The password rule for staff accounts, and the temporary passwords an administrator hands out.

A password must have at least MIN_LENGTH characters, must not contain the username, and must not be
easy to guess: zxcvbn (Dropbox's estimator: common-password lists, dictionary words, names, keyboard
runs, repeats, dates, l33t spellings) must rate it 3 of 4 or better, about 10^8 guesses. That refuses
12345678, password, 1qaz2wsx3edc and admin12345 whatever their length, and lets a few unrelated words
with digits or signs through ("secret-pass-1"). The username, the display name and the words of this
system (the city, the bureau) count as guessable too.

Demo data (`flask seed demo`, development only) is the one caller that skips the rule: see
seed/demo.py.
"""
from __future__ import annotations

import secrets

from zxcvbn import zxcvbn

from voucher.core.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 128
#: zxcvbn's score, 0 to 4; 3 is "safely unguessable: moderate protection from an offline slow-hash attack"
MIN_SCORE = 3
#: zxcvbn looks at this many characters at most: its matching grows quickly with the length, and a
#: password this long is not short of guesses
SCORED_LENGTH = 64
#: words a guesser of this system's passwords tries first
LOCAL_WORDS = ("lianyungang", "gangcheng", "haizhou", "lianyun", "shangwuju", "xiaofeiquan", "voucher", "woaini",
               "5201314")

#: a temporary password: 16 characters without look-alikes (0/o, 1/l/i), in four groups
_TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class WeakPassword(InvalidInput):
    code = "weak_password"
    default_message = "密码不符合要求"


def check(password: str, username: str = "", display_name: str = "") -> None:
    """Raise WeakPassword, with the reason in Chinese, unless `password` follows the rule."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"密码至少需要 {MIN_LENGTH} 位")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"密码不能超过 {MAX_LENGTH} 位")
    name = (username or "").strip().lower()
    if len(name) >= 3 and name in password.lower():
        raise WeakPassword("密码不能包含用户名")
    hints = [w for w in (name, (display_name or "").strip().lower()) if w] + list(LOCAL_WORDS)
    if zxcvbn(password[:SCORED_LENGTH], user_inputs=hints)["score"] < MIN_SCORE:
        raise WeakPassword(
            "密码太容易被猜到（常见密码、连续数字、键盘顺序、单个词加数字等），"
            "请换一个：例如用几个不相关的词，中间加上数字或符号"
        )


def temporary() -> str:
    """A random password for an administrator to hand over (about 79 bits), e.g. `k7mp-x3qa-9tvw-hc2e`."""
    chars = "".join(secrets.choice(_TEMPORARY_ALPHABET) for _ in range(16))
    return "-".join(chars[i:i + 4] for i in range(0, 16, 4))
