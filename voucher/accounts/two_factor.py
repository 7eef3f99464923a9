"""Two-factor sign-in: a TOTP code from an authenticator app (RFC 6238, through pyotp), or a one-time
recovery code, after the password.

- Enrolment is two steps: 开始设置 makes a secret (kept as pending) shown as a QR code, and the first
  code the app gives for it switches two-factor on. A secret that was never confirmed does nothing.
- A code is good within ±1 step (30 s) of the app clock (core.clock), and once: the step of the last code
  accepted is kept, and an UPDATE that only moves it forward decides which of two copies of one code wins.
- Ten recovery codes, shown once at enrolment; only their SHA-256 is kept. Each signs in once.
- Roles in TWO_FACTOR_REQUIRED_ROLES (production: approvers, finance, administrators) cannot switch it
  off; until they have enrolled, every page sends them to enrolment (accounts/sessions.py). A lost phone
  with lost recovery codes is an administrator's 重置两步验证 (accounts/services.py).

Wrong codes at sign-in count towards the account's lock like wrong passwords (accounts/services.py):
the 10^6 codes cannot be tried faster than LOGIN_MAX_FAILURES per lock period.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timezone

import pyotp
import qrcode
import qrcode.image.svg
from flask import current_app
from markupsafe import Markup
from sqlalchemy import delete, func, select, update

from voucher.accounts.locking import lock_user
from voucher.accounts.models import RecoveryCode, User
from voucher.core import audit
from voucher.core.clock import utcnow
from voucher.core.db import db, rowcount
from voucher.core.errors import DomainError, InvalidInput
from voucher.core.typed_text import clean

STEP_SECONDS = 30
#: steps either side of now that still count: a phone's clock a little off, a code typed as it turned
WINDOW = 1
RECOVERY_CODE_COUNT = 10
#: no 0/o, 1/l/i: a recovery code is copied from paper
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 10
_TOTP = re.compile(r"^\d{6}$")
_RECOVERY = re.compile(rf"^[{_RECOVERY_ALPHABET}]{{{_RECOVERY_LENGTH}}}$")


class WrongCode(InvalidInput):
    code = "wrong_two_factor_code"
    default_message = "验证码不正确或已使用过，请输入验证器应用中当前显示的 6 位数字，或一个未用过的恢复码"


class TwoFactorRequired(DomainError):
    code = "two_factor_required"
    status = 409
    default_message = "您的角色要求两步验证，不能关闭。如更换了手机，请先用新手机重新设置，或联系管理员重置"


def enabled(user: User) -> bool:
    return user.totp_enabled_at is not None


def required_for(user: User) -> bool:
    return user.role in current_app.config["TWO_FACTOR_REQUIRED_ROLES"]


def must_enrol(user: User) -> bool:
    """A user whose role requires a second factor and who has none yet: every page sends them to set it up."""
    return required_for(user) and not enabled(user)


def normalise(text: str | None) -> str:
    """What a person typed, as a code: full-width digits and letters from an IME made plain, spaces and
    dashes dropped, lower case."""
    return clean(text).replace("-", "").replace("_", "").lower()


# -- enrolment ---------------------------------------------------------------------------------------


def begin_enrolment(user: User) -> str:
    """开始设置: a new pending secret (replacing one not yet confirmed); returns it."""
    if enabled(user):
        raise InvalidInput("两步验证已启用；如需更换手机，请先关闭后重新设置，或联系管理员重置")
    user.totp_pending_secret = pyotp.random_base32()
    return user.totp_pending_secret


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=user.username, issuer_name=current_app.config["TWO_FACTOR_ISSUER"])


def qr_svg(uri: str) -> Markup:
    """The otpauth:// address as an inline SVG QR code (no image request, nothing for the CSP to refuse)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=4)
    return Markup(image.to_string(encoding="unicode"))


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def confirm_enrolment(user: User, typed: str) -> list[str]:
    """The first code from the app for the pending secret switches two-factor on; returns the recovery
    codes, to be shown once."""
    locked = lock_user(user.id)
    if enabled(locked):
        raise InvalidInput("两步验证已启用")
    if not locked.totp_pending_secret:
        raise InvalidInput("请先点击“开始设置”并扫描二维码")
    step = _matching_step(locked.totp_pending_secret, normalise(typed), after=None)
    if step is None:
        raise WrongCode("验证码不正确：请确认手机时间准确，并输入验证器应用中当前显示的 6 位数字")
    locked.totp_secret = locked.totp_pending_secret
    locked.totp_pending_secret = None
    locked.totp_enabled_at = utcnow()
    locked.totp_last_step = step
    codes = _new_recovery_codes(locked)
    audit.record("user.two_factor_enable", locked, actor=locked)
    return codes


def regenerate_recovery_codes(user: User, typed: str) -> list[str]:
    """New recovery codes (the old ones stop working), on a current code from the app."""
    locked = lock_user(user.id)
    if not enabled(locked) or not _use_totp(locked, normalise(typed)):
        raise WrongCode("请输入验证器应用中当前显示的 6 位数字")
    codes = _new_recovery_codes(locked)
    audit.record("user.two_factor_recovery_codes", locked, actor=locked)
    return codes


def disable(user: User, typed: str) -> None:
    """关闭两步验证, on a current code from the app; refused to roles that require it."""
    locked = lock_user(user.id)
    if required_for(locked):
        raise TwoFactorRequired()
    if not enabled(locked) or not _use_totp(locked, normalise(typed)):
        raise WrongCode("请输入验证器应用中当前显示的 6 位数字")
    clear(locked)
    audit.record("user.two_factor_disable", locked, actor=locked)


def clear(user: User) -> None:
    """Switch two-factor off and forget the secret and every recovery code (no audit entry: the caller's)."""
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def unused_recovery_codes(user: User) -> int:
    return db.session.scalar(select(func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


# -- sign-in -------------------------------------------------------------------------------------------


def check_sign_in_code(user: User, typed: str) -> str:
    """The second step of a sign-in: a current TOTP code or an unused recovery code, each good once.
    Returns which it was ("totp" or "recovery_code"); raises WrongCode otherwise."""
    code = normalise(typed)
    if enabled(user):
        if _TOTP.match(code) and _use_totp(user, code):
            return "totp"
        if _RECOVERY.match(code) and _use_recovery_code(user, code):
            return "recovery_code"
    raise WrongCode()


def _use_totp(user: User, code: str) -> bool:
    step = _matching_step(user.totp_secret or "", code, after=user.totp_last_step)
    if step is None:
        return False
    # Only forward: of two requests with the same code (a double click, or a code seen over a shoulder
    # and typed at once), one moves the step and the other finds it moved.
    moved = rowcount(db.session.execute(
        update(User).where(User.id == user.id, (User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False)
    ))
    if moved:
        user.totp_last_step = step
    return bool(moved)


def _matching_step(secret: str, code: str, *, after: int | None) -> int | None:
    """The step within the window (and after `after`) whose code is `code`, or None."""
    if not secret or not _TOTP.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now = int(utcnow().replace(tzinfo=timezone.utc).timestamp()) // STEP_SECONDS
    for step in range(now - WINDOW, now + WINDOW + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _use_recovery_code(user: User, code: str) -> bool:
    used = rowcount(db.session.execute(
        update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.code_digest == _digest(code),
                                   RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False)
    ))
    if used:
        audit.record("user.recovery_code_used", user, actor=user,
                     after={"remaining": unused_recovery_codes(user)})
    return bool(used)


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = ["".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
             for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(RecoveryCode(user_id=user.id, code_digest=_digest(code)) for code in codes)
    db.session.flush()
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def _digest(code: str) -> str:
    return hashlib.sha256(f"recovery:{code}".encode()).hexdigest()
