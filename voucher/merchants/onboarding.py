"""Merchant onboarding: an application, the bureau's decision, and the manager's own cashiers and terminals."""
from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select

from voucher.accounts import passwords
from voucher.accounts.locking import lock_user
from voucher.accounts.models import User
from voucher.accounts.services import create_user, reset_password
from voucher.core import audit, uscc
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import Forbidden, InvalidInput, InvalidTransition, MakerCheckerViolation, NotFound
from voucher.core.masking import mask_account_no, mask_phone
from voucher.core.permissions import Role
from voucher.core.reference import CATEGORIES, DISTRICTS
from voucher.core.typed_text import clean
from voucher.merchants.models import Merchant, MerchantStatus, Store, StoreTerminal
from voucher.merchants.terminals import issue_terminal_token

_ACCOUNT_NO = re.compile(r"^[0-9]{8,34}$")
#: a mainland mobile number, or a landline with its area code (0518-85821234, 051885821234)
_CONTACT_PHONE = re.compile(r"^(?:1[3-9][0-9]{9}|0[1-9][0-9]{1,2}-?[0-9]{7,8})$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,32}\Z")  # \Z: "$" would let a trailing newline through


@dataclass
class StoreInput:
    name: str
    district: str
    address: str = ""


@dataclass
class MerchantApplication:
    name: str
    uscc: str
    category: str
    stores: list[StoreInput]
    bank_account_name: str
    bank_name: str
    bank_account_no: str
    manager_username: str
    manager_password: str
    manager_display_name: str = ""
    contact_phone: str = ""
    #: applying again after a refusal: the manager password the refused application set, which proves the
    #: sender is that applicant (a USCC is public: without it anyone could take the application over)
    previous_password: str = ""


@dataclass(frozen=True)
class ApplicationStatus:
    """What the status page tells an applicant who gave the right USCC and contact phone."""

    merchant: Merchant
    #: the manager's sign-in name once approved (the bureau may have given another than the one asked)
    manager_username: str | None


def contact_phone(text: str | None) -> str:
    """A contact phone as typed (full-width digits from an IME, spaces, dashes, +86) in one form, or
    InvalidInput."""
    plain = clean(text).removeprefix("+86")
    mobile = plain.replace("-", "")
    if re.fullmatch(r"1[3-9][0-9]{9}", mobile):
        return mobile
    if not _CONTACT_PHONE.match(plain):
        raise InvalidInput("联系电话不正确：请填写 11 位手机号，或带区号的固定电话（如 0518-85821234）")
    return plain


#: marks a manager account whose sign-in name the bureau has not confirmed yet: "<asked for>#<merchant id>".
#: Usernames chosen anywhere else match _USERNAME, which has no "#", so a pending name never collides.
PENDING_MARK = "#"


def requested_username(manager: User) -> str | None:
    """The username a pending manager account asked for, or None once it has its own."""
    if PENDING_MARK not in manager.username:
        return None
    return manager.username.rsplit(PENDING_MARK, 1)[0]


def requested_usernames(merchant_ids: list[int]) -> dict[int, str]:
    """Merchant id -> the username its pending manager account asked for (for the bureau's review)."""
    if not merchant_ids:
        return {}
    managers = db.session.scalars(select(User).where(
        User.merchant_id.in_(merchant_ids), User.role == Role.MERCHANT_MANAGER.value,
        User.username.contains(PENDING_MARK),
    ))
    named: dict[int, str] = {}
    for m in managers:
        requested = requested_username(m)
        if m.merchant_id is not None and requested is not None:  # always, by the query
            named[m.merchant_id] = requested
    return named


def apply(data: MerchantApplication) -> Merchant:
    """Record an application: the merchant and its manager account wait, inactive, for the bureau.

    The public answer must not tell whether a staff username exists (issue 16), so the username asked for
    is not checked against the accounts here, nor held: the manager account is kept under a pending name
    ("newshop#12"), and the bureau gives it its sign-in name at approval (decide), where a name taken
    meanwhile is the bureau's to settle. Every well-formed application gets the same answer."""
    code = clean(data.uscc).upper()
    if not data.name.strip():
        raise InvalidInput("请填写商户名称")
    if not uscc.is_valid(code):
        raise InvalidInput("统一社会信用代码不正确：应为 18 位，且最后一位校验码正确（GB 32100-2015）")
    phone = contact_phone(data.contact_phone)
    # Locked: two re-applications of one rejected merchant posted at once must not both reopen it.
    earlier = db.session.scalar(select(Merchant).where(Merchant.uscc == code).with_for_update())
    if earlier is not None and earlier.status != MerchantStatus.REJECTED.value:
        raise InvalidInput("该统一社会信用代码已申请或已入驻；可在「申请进度查询」中查看")
    if data.category not in CATEGORIES:
        raise InvalidInput("请选择行业类别")
    stores = [s for s in data.stores if s.name.strip()]
    if not stores:
        raise InvalidInput("请至少填写一个门店")
    for store in stores:
        if store.district not in DISTRICTS:
            raise InvalidInput(f"门店「{store.name}」的区县不正确")
    account_no = re.sub(r"[\s-]", "", clean(data.bank_account_no))
    if not data.bank_account_name.strip() or not data.bank_name.strip():
        raise InvalidInput("请填写结算账户户名和开户行")
    if not _ACCOUNT_NO.match(account_no):
        raise InvalidInput("结算账号应为 8 到 34 位数字")
    if not _USERNAME.match(data.manager_username or ""):
        raise InvalidInput("管理员用户名应为 3 到 32 位字母、数字或 _ . -")
    if earlier is not None:
        _require_the_same_applicant(earlier, data.previous_password)
        return _reapply(earlier, data, stores, account_no, phone)
    merchant = Merchant(
        name=data.name.strip(), uscc=code, category=data.category, status=MerchantStatus.PENDING.value, contact_phone=phone,
        bank_account_name=data.bank_account_name.strip(), bank_name=data.bank_name.strip(), bank_account_no=account_no,
    )
    merchant.stores = [Store(name=s.name.strip(), district=s.district, address=s.address.strip()) for s in stores]
    db.session.add(merchant)
    db.session.flush()  # the manager account refers to the merchant
    manager = create_user(
        f"{data.manager_username}{PENDING_MARK}{merchant.id}", data.manager_password, Role.MERCHANT_MANAGER,
        display_name=data.manager_display_name.strip() or f"{merchant.name}管理员", merchant_id=merchant.id,
    )
    manager.is_active_account = False  # until the bureau approves the merchant
    audit.record("merchant.apply", merchant, actor_label="商户申请",
                 after={"name": merchant.name, "uscc": code, "category": data.category, "stores": len(stores)})
    return merchant


def _require_the_same_applicant(merchant: Merchant, password: str) -> None:
    """Only the applicant who was refused may apply again with the same USCC: they prove it with the
    manager password their application set. Checked against every manager account of the merchant (one,
    still inactive) in constant time per account; a wrong or missing password changes nothing."""
    managers = db.session.scalars(select(User).where(
        User.merchant_id == merchant.id, User.role == Role.MERCHANT_MANAGER.value)).all()
    if not password or not any(m.check_password(password) for m in managers):
        raise InvalidInput("该统一社会信用代码的入驻申请曾被驳回。重新申请须填写原申请设置的管理员密码"
                           "（「原管理员密码」）；忘记密码请联系商务局")


def _reapply(merchant: Merchant, data: MerchantApplication, stores: list[StoreInput], account_no: str,
             phone: str) -> Merchant:
    """A rejected applicant applies again: the same merchant row (its USCC is unique) waits for the bureau
    once more, with what was sent now. A rejected merchant never traded, so its stores have nothing
    attached and are replaced; the reason it was refused stays in the audit log."""
    before = {"status": merchant.status, "note": merchant.decision_note,
              "bank_account_no": mask_account_no(merchant.bank_account_no), "contact_phone": mask_phone(merchant.contact_phone)}
    merchant.name, merchant.category, merchant.status = data.name.strip(), data.category, MerchantStatus.PENDING.value
    merchant.contact_phone = phone
    merchant.bank_account_name, merchant.bank_name = data.bank_account_name.strip(), data.bank_name.strip()
    merchant.bank_account_no = account_no
    merchant.decided_by_id, merchant.decision_note = None, None
    for old in merchant.stores:
        db.session.delete(old)
    db.session.flush()
    db.session.expire(merchant, ["stores"])
    merchant.stores = [Store(name=s.name.strip(), district=s.district, address=s.address.strip()) for s in stores]
    managers = db.session.scalars(select(User).where(
        User.merchant_id == merchant.id, User.role == Role.MERCHANT_MANAGER.value)).all()
    for manager in managers:  # one: the account the first application asked for, still inactive
        manager.username = f"{data.manager_username}{PENDING_MARK}{merchant.id}"
        manager.display_name = data.manager_display_name.strip() or f"{merchant.name}管理员"
        passwords.check(data.manager_password, data.manager_username, manager.display_name)
        manager.set_password(data.manager_password)
    db.session.flush()
    audit.record("merchant.reapply", merchant, actor_label="商户申请", before=before,
                 after={"name": merchant.name, "category": data.category, "stores": len(stores),
                        "bank_account_no": mask_account_no(account_no), "contact_phone": mask_phone(phone),
                        "manager_username": data.manager_username})
    return merchant


def _digits(phone: str | None) -> str:
    return re.sub(r"[^0-9]", "", clean(phone).removeprefix("+86"))


def application_status(uscc_text: str | None, phone_text: str | None) -> ApplicationStatus:
    """The application with this USCC, if its contact phone is the one given; else NotFound, the same
    answer whether the USCC is unknown, the phone wrong or the merchant applied before phones were asked
    (so the page tells nothing to one who knows only a company's public USCC)."""
    not_found = NotFound("未找到与该统一社会信用代码和联系电话相符的入驻申请，请核对后重试")
    # The same number however it is written: 0518-85551234, 051885551234, (0518) 8555 1234, +86 138...
    typed = _digits(phone_text)
    merchant = db.session.scalar(select(Merchant).where(Merchant.uscc == clean(uscc_text).upper()))
    if merchant is None or merchant.contact_phone is None or not typed \
            or not hmac.compare_digest(_digits(merchant.contact_phone), typed):
        raise not_found
    username = None
    if merchant.status in (MerchantStatus.APPROVED.value, MerchantStatus.SUSPENDED.value):
        username = db.session.scalar(select(User.username).where(
            User.merchant_id == merchant.id, User.role == Role.MERCHANT_MANAGER.value).order_by(User.id).limit(1))
    return ApplicationStatus(merchant, username)


def merchant_query(text: str, status: str | None) -> Select[Merchant]:
    """The merchant list's search: words of the name, or a USCC (any case), and a status; newest first."""
    query = select(Merchant).order_by(Merchant.id.desc())
    words = clean(text)
    if words:
        query = query.where(or_(Merchant.name.contains(words, autoescape=True), Merchant.uscc == words.upper()))
    if status in {s.value for s in MerchantStatus}:
        query = query.where(Merchant.status == status)
    return query


def pending() -> list[Merchant]:
    """Applications waiting for the bureau, oldest first (the approver's 待审批 page)."""
    return list(db.session.scalars(select(Merchant).where(Merchant.status == MerchantStatus.PENDING.value).order_by(Merchant.id)))


def decide(merchant_id: int, actor: User, *, approve: bool, note: str = "", manager_username: str = "") -> Merchant:
    """The bureau's decision. Approving gives the pending manager account its sign-in name: the one the
    applicant asked for, or `manager_username` when the approver sets another (the one asked for is
    taken); the approver is told which name is taken, the public never is."""
    merchant = db.session.scalar(select(Merchant).where(Merchant.id == merchant_id).with_for_update())
    if merchant is None:
        raise NotFound("找不到该商户")
    if merchant.status != MerchantStatus.PENDING.value:
        raise InvalidTransition(f"该商户当前为「{merchant.status_label}」，无需审核")
    if not approve and not note.strip():
        raise InvalidInput("驳回时请填写原因")
    managers = db.session.scalars(select(User).where(User.merchant_id == merchant.id)).all()
    if any(m.id == actor.id for m in managers):
        raise MakerCheckerViolation()
    named = {}
    if approve:
        for manager in managers:
            asked = requested_username(manager)
            if asked is not None:
                named[manager.id] = _confirm_username(manager, (manager_username or "").strip() or asked)
            manager.is_active_account = True
    merchant.status = (MerchantStatus.APPROVED if approve else MerchantStatus.REJECTED).value
    merchant.decided_by_id = actor.id
    merchant.decision_note = note.strip() or None
    after: dict[str, Any] = {"status": merchant.status, "note": merchant.decision_note}
    if named:
        after["manager_usernames"] = sorted(named.values())
    audit.record("merchant.approve" if approve else "merchant.reject", merchant, actor=actor,
                 before={"status": "pending"}, after=after)
    return merchant


def _confirm_username(manager: User, username: str) -> str:
    if not _USERNAME.match(username):
        raise InvalidInput("管理员用户名应为 3 到 32 位字母、数字或 _ . -")
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise InvalidInput(f"用户名 {username} 已被占用，请在“管理员用户名”中为该商户另定一个，并告知申请人")
    manager.username = username
    return username


def _own_store(manager: User, store_id: int) -> Store:
    store = db.session.get(Store, store_id)
    # Another merchant's store is refused the same way as a missing one.
    if store is None or store.merchant_id != manager.merchant_id:
        raise Forbidden("只能管理本商户的门店")
    if store.merchant.status != MerchantStatus.APPROVED.value:
        raise Forbidden("商户尚未通过审核")
    return store


def add_cashier(manager: User, *, store_id: int, username: str, display_name: str, password: str) -> User:
    store = _own_store(manager, store_id)
    if not _USERNAME.match(username or ""):
        raise InvalidInput("用户名应为 3 到 32 位字母、数字或 _ . -")
    cashier = create_user(
        username, password, Role.CASHIER, display_name=display_name.strip() or username,
        merchant_id=store.merchant_id, store_id=store.id, actor=manager,
    )
    return cashier


def set_cashier_active(manager: User, cashier_id: int, active: bool) -> User:
    cashier = db.session.get(User, cashier_id)
    if cashier is None or cashier.role != Role.CASHIER.value or cashier.merchant_id != manager.merchant_id:
        raise Forbidden("只能管理本商户的收银员")
    cashier.is_active_account = active
    audit.record("user.activate" if active else "user.deactivate", cashier, actor=manager,
                 after={"is_active": active})
    return cashier


def reset_cashier_password(manager: User, cashier_id: int) -> tuple[User, str]:
    """The manager's 重置密码 for one of the merchant's own cashiers: accounts' reset_password with the
    manager as its actor (a random temporary password, to be shown once; every session of the cashier
    ends; audited as user.password_reset). Another merchant's cashier, or an account that is not a
    cashier, is refused as Forbidden, the same answer as for an id that does not exist."""
    try:
        cashier: User | None = lock_user(cashier_id)  # reset_password locks it too: the same row, the same lock
    except NotFound:
        cashier = None
    if cashier is None or cashier.role != Role.CASHIER.value or cashier.merchant_id != manager.merchant_id:
        raise Forbidden("只能管理本商户的收银员")
    return reset_password(cashier.id, manager)


def issue_terminal(manager: User, *, store_id: int, label: str) -> tuple[StoreTerminal, str]:
    store = _own_store(manager, store_id)
    terminal, token = issue_terminal_token(store.id, label.strip() or "收银终端", manager.id)
    audit.record("terminal.issue", terminal, actor=manager, after={"store_id": store.id, "label": terminal.label,
                                                                   "token_prefix": terminal.token_prefix})
    return terminal, token


def revoke_terminal(manager: User, terminal_id: int) -> StoreTerminal:
    terminal = db.session.get(StoreTerminal, terminal_id)
    if terminal is None or terminal.store.merchant_id != manager.merchant_id:
        raise Forbidden("只能管理本商户的终端")
    terminal.revoked_at = terminal.revoked_at or utcnow()
    audit.record("terminal.revoke", terminal, actor=manager, after={"revoked_at": terminal.revoked_at})
    return terminal
