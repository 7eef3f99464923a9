"""`flask seed city-scale`: the city's reference case (docs/design.md §6 Leverage) loaded as a data set.

The numbers come from city_scale_data.generate(seed, scale); this module writes them in one
transaction (the caller commits):

* two staff accounts (经办, 审批) made by the accounts service, who create and approve the campaigns;
* the campaigns, their funding sources and products as ORM rows (a handful), dated when they were
  drafted. Not through campaigns.services.create_campaign: it refuses, rightly, a 2020 or 2021
  campaign under a measure of the 2022 policy (its term starts on 2022-09-05);
* the life of each campaign replayed in time order through the campaign services, each told when it
  happened (`at`): submitted, approved (funding each source by posting; the plan check applies, with
  a reason on record), its rounds scheduled and opened (each reserving its whole face value, checked
  against the available balance), and closed at the end (the unused money back to each funder).
  Between those, the money of the vouchers moves in one balanced journal entry per round and local
  day, through voucher.ledger.services.post: redemptions (reserved -> spent, ref "bulk_redemptions")
  and the expiry of unused vouchers on the day their validity ended (reserved -> available). Spent
  money is not settled: the historical payouts are not part of the case, so it stays in "spent";
* merchants (one store and one POS terminal each), citizens, vouchers, redemptions and the daily
  sales panel in bulk (seed/bulk.py), never one ORM object per row: the rounds open without minting
  (`mint=False`), and their vouchers are written here already claimed, redeemed or expired;
* the planted truth (synthetic_truths), which also marks the load so a second one is refused.

verify_ledger() is clean after a load; the test suite checks it.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import func, select, text

from seed import bulk
from seed import city_scale_data as gen
from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.analytics import panel
from voucher.analytics.models import LEVERAGE_TRUTH, SyntheticTruth
from voucher.campaigns import services as campaign_services
from voucher.campaigns.models import Campaign, CampaignStatus, FundingSource, Measure, Release, VoucherProduct
from voucher.core import audit, field_crypto
from voucher.core.clock import utcnow
from voucher.core.db import db
from voucher.core.errors import DomainError
from voucher.core.permissions import Role
from voucher.core.progress import Progress, silent
from voucher.ledger import services as ledger
from voucher.ledger.models import AccountKind, EntryKind, JournalEntry
from voucher.merchants.models import BANK_ACCOUNT_PURPOSE, Merchant
from voucher.vouchers import closing, releases
from voucher.vouchers.models import Citizen, Voucher, VoucherStatus

TRUTH = "city_scale"
MAKER, APPROVER = "city_scale_maker", "city_scale_approver"
#: kept on each campaign by the plan check: the case's campaigns predate the 2022 policy's money plan
PLAN_OVERRIDE_REASON = "城市规模参考数据集（合成）：回放 2020-2022 年的历史活动，不计入 2022 年政策的资金计划"
BULK_TABLES = ("merchants", "stores", "store_terminals", "citizens", "vouchers", "redemptions", "merchant_daily_sales")
_BANKS = ("中国工商银行连云港分行", "中国银行连云港分行", "中国建设银行连云港分行", "江苏银行连云港分行", "中国农业银行连云港分行")


class AlreadyLoaded(DomainError):
    code = "city_scale_loaded"
    status = 409
    default_message = "城市规模数据集已经载入，不再重复载入"


class DatabaseNotEmpty(DomainError):
    code = "database_not_empty"
    status = 409
    default_message = "数据库中已有活动、商户或券；城市规模数据集默认只载入空库，确需追加请使用 --append"


@dataclass
class LoadSummary:
    seed: int
    scale: float
    campaigns: int = 0
    rounds: int = 0
    merchants: int = 0
    comparables: int = 0
    citizens: int = 0
    vouchers: int = 0
    redemptions: int = 0
    issued_fen: int = 0
    subsidy_fen: int = 0
    driven_fen: int = 0
    sales_rows: int = 0
    journal_entries: int = 0
    seconds: float = 0.0
    #: where the time went, in seconds, by step
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def leverage(self) -> float:
        return self.driven_fen / self.issued_fen if self.issued_fen else 0.0


def check_can_load(append: bool) -> None:
    truth = db.session.scalar(select(SyntheticTruth).where(SyntheticTruth.name == TRUTH))
    if truth is not None:
        raise AlreadyLoaded(
            f"城市规模数据集已于 {truth.created_at:%Y-%m-%d %H:%M}（UTC）载入（种子 {truth.value.get('seed')}，"
            f"规模 {truth.value.get('scale')}），不再重复载入"
        )
    if not append:
        for model in (Campaign, Merchant, Voucher, Citizen):
            if db.session.scalar(select(model.id).limit(1)) is not None:
                raise DatabaseNotEmpty()


def load_city_scale(seed: int = gen.DEFAULT_SEED, scale: float = 1.0, *, append: bool = False,
                    progress: Progress = silent) -> LoadSummary:
    """Generate and write the data set in the session's transaction; the caller commits. `progress`
    hears of each step as it ends (`flask seed city-scale` prints it to stderr)."""
    started = time.perf_counter()
    summary = LoadSummary(seed=seed, scale=scale)
    steps = len(STEP_LABELS) - (0 if bulk.can_defer_foreign_keys() else 1) - (0 if bulk.dialect() == "postgresql" else 1)
    clock = _Stopwatch(summary, progress, steps)
    check_can_load(append)
    # The marker goes in first: a concurrent second load waits on its unique name, then fails.
    marker = SyntheticTruth(name=TRUTH, value={"seed": seed, "scale": scale, "status": "loading"})
    db.session.add(marker)
    db.session.flush()  # claim the name now (see above)
    data = gen.generate(seed, scale)
    clock.lap("generate")

    bulk.lock(BULK_TABLES)
    maker = create_user(MAKER, secrets.token_urlsafe(18), Role.BUREAU_MAKER, display_name="城市数据集（经办）")
    approver = create_user(APPROVER, secrets.token_urlsafe(18), Role.BUREAU_APPROVER, display_name="城市数据集（审批）")
    campaigns = _campaigns(data, maker)
    clock.lap("campaigns")

    # The campaigns' lives and their money first: the rounds they schedule are the vouchers' rounds.
    entries_before = db.session.scalar(select(func.count(JournalEntry.id)))
    rounds = _replay(data, campaigns, maker, approver)
    summary.journal_entries = db.session.scalar(select(func.count(JournalEntry.id))) - entries_before
    clock.lap("ledger")

    deferred = bulk.can_defer_foreign_keys()
    if deferred:
        bulk.defer_foreign_keys(True)
    first = {table: bulk.next_id(table) for table in BULK_TABLES}
    merchant_ids = _merchants(data, first, maker)
    clock.lap("merchants")
    _citizens(data, first)
    clock.lap("citizens")
    voucher_ids = _vouchers(data, first, campaigns, rounds)
    clock.lap("vouchers")
    _redemptions(data, first, campaigns, voucher_ids, merchant_ids)
    clock.lap("redemptions")
    summary.sales_rows = _sales(data, first, merchant_ids)
    clock.lap("sales")
    if deferred:
        bulk.defer_foreign_keys(False)
        problems = [p for name in BULK_TABLES for p in bulk.check_foreign_keys(db.metadata.tables[name], first[name])]
        if problems:
            raise DomainError("批量载入的数据外键不一致：" + "；".join(problems))
        clock.lap("foreign keys")
    bulk.move_sequences(BULK_TABLES)

    faces = np.asarray([c.face_yuan * 100 for c in gen.CAMPAIGNS], dtype=np.int64)
    summary.campaigns = len(campaigns)
    summary.rounds = sum(len(r) for r in rounds)
    summary.merchants, summary.comparables = data.plan.merchants, data.plan.comparables
    summary.citizens = data.plan.citizens
    summary.vouchers = len(data.v_code)
    summary.redemptions = len(data.r_voucher)
    summary.issued_fen = int(faces[data.v_campaign].sum())
    summary.subsidy_fen = int(data.r_subsidy.sum())
    summary.driven_fen = int(data.r_order.sum())
    marker.value = _truth_summary(data, summary, campaigns)
    db.session.add(SyntheticTruth(name=LEVERAGE_TRUTH, value=_leverage_truth(data, campaigns, merchant_ids)))
    audit.record("city_scale.load", marker, actor_label="system", after={
        "seed": seed, "scale": scale, "vouchers": summary.vouchers, "issued_fen": summary.issued_fen,
        "driven_fen": summary.driven_fen, "merchants": summary.merchants + summary.comparables,
    })
    db.session.flush()  # the truth rows, before the statistics below
    if bulk.dialect() == "postgresql":
        # Fresh statistics, so the first reports (and verify_ledger) plan for millions of rows.
        for table in BULK_TABLES + ("journal_entries", "postings"):
            db.session.execute(text(f"ANALYZE {table}"))
        clock.lap("analyze")
    panel.refresh_leverage(full=True)  # the page answers at once over the loaded data
    clock.lap("leverage rollup")
    summary.seconds = time.perf_counter() - started
    return summary


#: the steps load_city_scale() times (summary.steps) and reports, as a person reads them
STEP_LABELS = {
    "generate": "生成数据", "campaigns": "活动", "ledger": "活动资金与场次入账", "merchants": "商户", "citizens": "市民",
    "vouchers": "消费券", "redemptions": "核销", "sales": "商户日销售额", "foreign keys": "外键检查",
    "analyze": "统计信息", "leverage rollup": "杠杆率预聚合与因果面板",
}


class _Stopwatch:
    def __init__(self, summary: LoadSummary, progress: Progress, steps: int) -> None:
        self.summary = summary
        self.last = time.perf_counter()
        self.progress, self.steps = progress, steps

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.summary.steps[step] = round(now - self.last, 2)
        self.last = now
        self.progress(f"{STEP_LABELS.get(step, step)}完成（{self.summary.steps[step]:.1f} 秒）",
                      len(self.summary.steps), self.steps)


def _local(day: date, hour: int, minute: int = 0) -> int:
    return gen.local_day_start_us(day) + (hour * 3600 + minute * 60) * gen.US


def _at(us: int):
    return gen.to_datetime(us)


# ---------------------------------------------------------------------------------------------
# Campaigns (a handful of ORM rows)


def _campaigns(data: gen.CityData, maker: User) -> list[Campaign]:
    """The campaigns as their maker drafted and submitted them, three weeks before each starts."""
    measures = {m.number: m for m in db.session.scalars(select(Measure))}
    campaigns = []
    for c, spec in enumerate(gen.CAMPAIGNS):
        measure = measures.get(spec.measure)
        if measure is None:
            raise DomainError(f"缺少第 {spec.measure} 条政策措施，请先运行 flask seed measures")
        budget_fen = data.plan.budgets_fen[c]
        shares = sum(share for _, _, share in spec.sources)
        created = _local(spec.valid_from - timedelta(days=21), 9, 30)
        campaign = Campaign(
            measure_id=measure.id, name=spec.name, status=CampaignStatus.DRAFT.value, instrument="voucher",
            description=f"城市规模参考数据集（合成，种子 {data.plan.seed}）：{spec.label}，领取后 {gen.VALIDITY_DAYS} 天内有效",
            categories=list(spec.categories), districts=list(spec.districts), valid_from=spec.valid_from,
            valid_until=spec.valid_until, validity_days=gen.VALIDITY_DAYS, planned_quantity=data.plan.counts[c],
            created_by_id=maker.id, created_at=_at(created),
        )
        campaign.funding_sources = [
            FundingSource(kind=kind, name=name, amount_fen=budget_fen * share // shares, status="in_hand", share=share)
            for kind, name, share in spec.sources
        ]
        campaign.product = VoucherProduct(kind="fixed", face_value_fen=spec.face_yuan * 100,
                                          threshold_fen=spec.threshold_yuan * 100)
        db.session.add(campaign)
        db.session.flush()  # the audit entry needs the new id
        audit.record("campaign.create", campaign, actor=maker, after={"name": campaign.name, "budget_fen": budget_fen},
                     at=_at(created))
        campaign_services.submit_for_approval(campaign, maker, at=_at(created + 3600 * gen.US))
        campaigns.append(campaign)
    return campaigns


# ---------------------------------------------------------------------------------------------
# Bulk rows


def _merchants(data: gen.CityData, first: dict[str, int], maker: User) -> np.ndarray:
    """Merchants, one store and one POS terminal each. Returns merchant id by merchant index."""
    n = len(data.merchant_name)
    ids = np.arange(first["merchants"], first["merchants"] + n)
    store_ids = np.arange(first["stores"], first["stores"] + n)
    onboarded = _local(date(2020, 3, 1), 9) + (np.arange(n) * (40 * gen.DAY_US // max(n, 1)))
    names = np.asarray(data.merchant_name)
    bulk.insert("merchants", (
        bulk.ints("id", ids), bulk.texts("name", names), bulk.texts("uscc", np.asarray(data.merchant_uscc)),
        bulk.texts("category", np.asarray(gen.CATEGORIES)[data.merchant_category]), bulk.texts("status", "approved"),
        bulk.texts("size_class", np.asarray(gen.SIZE_CLASSES)[data.merchant_size]),
        bulk.texts("bank_account_name", names), bulk.texts("bank_name", np.asarray(_BANKS)[np.arange(n) % len(_BANKS)]),
        bulk.texts("bank_account_no", _encrypted_accounts(n)),
        bulk.timestamps("created_at", onboarded),
    ))
    districts = np.asarray(gen.DISTRICTS)[data.merchant_district]
    bulk.insert("stores", (
        bulk.ints("id", store_ids), bulk.ints("merchant_id", ids),
        bulk.texts("name", np.char.add(names, "（主店）")), bulk.texts("district", districts),
        bulk.texts("address", np.asarray([f"{d}示例路 {i % 300 + 1} 号" for i, d in enumerate(districts.tolist())])),
    ))
    # A terminal per store, for the has_actor rule. Its token was never issued: the hash is random,
    # so nothing can authenticate as these terminals.
    hashes = gen._hex_strings(np.random.default_rng(data.plan.seed + 1), n)
    bulk.insert("store_terminals", (
        bulk.ints("id", np.arange(first["store_terminals"], first["store_terminals"] + n)),
        bulk.ints("store_id", store_ids), bulk.texts("label", "收银终端（数据集）"), bulk.texts("token_hash", hashes),
        bulk.texts("token_prefix", hashes.astype("S8")), bulk.ints("created_by_id", maker.id),
        bulk.timestamps("created_at", onboarded),
    ))
    return ids


def _encrypted_accounts(n: int) -> np.ndarray:
    """Account numbers as the column stores them: bulk rows skip the model's type, so they are
    encrypted here, under the active key, as any write through the model would be."""
    keys, active = field_crypto.active_ring()
    return np.asarray([field_crypto.encrypt(f"6217{7_000_000_000_000 + i:015d}", BANK_ACCOUNT_PURPOSE, keys, active)
                       for i in range(n)])


def _citizens(data: gen.CityData, first: dict[str, int]) -> None:
    n = data.plan.citizens
    joined = np.full(n, _local(date(2020, 4, 30), 12), dtype=np.int64)
    np.minimum.at(joined, data.v_citizen, data.v_claimed - 60 * gen.US)  # signed in just before a first claim
    bulk.insert("citizens", (
        bulk.ints("id", np.arange(first["citizens"], first["citizens"] + n)),
        bulk.texts("identity_hash", data.citizen_hash), bulk.timestamps("created_at", joined),
    ))


def _vouchers(data: gen.CityData, first: dict[str, int], campaigns: list[Campaign],
              rounds: list[list[Release]]) -> np.ndarray:
    n = len(data.v_code)
    ids = np.arange(first["vouchers"], first["vouchers"] + n)
    release_ids = np.asarray([r.id for campaign_rounds in rounds for r in campaign_rounds], dtype=np.int64)
    campaign_ids = np.asarray([c.id for c in campaigns], dtype=np.int64)
    faces = np.asarray([c.face_yuan * 100 for c in gen.CAMPAIGNS], dtype=np.int64)
    redeemed_at = np.zeros(n, dtype=np.int64)
    redeemed_at[data.r_voucher] = data.r_at
    status = np.where(data.v_redeemed, VoucherStatus.REDEEMED.value, VoucherStatus.EXPIRED.value)
    bulk.insert("vouchers", (
        bulk.ints("id", ids), bulk.texts("code", data.v_code), bulk.ints("release_id", release_ids[data.v_round]),
        bulk.ints("campaign_id", campaign_ids[data.v_campaign]), bulk.ints("face_value_fen", faces[data.v_campaign]),
        bulk.texts("status", status), bulk.ints("citizen_id", data.v_citizen + first["citizens"]),
        bulk.ints("claim_slot", 1), bulk.timestamps("claimed_at", data.v_claimed),
        bulk.timestamps("valid_from", data.v_valid_from), bulk.timestamps("valid_until", data.v_valid_until),
        bulk.timestamps("redeemed_at", redeemed_at, null=~data.v_redeemed),
    ))
    return ids


def _redemptions(data: gen.CityData, first: dict[str, int], campaigns: list[Campaign], voucher_ids: np.ndarray,
                 merchant_ids: np.ndarray) -> None:
    n = len(data.r_voucher)
    campaign_ids = np.asarray([c.id for c in campaigns], dtype=np.int64)
    # merchant i has store first["stores"] + i and terminal first["store_terminals"] + i
    bulk.insert("redemptions", (
        bulk.ints("id", np.arange(first["redemptions"], first["redemptions"] + n)),
        bulk.ints("voucher_id", voucher_ids[data.r_voucher]),
        bulk.ints("campaign_id", campaign_ids[data.v_campaign[data.r_voucher]]),
        bulk.ints("merchant_id", merchant_ids[data.r_merchant]),
        bulk.ints("store_id", data.r_merchant + first["stores"]),
        bulk.ints("terminal_id", data.r_merchant + first["store_terminals"]),
        bulk.ints("order_amount_fen", data.r_order), bulk.ints("subsidy_fen", data.r_subsidy),
        bulk.timestamps("created_at", data.r_at),
    ))


def _sales(data: gen.CityData, first: dict[str, int], merchant_ids: np.ndarray) -> int:
    n = len(data.s_sales)
    return bulk.insert("merchant_daily_sales", (
        bulk.ints("id", np.arange(first["merchant_daily_sales"], first["merchant_daily_sales"] + n)),
        bulk.ints("merchant_id", merchant_ids[data.s_merchant]), bulk.dates("day", data.s_day),
        bulk.ints("sales_fen", data.s_sales), bulk.texts("source", "synthetic"),
    ))


# ---------------------------------------------------------------------------------------------
# The campaigns' lives and their money, in time order


def _replay(data: gen.CityData, campaigns: list[Campaign], maker: User, approver: User) -> list[list[Release]]:
    """Every step of the case, in the order it happened (so no balance is ever overdrawn on the way,
    and entry ids follow time): the campaign services for approving, scheduling and opening rounds and
    closing, each dated when it happened; one posting per round and local day for the money of the
    vouchers redeemed or expired that day. Returns the rounds, per campaign."""
    events: list[tuple[int, int, Callable[..., None], tuple]] = []  # (when, tie-break, step, arguments)
    rounds: list[list[Release]] = [[] for _ in campaigns]

    def at(when: int, step: Callable[..., None], *arguments) -> None:
        events.append((int(when), len(events), step, arguments))

    def approve(campaign: Campaign, when: datetime) -> None:
        campaign_services.approve(campaign.id, approver, plan_override_reason=PLAN_OVERRIDE_REASON, at=when)

    def schedule(c: int, r: int, when: datetime) -> None:
        opens, quantity = data.rounds[c][r]
        rounds[c].append(releases.create_release(
            campaigns[c], name=f"第{r + 1}轮", quantity=quantity, per_person_limit=1, opens_at=_at(opens),
            actor=maker, at=when,
        ))

    def open_round(c: int, r: int, when: datetime) -> None:
        releases.open_release(rounds[c][r].id, maker, at=when, mint=False)  # the vouchers come in bulk

    def redeemed(c: int, r: int, count: int, day: int, when: datetime) -> None:
        release = rounds[c][r]
        _post_vouchers(campaigns[c], EntryKind.REDEMPTION, AccountKind.SPENT, count, when,
                       memo=f"批量核销：{release.name} {date(1970, 1, 1) + timedelta(days=day):%Y-%m-%d} 共 {count} 张",
                       ref=("bulk_redemptions", release.id))

    def expired(c: int, r: int, count: int, when: datetime) -> None:
        _post_vouchers(campaigns[c], EntryKind.EXPIRY, AccountKind.AVAILABLE, count, when,
                       memo=f"券到期未使用：{count} 张（{rounds[c][r].name}）", ref=("campaign", campaigns[c].id))

    def close(campaign: Campaign, when: datetime) -> None:
        # Every voucher has been redeemed or has expired by now (all were claimed; their rows come in
        # bulk afterwards): nothing is withdrawn, and the unused money goes back to each funder.
        closing.close_campaign(campaign.id, approver, "活动期满", at=when)

    # redemptions per round and local day, dated at the day's last one; unused vouchers per round and
    # local day their validity ended, dated just after it ended
    redemption_groups = _groups(data.v_round[data.r_voucher], gen.local_day_index(data.r_at), data.r_at)
    unused = ~data.v_redeemed
    expiry_groups = _groups(data.v_round[unused], gen.local_day_index(data.v_valid_until[unused]),
                            data.v_valid_until[unused])
    g = 0  # rounds are numbered across campaigns
    for c, (spec, campaign) in enumerate(zip(gen.CAMPAIGNS, campaigns)):
        at(_local(spec.valid_from - timedelta(days=10), 15), approve, campaign)
        for r, (opens, _quantity) in enumerate(data.rounds[c]):
            at(opens - 3 * gen.DAY_US, schedule, c, r)
            at(opens, open_round, c, r)
            for day, count, last in redemption_groups.get(g, []):
                at(last, redeemed, c, r, count, day)
            for _day, count, last in expiry_groups.get(g, []):
                at(last + gen.US, expired, c, r, count)
            g += 1
        at(_local(spec.valid_until + timedelta(days=1), 10), close, campaign)
    for when, _, step, arguments in sorted(events, key=lambda e: (e[0], e[1])):
        step(*arguments, _at(when))
    return rounds


def _groups(rounds: np.ndarray, days: np.ndarray, times: np.ndarray) -> dict[int, list[tuple[int, int, int]]]:
    """{round: [(local day, count, latest time), ...]} in one sort."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    if not len(rounds):
        return out
    keys = rounds.astype(np.int64) * 100_000 + days
    order = np.argsort(keys, kind="stable")
    keys, times = keys[order], times[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    latest = np.maximum.reduceat(times, starts)
    for key, count, last in zip(keys[starts].tolist(), counts.tolist(), latest.tolist()):
        out.setdefault(key // 100_000, []).append((key % 100_000, count, last))
    return out


def _post_vouchers(campaign: Campaign, kind: EntryKind, to: AccountKind, count: int, when: datetime, *, memo: str,
                   ref: tuple[str, int]) -> None:
    """The face value of `count` of the campaign's vouchers out of reserved, split between its funders."""
    sources = ledger.source_accounts(campaign.id)
    lines = ledger.voucher_lines(sources, AccountKind.RESERVED, to, campaign.product.face_value_fen, count)
    ledger.post(kind.value, campaign.id, lines, memo=memo, ref=ref, at=when)


# ---------------------------------------------------------------------------------------------
# The truth


def _truth_summary(data: gen.CityData, summary: LoadSummary, campaigns: list[Campaign]) -> dict:
    return {
        "seed": data.plan.seed, "scale": data.plan.scale, "status": "loaded", "loaded_at": utcnow().isoformat(),
        "vouchers": summary.vouchers, "issued_fen": summary.issued_fen, "driven_fen": summary.driven_fen,
        "subsidy_fen": summary.subsidy_fen, "redemptions": summary.redemptions,
        "merchants": summary.merchants, "comparables": summary.comparables, "citizens": summary.citizens,
        "campaign_ids": [c.id for c in campaigns], "leverage_on_issued": round(summary.leverage, 2),
    }


def _leverage_truth(data: gen.CityData, campaigns: list[Campaign], merchant_ids: np.ndarray) -> dict:
    def iso(day: int) -> str:
        return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()

    return {
        "value": gen.TRUE_INCREMENTAL_LEVERAGE,
        "unit": "元增量销售额/元已付补贴",
        "definition": (
            "合成数据：参与商户在活动期内每个自然日的销售额 = 反事实销售额 + 真实值 × 当日在该商户核销的补贴额。"
            "反事实销售额 = 商户水平 × 星期系数 × (1 + 噪声)，活动前与活动期均为整周，星期系数相互抵消；"
            "对照商户（符合活动行业、区县但未参与）只有反事实销售额。"
        ),
        "noise_sd": gen.NOISE,
        "sales_days_raised_to_voucher_orders": data.sales_clipped,
        "panel": [
            {
                "campaign_id": campaigns[p["campaign"]].id,
                "pre": [iso(p["pre"][0]), iso(p["pre"][1])],
                "during": [iso(p["during"][0]), iso(p["during"][1])],
                "post": [iso(p["post"][0]), iso(p["post"][1])],
                "treated_merchant_ids": merchant_ids[p["treated"]].tolist(),
                "comparable_merchant_ids": merchant_ids[p["comparable"]].tolist(),
            }
            for p in data.panel
        ],
    }
