"""Redemption at the counter: one atomic step (docs/design.md §5 Vouchers and QR codes)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, exists, select, update

from voucher.accounts.models import User
from voucher.campaigns.models import Campaign, CampaignStatus, VoucherProduct, campaign_merchants, discount_fen
from voucher.campaigns.services import lock_campaign
from voucher.core import audit
from voucher.core.clock import to_local, utcnow
from voucher.core.db import connection, db
from voucher.core.errors import (
    AccountWouldGoNegative,
    BudgetExhausted,
    CampaignNotActive,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    MerchantNotEligible,
    NotFound,
    OutsideUsableHours,
    ReversalWindowClosed,
    ThresholdNotMet,
    VoucherAlreadyRedeemed,
    VoucherExpired,
    VoucherNotClaimed,
    VoucherNotFound,
    VoucherNotYetValid,
)
from voucher.core.money import format_yuan, split_within
from voucher.core.upsert import cached, insert_ignore
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind
from voucher.merchants.models import Merchant, Redemption, Store, StoreTerminal
from voucher.settlement.models import SettlementItem
from voucher.vouchers.models import Voucher, VoucherStatus
from voucher.vouchers.services import code_from_input

#: a hundred million yuan: far above any counter order, far below what the database can hold
MAX_ORDER_FEN = 100_000_000_00

#: called with each reversed redemption inside the reversal's transaction, by name (registering twice
#: replaces). The read side keeps aggregates of redemptions (the leverage rollup) that it must correct at
#: once, and the counter may not import it: create_app plugs it in (docs/architecture.md).
_REVERSAL_HOOKS: dict[str, Callable[[Redemption], None]] = {}


def on_reversal(name: str, hook: Callable[[Redemption], None]) -> None:
    """Run `hook(redemption)` after every reversal, before its transaction commits; it may lock and write
    its own rows, never the counter's."""
    _REVERSAL_HOOKS[name] = hook


@dataclass(frozen=True)
class RedemptionResult:
    redemption: Redemption
    voucher_code: str
    #: True when this answer repeats an earlier request with the same idempotency key
    replayed: bool = False


@dataclass(frozen=True)
class _Counter:
    store_id: int
    merchant_id: int
    district: str
    merchant_status: str
    category: str


@dataclass(frozen=True)
class Terminal(_Counter):
    """A store terminal calling the API, with its store's standing: read with the token, in one query."""

    id: int


# The hot path runs constant Core statements with parameters on the session's connection (see
# core.db.connection): building a statement per call, loading ORM objects or following a lazy
# relationship each costs CPU or a query, per redemption.
_COUNTER = (
    select(Store.id, Store.merchant_id, Store.district, Merchant.status, Merchant.category)
    .join(Merchant, Merchant.id == Store.merchant_id)
)
_COUNTER_OF_STORE = _COUNTER.where(Store.id == bindparam("store_id"))
TERMINAL_BY_TOKEN = (
    _COUNTER.add_columns(StoreTerminal.id).join(StoreTerminal, StoreTerminal.store_id == Store.id)
    .where(StoreTerminal.token_hash == bindparam("token_hash"), StoreTerminal.revoked_at.is_(None))
)
_VOUCHER_FOR_REDEMPTION = (
    select(
        Voucher.id, Voucher.status, Voucher.face_value_fen, Voucher.valid_from, Voucher.valid_until,
        Voucher.campaign_id, Campaign.status.label("campaign_status"), Campaign.categories, Campaign.districts,
        Campaign.usable_from, Campaign.usable_until, Campaign.approved_at, VoucherProduct.kind,
        VoucherProduct.threshold_fen, VoucherProduct.percent_bp,
    )
    .join(Campaign, Campaign.id == Voucher.campaign_id)
    .join(VoucherProduct, VoucherProduct.campaign_id == Voucher.campaign_id)
    .where(Voucher.code == bindparam("code"))
    # The row lock serialises two counters racing for one voucher; the loser sees it redeemed.
    .with_for_update(of=Voucher.__table__)
)
_MARK_REDEEMED = (
    update(Voucher.__table__).where(Voucher.__table__.c.id == bindparam("voucher_id"))
    .values(status=VoucherStatus.REDEEMED.value, redeemed_at=bindparam("now"))
)


def _counter_of(cashier: User | None, terminal: Terminal | None) -> _Counter:
    if terminal is not None:
        return terminal
    store_id = getattr(cashier, "store_id", None)
    row = connection().execute(_COUNTER_OF_STORE, {"store_id": store_id}).first() if store_id else None
    if row is None:
        raise Forbidden("该账号未绑定门店，不能核销")
    return _Counter(*row)


def redeem(
    scanned: str,
    order_amount_fen: int,
    cashier: User | None = None,
    *,
    terminal: Terminal | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> RedemptionResult:
    """Verify, check, compute the discount, post to the ledger and mark the voucher, or change nothing.

    The actor is a cashier at the counter page or a store terminal calling the API.
    """
    code = code_from_input(scanned)  # a forged or altered token stops here, before any lookup
    if idempotency_key is not None and len(idempotency_key) > 64:
        raise InvalidInput("请求编号（Idempotency-Key）不能超过 64 个字符")
    if order_amount_fen > MAX_ORDER_FEN:
        raise InvalidInput("订单金额过大")
    now = now or utcnow()
    counter = _counter_of(cashier, terminal)
    if counter.merchant_status != "approved":
        raise Forbidden("商户未通过审核或已暂停，不能核销")

    voucher = connection().execute(_VOUCHER_FOR_REDEMPTION, {"code": code}).one_or_none()
    if voucher is None:
        raise VoucherNotFound()

    status = VoucherStatus(voucher.status)
    if status is VoucherStatus.REDEEMED:
        # A retry of a request that went through finds the voucher redeemed: answer it from the record.
        earlier = _earlier(counter.store_id, idempotency_key)
        if earlier is not None:
            return _replay(earlier, voucher.id, order_amount_fen, code)
        raise VoucherAlreadyRedeemed()
    if status is VoucherStatus.AVAILABLE:
        raise VoucherNotClaimed()
    if status in (VoucherStatus.EXPIRED, VoucherStatus.WITHDRAWN):
        raise VoucherExpired()
    if voucher.valid_until is not None and now > voucher.valid_until:
        raise VoucherExpired()
    if voucher.valid_from is not None and now < voucher.valid_from:
        raise VoucherNotYetValid()

    if voucher.campaign_status != CampaignStatus.ACTIVE.value:
        raise CampaignNotActive()
    named = _named_merchants(voucher.campaign_id, voucher.approved_at)
    if named is not None and counter.merchant_id not in named:
        raise MerchantNotEligible("本券仅限指定商户使用，本店不在名单内")
    if voucher.categories and counter.category not in voucher.categories:
        raise MerchantNotEligible(f"本券仅限{'、'.join(voucher.categories)}类商户使用，本店为{counter.category}类")
    if voucher.districts and counter.district not in voucher.districts:
        raise MerchantNotEligible(f"本券仅限{'、'.join(voucher.districts)}使用，本店位于{counter.district}")
    if voucher.usable_from is not None:
        local_time = to_local(now).time()
        if not (voucher.usable_from <= local_time <= voucher.usable_until):
            raise OutsideUsableHours(f"本券仅限每日 {voucher.usable_from:%H:%M}–{voucher.usable_until:%H:%M} 使用")
    threshold = voucher.threshold_fen
    if order_amount_fen <= 0:
        raise ThresholdNotMet("订单金额必须大于 0")
    if threshold and order_amount_fen < threshold:
        raise ThresholdNotMet(
            f"订单金额 {format_yuan(order_amount_fen)} 元未达到使用门槛 {format_yuan(threshold)} 元"
        )

    subsidy = discount_fen(voucher.kind, voucher.face_value_fen, voucher.percent_bp, order_amount_fen)
    if subsidy <= 0:
        raise ThresholdNotMet("订单金额过小，补贴金额不足 1 分")
    sources = ledger.source_accounts_of_approved(voucher.campaign_id, voucher.approved_at)
    lines = _redemption_lines(sources, voucher.face_value_fen, subsidy)

    values = dict(
        voucher_id=voucher.id,
        campaign_id=voucher.campaign_id,
        merchant_id=counter.merchant_id,
        store_id=counter.store_id,
        cashier_id=getattr(cashier, "id", None),
        terminal_id=getattr(terminal, "id", None),
        order_amount_fen=order_amount_fen,
        subsidy_fen=subsidy,
        idempotency_key=idempotency_key or None,
        created_at=now,
    )
    audit_row = audit.row(
        "voucher.redeem", Redemption(), actor=cashier,
        actor_label=None if cashier is not None or terminal is None else f"终端#{terminal.id}",
        before={"voucher_status": status.value},
        after={"voucher_id": voucher.id, "order_amount_fen": order_amount_fen, "subsidy_fen": subsidy,
               "store_id": counter.store_id},
    )
    audit_row["at"] = now  # the record's time is the redemption's
    redemption_id = _record(values, audit_row)
    if redemption_id is None:
        return _replay(_earlier(counter.store_id, idempotency_key), voucher.id, order_amount_fen, code)
    ledger.post(
        EntryKind.REDEMPTION.value, voucher.campaign_id, lines,
        memo=f"核销 {code}", ref=("redemption", redemption_id), actor_id=getattr(cashier, "id", None),
        at=now,  # the entry in the same month as its redemption (a current-month date costs no query)
    )
    # The answer's record, built from what was written: not tracked by the session, no reload.
    return RedemptionResult(Redemption(id=redemption_id, **values), code)


def _record(values: dict, audit_row: dict) -> int | None:
    """Insert the redemption, mark the voucher redeemed and write the audit entry; None, changing
    nothing, when the store has used the idempotency key before (ON CONFLICT: a replay or a
    conflict, answered by the caller, never a 500)."""
    conn = connection()
    if conn.dialect.name == "postgresql":
        params = {f"r_{name}": value for name, value in values.items()} | audit.entry_parameters(audit_row)
        sql, constants = _record_in_one_statement(conn, tuple(values))
        return conn.exec_driver_sql(sql, constants | params).scalar()
    redemption_id = conn.execute(
        cached("insert_redemption", lambda: insert_ignore(Redemption.__table__).returning(Redemption.__table__.c.id)),
        values,
    ).scalar()
    if redemption_id is not None:
        conn.execute(_MARK_REDEEMED, {"voucher_id": values["voucher_id"], "now": values["created_at"]})
        audit.write(audit_row | {"object_id": redemption_id})
    return redemption_id


def _record_in_one_statement(conn, redemption_columns: tuple[str, ...]) -> tuple[str, dict]:
    """PostgreSQL: _record's three writes in one statement, one round trip where they took three;
    the voucher update and the audit insert run only when the redemption row went in."""
    def build():
        redemptions, vouchers = Redemption.__table__, Voucher.__table__
        new = (
            insert_ignore(redemptions).values({name: bindparam(f"r_{name}") for name in redemption_columns})
            .returning(redemptions.c.id).cte("new_redemption")
        )
        marked = (
            update(vouchers)
            .where(vouchers.c.id == bindparam("r_voucher_id"), exists(select(new.c.id)))
            .values(status=VoucherStatus.REDEEMED.value, redeemed_at=bindparam("r_created_at"))
            .cte("marked")
        )
        return new, select(new.c.id), marked

    return audit.in_one_statement(conn, ("redemption", redemption_columns), build)


def _earlier(store_id: int, idempotency_key: str | None) -> Redemption | None:
    if not idempotency_key:
        return None
    return db.session.scalar(
        select(Redemption).where(Redemption.store_id == store_id, Redemption.idempotency_key == idempotency_key)
    )


def _replay(earlier: Redemption | None, voucher_id: int, order_amount_fen: int, code: str) -> RedemptionResult:
    """The first answer to a retried request, or a refusal when the key was used for something else."""
    if earlier is None or (earlier.voucher_id, earlier.order_amount_fen) != (voucher_id, order_amount_fen):
        raise IdempotencyConflict()
    return RedemptionResult(earlier, code, replayed=True)


_NAMED_MERCHANTS: dict[tuple[int, object], frozenset[int] | None] = {}


def forget_named_merchants() -> None:
    """For a database whose ids start over (the test suite empties its tables between tests)."""
    _NAMED_MERCHANTS.clear()


def _named_merchants(campaign_id: int, approved_at: object) -> frozenset[int] | None:
    """The campaign's named merchants (None: any merchant). A campaign's list is fixed once it is
    approved, so it is read once per process and campaign approval (the key includes approved_at)."""
    key = (campaign_id, approved_at)
    if key not in _NAMED_MERCHANTS:
        ids = frozenset(db.session.scalars(
            select(campaign_merchants.c.merchant_id).where(campaign_merchants.c.campaign_id == campaign_id)
        ))
        _NAMED_MERCHANTS[key] = ids or None
    return _NAMED_MERCHANTS[key]


def _redemption_lines(sources: list[ledger.SourceAccounts], face: int, subsidy: int) -> list[tuple[int, int]]:
    """reserved -> spent for the subsidy; whatever of the voucher's reservation is unused (a percentage
    subsidy under its cap, a no-threshold voucher on a smaller order) goes back to available.
    Each funder pays its share, never more than it reserved for this voucher."""
    reserved = ledger.split(sources, face)
    spent = split_within(subsidy, [s.share for s in sources], reserved)
    lines = ledger.transfer_lines(sources, AccountKind.RESERVED, AccountKind.SPENT, subsidy, parts=spent)
    if subsidy < face:
        lines += ledger.transfer_lines(
            sources, AccountKind.RESERVED, AccountKind.AVAILABLE, face - subsidy,
            parts=[r - p for r, p in zip(reserved, spent)],
        )
    return lines


def reverse(
    redemption_id: int,
    *,
    reason: str,
    cashier: User | None = None,
    terminal: Terminal | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Undo a redemption within the window, only at the store that made it: the exact opposite
    postings, and the voucher is usable again."""
    now = now or utcnow()
    counter = _counter_of(cashier, terminal)
    campaign_id = db.session.scalar(select(Redemption.campaign_id).where(Redemption.id == redemption_id))
    if campaign_id is None:
        raise NotFound("找不到该核销记录")
    # The system's lock order (docs/concurrency.md): the campaign, then the redemption, then its voucher.
    campaign = lock_campaign(campaign_id)
    redemption = db.session.scalar(
        select(Redemption).where(Redemption.id == redemption_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if redemption is None:
        raise NotFound("找不到该核销记录")
    if redemption.store_id != counter.store_id:
        raise Forbidden("只能由原核销门店撤销")
    if redemption.reversed_at is not None:
        raise InvalidTransition("该笔核销已撤销")
    if not (reason or "").strip():
        raise InvalidInput("请填写撤销原因")
    window = timedelta(minutes=current_app.config["REVERSAL_WINDOW_MINUTES"])
    if db.session.scalar(select(SettlementItem.id).where(SettlementItem.redemption_id == redemption.id).limit(1)):
        raise InvalidTransition("该笔核销已进入结算批次，不能撤销")
    if now - redemption.created_at > window:
        raise ReversalWindowClosed(f"已超过 {current_app.config['REVERSAL_WINDOW_MINUTES']} 分钟撤销时限，不能撤销")
    if campaign.status_enum is CampaignStatus.CLOSED:
        # Its unused money has gone back to the funders; a revived voucher could never be used.
        raise InvalidTransition("活动已结束，不能撤销核销")
    voucher = db.session.scalar(
        select(Voucher).where(Voucher.id == redemption.voucher_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    assert voucher is not None  # a redemption's voucher is a foreign key, never deleted
    original = ledger.entry_lines("redemption", redemption.id, EntryKind.REDEMPTION)
    lines = [(account_id, -amount) for account_id, amount in original]
    if redemption.subsidy_fen < voucher.face_value_fen:
        # The unused part went back to available; taking it back must not overdraw it (the
        # campaign's lock, taken above, keeps other budget moves out meanwhile).
        sources = ledger.source_accounts(redemption.campaign_id)
        try:
            ledger.require_balance(sources, AccountKind.AVAILABLE, lines)
        except AccountWouldGoNegative:
            raise BudgetExhausted("活动可用预算不足，不能恢复该券的预留金额") from None
    ledger.post(
        EntryKind.REVERSAL.value, redemption.campaign_id, lines, memo=f"撤销核销 {voucher.code}",
        ref=("redemption", redemption.id), actor_id=getattr(cashier, "id", None), at=now,
    )
    voucher.status = VoucherStatus.CLAIMED.value
    voucher.redeemed_at = None
    redemption.reversed_at = now
    redemption.reversal_reason = reason.strip()[:200]
    redemption.reversed_by_id = getattr(cashier, "id", None)
    audit.record(
        "voucher.reverse", redemption, actor=cashier,
        actor_label=None if cashier is not None or terminal is None else f"终端#{terminal.id}",
        before={"voucher_status": "redeemed"}, after={"voucher_status": "claimed", "reason": redemption.reversal_reason},
    )
    for hook in _REVERSAL_HOOKS.values():
        hook(redemption)
    return redemption
