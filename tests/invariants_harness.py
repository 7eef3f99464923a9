"""The money soak (issue 14): many actors at once on every money flow, through the product's own entry
points, then the money's invariants checked by SQL written here, not by the product's services.

Used by tests/test_money_invariants.py (a short seeded run in the suite) and benchmarks/money_soak.py
(longer runs, several seeds, with figures). PostgreSQL only: SQLite lets one writer in at a time, so
nothing interleaves there.

A run:

1. build_world(): campaigns of every kind (co-funded 满减 vouchers, a percentage subsidy with a cap, a
   lottery with a per-person limit, vouchers valid one day from the claim), merchants with stores,
   cashiers and terminals, staff for every actor thread, citizens signed in by one-time code, a channel
   partner, and some history: redemptions of the last three days for settlement to batch, and claimed
   vouchers whose validity runs out while the run is under way.
2. run_soak(): `threads` actors, each with its own signed-in clients (bureau maker and approver,
   finance officer, cashier, store terminals, the citizens' phones), released together by a barrier,
   each performing `ops` operations drawn by its own seeded RNG from OPERATIONS, a weighted table of
   small functions. Every third operation is a rush (RUSHES): all threads wait for each other, then
   act at once on the same campaign with the same choices (one voucher at every terminal, a close
   while the counters redeem, a draw while its entrants claim, approvers clearing the list together).
   Days pass during the run, at rushes, with every thread waiting: the day's redemptions become
   settleable, vouchers run out, the month ends and is closed. Every answer is recorded: operation,
   actor, HTTP status, the ids it returned, when it started and ended. Meanwhile an observer checks
   the invariants on consistent snapshots (REPEATABLE READ): a state that broke them for a moment is
   caught too.
3. check(): the invariants on the final state, `verify_ledger()` besides, every acknowledged action
   found in the database by what its answer returned, and not one 5xx.

The seed fixes each thread's sequence of operations; the interleaving is whatever the machine makes
of it. A failure prints the seed, the answers by operation and status, and the problems; the same
seed replays the same workload. Defects found and not fixed yet are listed in KNOWN_DEFECTS.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from voucher.core.errors import ConcurrentChange
from voucher.merchants.terminals import issue_terminal_token

#: Defects the soak has found that are not fixed yet: counted and shown in the summary, not failed on,
#: unless MONEY_SOAK_STRICT=1. Delete an entry once its fix lands; from then on it fails the run.
KNOWN_DEFECTS: dict[str, str] = {}

KNOWN = "[known defect: "  # how invariant_problems() marks a violation that a KNOWN_DEFECTS entry explains

PASSWORD = "secret-pass-1"  # tests/factories.PASSWORD: the base world's users sign in with it too
PARTNER_KEY = "pk_soak"
STORES = ("food", "lianyun", "car", "donghai")  # the last two are never eligible: refusals on purpose


# Settings, world, outcomes -------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakSettings:
    seed: int = 1
    threads: int = 8
    ops: int = 50  # per thread
    citizens: int = 16
    #: seconds between two snapshot checks by the observer during the run; 0 switches it off
    observe_every: float = 0.25
    #: the validity of the "one day" vouchers claimed at set-up ends over this many seconds of the run
    expiry_spread: float = 6.0
    #: every rush_every-th operation is a rush: all threads wait for each other, then perform the same
    #: operation with the same random choices (the same voucher, round, citizen, campaign, day), the
    #: collisions a flash crowd or two officers on one page make; 0 switches rushes off
    rush_every: int = 3
    #: days that pass during the run: the app's clock moves on a day at evenly spaced rushes, while
    #: every thread waits at the rush's barrier (nothing in flight), so the day's redemptions become
    #: settleable, vouchers expire, and a month can end and be closed while people go on working
    days: int = 3
    #: budgets, round sizes and budget changes are this many times the suite's (a longer run needs more)
    scale: int = 1

    @classmethod
    def from_env(cls, **defaults) -> SoakSettings:
        """MONEY_SOAK_SEED, MONEY_SOAK_THREADS, MONEY_SOAK_OPS override the defaults given."""
        base = cls(**defaults)
        return cls(
            seed=int(os.environ.get("MONEY_SOAK_SEED", base.seed)),
            threads=int(os.environ.get("MONEY_SOAK_THREADS", base.threads)),
            ops=int(os.environ.get("MONEY_SOAK_OPS", base.ops)),
            citizens=base.citizens, observe_every=base.observe_every, expiry_spread=base.expiry_spread,
            rush_every=base.rush_every, days=base.days, scale=base.scale,
        )


@dataclass
class World:
    """Ids and secrets the actors start from (what each of them would see on their pages)."""

    campaigns: dict[str, int]  # label -> id
    sources: dict[int, list[int]]  # campaign id -> its funding source ids
    initial_source_fen: dict[int, int]  # funding source id -> amount when approved
    stores: dict[str, int]  # STORES label -> store id
    phones: list[str]  # citizen index -> phone
    citizen_ids: list[int]
    citizen_cookies: list[str]  # the session cookie of each citizen's signed-in phone
    terminals: dict[tuple[int, str], str]  # (thread, store label) -> bearer token
    users: dict[str, int]  # username -> id
    partner_secret: str
    releases: list[tuple[int, int, str]]  # (release id, campaign id, mode)
    vouchers: list[tuple[str, int]]  # (code, campaign id): claimed at set-up
    redemptions: list[dict]  # made at set-up (history)


@dataclass
class Outcome:
    """One operation as its actor saw it."""

    op: str = ""
    actor: str = ""
    thread: int = -1
    status: int = 0
    #: ok (acknowledged), refused (a definite no), conflict (409 "someone else at the same time"),
    #: error (a 5xx, an exception, or a job that failed: what a person would see as a breakdown),
    #: defect (a wrong answer of a kind named in KNOWN_DEFECTS, by ids["defect"])
    kind: str = "ok"
    message: str = ""
    ids: dict = field(default_factory=dict)
    #: the campaigns it touched; None for a job over every campaign
    campaigns: frozenset[int] | None = frozenset()
    #: the rush it was part of (see SoakSettings.rush_every), if any
    rush: int | None = None
    started: float = 0.0
    ended: float = 0.0


@dataclass
class SoakRun:
    settings: SoakSettings
    outcomes: list[Outcome]
    seconds: float
    snapshots: int  # consistent snapshots checked by the observer during the run
    snapshot_problems: list[str]
    ended_at: datetime  # the app's clock when the last actor finished
    plans: list[list[str]]  # each thread's operations as drawn (one that found nothing to act on did another)
    state: dict[str, int] = field(default_factory=dict)  # what the database holds afterwards (tally())
    #: violations of the final state or of a snapshot that a KNOWN_DEFECTS entry explains (by check())
    known: Counter = field(default_factory=Counter)
    days: int = 0  # days that passed during the run


class Registry:
    """What the actors have learnt from acknowledged answers (and set-up), shared between threads:
    the rounds, vouchers, redemptions and budget requests they can act on next."""

    def __init__(self, world: World) -> None:
        self.lock = threading.Lock()
        self.releases = list(world.releases)
        self.vouchers = list(world.vouchers)
        self.redemptions = list(world.redemptions)
        self.changes: list[tuple[int, int]] = []  # (budget change id, campaign id)

    def add(self, name: str, item) -> None:
        with self.lock:
            getattr(self, name).append(item)


# Set-up -------------------------------------------------------------------------------------------


def _merchant(name: str, uscc: str, category: str, district: str):
    from voucher.core.db import db
    from voucher.merchants.models import Merchant, Store

    # Settlement details complete, as an approved merchant's are: a payout file needs them.
    merchant = Merchant(name=name, uscc=uscc, category=category, status="approved", bank_account_name=name,
                        bank_name="港城银行", bank_account_no=f"62220200{uscc[-8:]}")
    merchant.stores.append(Store(name=name + "门店", district=district))
    db.session.add(merchant)
    db.session.flush()  # the store's id, for its cashiers and terminals
    return merchant


def _campaign(base, name: str, sources, *, face: int, threshold: int = 0, categories=("餐饮", "零售"),
              instrument: str = "voucher", percent_bp: int | None = None, validity_days: int | None = None,
              per_person_limit: int | None = None):
    """An approved campaign of measure 1, valid from five days ago for a month (history fits in it)."""
    from sqlalchemy import select

    from voucher.campaigns import services as campaigns
    from voucher.campaigns.models import Measure
    from voucher.core.clock import local_today
    from voucher.core.db import db

    measure = db.session.scalar(select(Measure).where(Measure.number == 1))
    campaign = campaigns.create_campaign(campaigns.CampaignInput(
        measure_id=measure.id, name=name, valid_from=local_today() - timedelta(days=5),
        valid_until=local_today() + timedelta(days=30), sources=sources, instrument=instrument,
        face_value_fen=face, threshold_fen=threshold, percent_bp=percent_bp, categories=list(categories),
        districts=["海州区", "连云区"], validity_days=validity_days, per_person_limit=per_person_limit,
    ), base.maker)
    campaigns.submit_for_approval(campaign, base.maker)
    # The soak's campaigns are small; a reason in case the measure's plan is used up (plan_check).
    campaigns.approve(campaign.id, base.approver, plan_override_reason="压测活动，不占用政策资金计划")
    return campaign


def _round(base, campaign, name: str, quantity: int, per_person_limit: int = 1, mode: str = "first_come"):
    """A round opening five minutes ago, opened (its money reserved, its vouchers minted)."""
    from voucher.core.clock import utcnow
    from voucher.vouchers import releases

    release = releases.create_release(campaign, name=name, quantity=quantity, per_person_limit=per_person_limit,
                                      opens_at=utcnow() - timedelta(minutes=5), actor=base.maker, mode=mode)
    releases.open_release(release.id, base.maker)
    return release


def build_world(app, settings: SoakSettings) -> World:
    """Everything the run starts from, made through the product's services in the caller's app
    context, as tests/factories.py does, and committed."""
    from sqlalchemy import select

    from tests.factories import make_world
    from voucher.accounts.models import User
    from voucher.accounts.services import create_user
    from voucher.api import auth
    from voucher.api.models import Partner
    from voucher.campaigns.services import SourceInput
    from voucher.core.clock import local_day_start_utc, local_today, utcnow
    from voucher.core.db import db
    from voucher.core.permissions import Role
    from voucher.counter.redemption import redeem
    from voucher.vouchers import citizens
    from voucher.vouchers.services import claim

    base = make_world()  # maker, approver, finance, cashier at 港城老味道餐厅 (餐饮, 海州区), ...
    lianyun = _merchant("连云区便民超市", "91320703MA5LYG0051", "零售", "连云区")
    stores = {"food": base.merchant.stores[0].id, "lianyun": lianyun.stores[0].id,
              "car": base.other_merchant.stores[0].id, "donghai": base.cashier_donghai.store_id}
    lianyun_cashier = create_user("cashier_lianyun", PASSWORD, Role.CASHIER, merchant_id=lianyun.id,
                                  store_id=stores["lianyun"])
    for i in range(settings.threads):
        create_user(f"soak_maker{i}", PASSWORD, Role.BUREAU_MAKER)
        create_user(f"soak_approver{i}", PASSWORD, Role.BUREAU_APPROVER)
        create_user(f"soak_finance{i}", PASSWORD, Role.FINANCE)
        store = ("food", "lianyun")[i % 2]
        merchant_id = base.merchant.id if store == "food" else lianyun.id
        create_user(f"soak_cashier{i}", PASSWORD, Role.CASHIER, merchant_id=merchant_id, store_id=stores[store])
    terminals = {(i, label): issue_terminal_token(store_id, f"压测终端{i}", base.approver.id)[1]
                 for i in range(settings.threads) for label, store_id in stores.items()}
    db.session.add(Partner(name="压测渠道", key_id=PARTNER_KEY))

    # Small budgets, so that rounds, cuts and moves run into "not enough money" during the run.
    k = settings.scale
    cofunded = _campaign(base, "餐饮零售券（银政共担）",
                         [SourceInput("municipal_finance", "市财政", 1_000_00 * k, share=2),
                          SourceInput("bank", "港城银行", 500_00 * k, share=1)],
                         face=20_00, threshold=100_00, per_person_limit=3)
    subsidy = _campaign(base, "零售商品补贴 10%", [SourceInput("municipal_finance", "市财政", 1_200_00 * k)],
                        face=50_00, instrument="purchase_subsidy", percent_bp=1000, categories=("零售",),
                        per_person_limit=2)
    lottery = _campaign(base, "文旅摇号券", [SourceInput("district_finance", "海州区财政", 900_00 * k)],
                        face=30_00, threshold=150_00, per_person_limit=1)
    one_day = _campaign(base, "限时券（领取后 1 天有效）", [SourceInput("municipal_finance", "市财政", 600_00 * k)],
                        face=10_00, threshold=50_00, validity_days=1)
    # Two first-come rounds open in the campaigns with a per-person limit: the campaign's limit
    # counts across its rounds, the round's own limit within each.
    rounds = {
        "cofunded": _round(base, cofunded, "第一轮", 15 * k, per_person_limit=2),
        "cofunded 2": _round(base, cofunded, "第二轮", 10 * k, per_person_limit=2),
        "subsidy": _round(base, subsidy, "第一轮", 8 * k),
        "subsidy 2": _round(base, subsidy, "第二轮", 6 * k),
        "lottery first come": _round(base, lottery, "先到先得", 5 * k),
        "lottery": _round(base, lottery, "摇号一", 4 * k, mode="lottery"),
        "one_day": _round(base, one_day, "第一轮", 30 * k, per_person_limit=3),
    }
    db.session.commit()

    phones = [f"1390000{i:04d}" for i in range(settings.citizens)]
    people = [citizens.citizen_for(phone) for phone in phones]
    db.session.commit()

    # History: redemptions of the last three days (settlement batches them; their reversal window is
    # long closed), and one-day vouchers claimed nearly a day ago, whose validity ends during the run.
    now = utcnow()
    vouchers: list[tuple[str, int]] = []
    history: list[dict] = []
    cashiers = {"food": base.cashier, "lianyun": db.session.get(User, lianyun_cashier.id)}
    for i in range(9):
        day = local_today() - timedelta(days=1 + i % 3)
        at = local_day_start_utc(day) + timedelta(hours=12, minutes=i)
        voucher = claim(rounds["cofunded"].id, people[i], now=at - timedelta(hours=2))
        store = ("food", "lianyun")[i % 2]
        done = redeem(voucher.code, 120_00 + i * 10_00, cashiers[store], idempotency_key=f"history-{i}", now=at)
        vouchers.append((voucher.code, cofunded.id))
        history.append({"id": done.redemption.id, "store": store, "campaign_id": cofunded.id, "key": None,
                        "code": voucher.code, "amount": done.redemption.order_amount_fen})
    for i in range(3):
        at = local_day_start_utc(local_today() - timedelta(days=1)) + timedelta(hours=15, minutes=i)
        voucher = claim(rounds["subsidy"].id, people[9 + i], now=at - timedelta(hours=1))
        done = redeem(voucher.code, 300_00, cashiers["lianyun"], idempotency_key=f"history-b{i}", now=at)
        vouchers.append((voucher.code, subsidy.id))
        history.append({"id": done.redemption.id, "store": "lianyun", "campaign_id": subsidy.id, "key": None,
                        "code": voucher.code, "amount": 300_00})
    for i in range(12):
        # valid_until = claimed_at + 1 day: from 1 s after set-up to `expiry_spread` s later
        claimed_at = now - timedelta(days=1) + timedelta(seconds=1 + settings.expiry_spread * i / 11)
        voucher = claim(rounds["one_day"].id, people[i % len(people)], now=claimed_at)
        vouchers.append((voucher.code, one_day.id))
    db.session.commit()

    # Each citizen signs in on a phone once, by one-time code (five codes per ten minutes per number:
    # not once per thread); the threads' clients carry that phone's session cookie.
    cookies = []
    for phone in phones:
        client = app.test_client()
        page = client.post("/c/login", data={"p-phone": phone}).get_data(as_text=True)
        code = re.search(r'class="dev-code">(\d{6})<', page).group(1)
        assert client.post("/c/login", data={"c-phone": phone, "c-code": code}).status_code == 302
        with client.session_transaction() as session:
            session.pop("_flashes", None)  # 验证成功: shown once, not on every thread's first answer
        cookies.append(client.get_cookie("session").value)

    sources = defaultdict(list)
    initial = {}
    for campaign in (cofunded, subsidy, lottery, one_day):
        for source in campaign.funding_sources:
            sources[campaign.id].append(source.id)
            initial[source.id] = source.amount_fen
    world = World(
        campaigns={"cofunded": cofunded.id, "subsidy": subsidy.id, "lottery": lottery.id, "one_day": one_day.id},
        sources=dict(sources), initial_source_fen=initial, stores=stores, phones=phones,
        citizen_ids=[p.id for p in people], citizen_cookies=cookies, terminals=terminals,
        users=dict(db.session.execute(select(User.username, User.id)).all()),
        partner_secret=auth.partner_secret(PARTNER_KEY),
        releases=[(r.id, r.campaign_id, r.mode) for r in rounds.values()], vouchers=vouchers, redemptions=history,
    )
    db.session.commit()
    return world


# The actors ---------------------------------------------------------------------------------------


CONFLICT_TEXT = ConcurrentChange.default_message[:12]


class Actor:
    """One thread's people, each signed in on a client of their own: bureau maker and approver, a
    finance officer, a cashier at the counter, the thread's store terminals, the citizens' phones."""

    def __init__(self, app, world: World, registry: Registry, index: int, rng: random.Random,
                 settings: SoakSettings) -> None:
        self.app, self.world, self.registry, self.index, self.rng = app, world, registry, index, rng
        self.settings = settings
        self.cashier_store = ("food", "lianyun")[index % 2]
        self.staff = {}
        for role in ("maker", "approver", "finance", "cashier"):
            self.sign_in(role)
        self.phones: dict[int, object] = {}
        self.serial = 0
        self.rushing = False  # in a rush, every thread's `rng` draws the same choices
        self.focus: int | None = None  # in a rush, the campaign every thread's operation is about

    def uid(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.index}-{self.serial}"

    def user_id(self, role: str) -> int:
        return self.world.users[f"soak_{role}{self.index}"]

    def phone(self, citizen: int):
        """The citizen's phone as this thread holds it: the signed-in session, another tab of it."""
        if citizen not in self.phones:
            client = self.app.test_client()
            client.set_cookie("session", self.world.citizen_cookies[citizen])
            self.phones[citizen] = client
        return self.phones[citizen]

    def sign_in(self, role: str) -> None:
        client = self.staff.setdefault(role, self.app.test_client())
        response = client.post("/login", data={"username": f"soak_{role}{self.index}", "password": PASSWORD})
        assert response.status_code == 302, (role, self.index, response.status_code)

    def page(self, client, path: str, data: dict | None = None, ok=(302,)) -> Outcome:
        """POST a form as a browser does and read the answer: the status and the flashed messages. A
        member of staff whose session has ended (days pass during a run) signs in again and retries."""
        response = client.post(path, data=data or {})
        role = next((r for r, c in self.staff.items() if c is client), None)
        if role and response.status_code in (302, 303) and "/login" in (response.location or ""):
            self.sign_in(role)
            response = client.post(path, data=data or {})
        with client.session_transaction() as session:
            flashes = session.pop("_flashes", [])
        message = " / ".join(text for _, text in flashes)
        status = response.status_code
        if status >= 500:
            kind = "error"
        elif not role and "/c/login" in (response.location or ""):
            kind, message = "error", "the citizen's phone was signed out: " + message
        elif status in ok and any(category == "success" for category, _ in flashes):
            kind = "ok"
        elif CONFLICT_TEXT in message or (status == 409 and CONFLICT_TEXT in response.get_data(as_text=True)):
            kind = "conflict"
        else:
            kind = "refused"
        return Outcome(status=status, kind=kind, message=message[:160])

    def api(self, path: str, body: dict, headers: dict) -> tuple[Outcome, dict]:
        client = self.app.test_client()
        response = client.post(path, data=json.dumps(body).encode(), content_type="application/json",
                               headers=headers)
        status = response.status_code
        payload = response.get_json(silent=True) or {}
        code = (payload.get("errors") or [{}])[0].get("code", "") if not payload.get("success") else ""
        kind = ("error" if status >= 500 else "ok" if status < 300 else
                "conflict" if code == ConcurrentChange.code else "refused")
        return Outcome(status=status, kind=kind, message=code), payload.get("data") or {}

    def terminal(self, store: str) -> dict:
        return {"Authorization": f"Bearer {self.world.terminals[(self.index, store)]}"}

    def partner_headers(self, path: str, body: dict) -> dict:
        from voucher.api import auth

        raw = json.dumps(body).encode()
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
        return {"X-Partner-Key": PARTNER_KEY, "X-Timestamp": timestamp, "X-Nonce": nonce,
                "X-Signature": auth.signature(self.world.partner_secret, "POST", path, timestamp, nonce, raw)}

    def lookup(self, sql: str, **params):
        """Read what the actor's next page would show (a new round's id, a budget request's id)."""
        from voucher.core.db import db

        with self.app.app_context():
            return db.session.execute(text(sql), params).scalar()

    def seen(self, sql: str, **params) -> list[tuple]:
        """The rows a page would list (campaigns that are paused, rounds waiting to open, ...), in a
        stable order, so that the thread's RNG picks among them."""
        from voucher.core.db import db

        with self.app.app_context():
            return [tuple(row) for row in db.session.execute(text(sql), params)]

    def usually(self, sql: str, fallback, share: float = 0.8, campaign_at: int = 1, **params):
        """Mostly what the page shows (`sql`'s rows), otherwise (or when it shows nothing) `fallback()`:
        people also act on stale pages and guess wrong. In a rush, always the page, and the rows of
        the rush's campaign (row[campaign_at]) when it has any."""
        rows = self.seen(sql, **params) if self.rushing or self.rng.random() < share else []
        rows = self.focused(rows, lambda row: row[campaign_at])
        return self.rng.choice(rows) if rows else fallback()

    def focused(self, rows: list, campaign_of) -> list:
        """In a rush, the rows about its campaign (all of them if none is)."""
        if self.focus is None:
            return rows
        return [row for row in rows if campaign_of(row) == self.focus] or rows

    def pick(self, name: str, where=None, campaign_of=None):
        """One of the registry's items (see Registry), of the rush's campaign in a rush."""
        with self.registry.lock:
            items = [i for i in getattr(self.registry, name) if where is None or where(i)]
        if campaign_of is not None:
            items = self.focused(items, campaign_of)
        return self.rng.choice(items) if items else None

    def spread(self, rows: list):
        """In a rush, each thread its own row (rows[thread % len]); otherwise a random one."""
        return rows[self.index % len(rows)] if self.rushing else self.rng.choice(rows)

    def any_campaign(self) -> int:
        return self.focus if self.focus is not None else self.rng.choice(list(self.world.campaigns.values()))

    def any_store(self) -> str:
        return self.rng.choices(STORES, weights=(45, 45, 6, 4))[0]

    def order_fen(self) -> int:
        return self.rng.choice((30, 60, 120, 160, 240, 400, 650)) * 100


# Operations: each a small function of an actor, returning what the actor saw ------------------------


OPEN_ROUNDS = "SELECT id, campaign_id, mode FROM releases WHERE mode = 'first_come' AND status = 'open' ORDER BY id"


def round_to_claim(a: Actor) -> tuple[int, int, str]:
    """Mostly a round the home page lists as open; now and then one from an old link. In a rush, the
    rounds of one campaign spread over the threads: the same citizen claims from each of them at once
    (the campaign's per-person limit counts across its rounds)."""
    if a.rushing:
        rows = a.focused(a.seen(OPEN_ROUNDS), lambda row: row[1])
        campaign = a.rng.choice(rows)[1] if rows else None
        campaign_rounds = [r for r in rows if r[1] == campaign]
        if campaign_rounds:
            return a.spread(campaign_rounds)
    return a.usually(OPEN_ROUNDS, lambda: a.pick("releases", lambda r: r[2] == "first_come"))


def claim_page(a: Actor) -> Outcome:
    """A citizen taps 立即领取 on the phone page."""
    release = round_to_claim(a)
    citizen = a.rng.randrange(len(a.world.phones))
    out = a.page(a.phone(citizen), f"/c/releases/{release[0]}/claim")
    out.actor, out.campaigns = f"citizen{citizen}", frozenset({release[1]})
    out.ids = {"release_id": release[0], "citizen_id": a.world.citizen_ids[citizen]}
    if out.kind == "ok":
        out.ids["code"] = re.search(r"券码 ([0-9A-Z-]+)", out.message).group(1).replace("-", "")
        a.registry.add("vouchers", (out.ids["code"], release[1]))
    return out


def claim_channel(a: Actor) -> Outcome:
    """A channel partner (the city app) claims for a citizen it has verified: signed JSON."""
    release = round_to_claim(a)
    citizen = a.rng.randrange(len(a.world.phones))
    body = {"release_id": release[0], "citizen": {"phone": a.world.phones[citizen]}}
    out, data = a.api("/api/v1/channel/claims", body, a.partner_headers("/api/v1/channel/claims", body))
    out.actor, out.campaigns = f"partner→citizen{citizen}", frozenset({release[1]})
    out.ids = {"release_id": release[0], "citizen_id": a.world.citizen_ids[citizen]}
    if out.kind == "ok":
        out.ids["code"] = data["voucher"]["code"]
        a.registry.add("vouchers", (out.ids["code"], release[1]))
    return out


def confirm_claim(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text("SELECT citizen_id, release_id, status FROM vouchers WHERE code = :code"),
                       {"code": out.ids["code"]}).first()
    if row is None or (row.citizen_id, row.release_id) != (out.ids["citizen_id"], out.ids["release_id"]):
        return f"claim of {out.ids} acknowledged, voucher found as {tuple(row) if row else None}"
    if row.status == "available":
        return f"claimed voucher {out.ids['code']} is back to available"
    return None


UNUSED_VOUCHERS = "SELECT code, campaign_id FROM vouchers WHERE status = 'claimed' ORDER BY id"


def voucher_to_redeem(a: Actor) -> tuple[str, int]:
    """Mostly one the citizen's phone shows as unused; now and then one already used or expired."""
    return a.usually(UNUSED_VOUCHERS, lambda: a.pick("vouchers"), share=0.75)


def redeem_api(a: Actor) -> Outcome:
    """A store terminal redeems a scanned voucher (Idempotency-Key per request)."""
    code, campaign_id = voucher_to_redeem(a)
    store, amount, key = a.any_store(), a.order_fen(), a.uid("t")
    out, data = a.api("/api/v1/redemptions", {"code": code, "order_amount_fen": amount},
                      {**a.terminal(store), "Idempotency-Key": key})
    out.actor, out.campaigns = f"terminal{a.index}@{store}", frozenset({campaign_id})
    out.ids = {"code": code, "store": a.world.stores[store], "amount": amount, "key": key}
    if out.kind == "ok":
        out.ids["id"] = data["id"]
        a.registry.add("redemptions", {"id": data["id"], "store": store, "campaign_id": campaign_id, "key": key,
                                       "code": code, "amount": amount})
    return out


def retry_redemption(a: Actor) -> Outcome:
    """A terminal retries a request that was already answered (a lost response): the same key must
    bring back the same redemption and change nothing."""
    first = a.pick("redemptions", lambda r: r["key"] is not None, campaign_of=lambda r: r["campaign_id"])
    if first is None:  # nothing to retry yet: a first request instead
        out = redeem_api(a)
        out.op = "redeem (terminal API)"
        return out
    out, data = a.api("/api/v1/redemptions", {"code": first["code"], "order_amount_fen": first["amount"]},
                      {**a.terminal(first["store"]), "Idempotency-Key": first["key"]})
    out.actor, out.campaigns = f"terminal{a.index}@{first['store']}", frozenset({first["campaign_id"]})
    out.ids = {"first_id": first["id"], "id": data.get("id"), "replayed": data.get("replayed")}
    return out


def confirm_retry(conn: Connection, out: Outcome) -> str | None:
    if out.ids["id"] != out.ids["first_id"] or out.ids["replayed"] is not True:
        return f"a retry of redemption #{out.ids['first_id']} was answered with {out.ids}"
    return None


def redeem_counter(a: Actor) -> Outcome:
    """A cashier types the code and the amount on the counter page (its hidden key: one per form)."""
    code, campaign_id = voucher_to_redeem(a)
    amount, key = a.order_fen(), a.uid("c")
    out = a.page(a.staff["cashier"], "/counter", {
        "code": "-".join(code[i:i + 4] for i in range(0, len(code), 4)), "order_amount": f"{amount / 100:.2f}",
        "idempotency_key": key}, ok=(200,))
    out.actor, out.campaigns = f"cashier{a.index}", frozenset({campaign_id})
    # The counter answers 200 with the result, or the refusal's status with its reason on the page.
    out.kind = {200: "ok"}.get(out.status, out.kind if out.status >= 500 else "refused")
    store_id = a.world.stores[a.cashier_store]
    out.ids = {"code": code, "store": store_id, "amount": amount, "key": key}
    if out.kind == "ok":
        out.ids["id"] = a.lookup("SELECT id FROM redemptions WHERE store_id = :s AND idempotency_key = :k",
                                 s=store_id, k=key)
        a.registry.add("redemptions", {"id": out.ids["id"], "store": a.cashier_store, "campaign_id": campaign_id,
                                       "key": None, "code": code, "amount": amount})
    return out


def confirm_redemption(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text(
        "SELECT r.store_id, r.order_amount_fen, r.idempotency_key, v.code FROM redemptions r "
        "JOIN vouchers v ON v.id = r.voucher_id WHERE r.id = :id"), {"id": out.ids.get("id")}).first()
    expected = (out.ids["store"], out.ids["amount"], out.ids["key"], out.ids["code"])
    if row is None or tuple(row) != expected:
        return f"redemption {out.ids} acknowledged, found {tuple(row) if row else None}"
    return None


def reverse_api(a: Actor) -> Outcome:
    """A terminal reverses a redemption (mostly its own store's; another store's is refused)."""
    target = a.pick("redemptions", campaign_of=lambda r: r["campaign_id"])
    store = target["store"] if a.rng.random() < 0.85 else a.any_store()
    out, _ = a.api(f"/api/v1/redemptions/{target['id']}/reversal", {"reason": "顾客退单"}, a.terminal(store))
    out.actor, out.campaigns = f"terminal{a.index}@{store}", frozenset({target["campaign_id"]})
    out.ids = {"id": target["id"]}
    return out


def reverse_counter(a: Actor) -> Outcome:
    """A cashier presses 撤销 on one of the store's recent redemptions."""
    mine = a.pick("redemptions", lambda r: r["store"] == a.cashier_store, campaign_of=lambda r: r["campaign_id"])
    target = mine if mine is not None and a.rng.random() < 0.85 else a.pick(
        "redemptions", campaign_of=lambda r: r["campaign_id"])
    out = a.page(a.staff["cashier"], f"/counter/redemptions/{target['id']}/reverse", {"reason": "收银误操作"})
    out.actor, out.campaigns = f"cashier{a.index}", frozenset({target["campaign_id"]})
    out.ids = {"id": target["id"]}
    return out


def confirm_reversal(conn: Connection, out: Outcome) -> str | None:
    reversed_at = conn.execute(text("SELECT reversed_at FROM redemptions WHERE id = :id"), out.ids).scalar()
    return None if reversed_at is not None else f"reversal of redemption #{out.ids['id']} acknowledged, not reversed"


OPEN_LOTTERIES = "SELECT id, campaign_id, mode FROM releases WHERE mode = 'lottery' AND status = 'open' ORDER BY id"


def enter_lottery(a: Actor) -> Outcome:
    release = a.usually(OPEN_LOTTERIES, lambda: a.pick("releases", lambda r: r[2] == "lottery"))
    citizen = a.rng.randrange(len(a.world.phones))
    out = a.page(a.phone(citizen), f"/c/releases/{release[0]}/enter")
    out.actor, out.campaigns = f"citizen{citizen}", frozenset({release[1]})
    out.ids = {"release_id": release[0], "citizen_id": a.world.citizen_ids[citizen]}
    if out.kind == "ok":
        out.ids["entry_id"] = int(re.search(r"报名编号为 #(\d+)", out.message).group(1))
    return out


def confirm_entry(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text("SELECT release_id, citizen_id FROM lottery_entries WHERE id = :entry_id"), out.ids).first()
    if row is None or tuple(row) != (out.ids["release_id"], out.ids["citizen_id"]):
        return f"lottery entry {out.ids} acknowledged, found {tuple(row) if row else None}"
    return None


def draw_lottery(a: Actor) -> Outcome:
    release = a.usually(OPEN_LOTTERIES, lambda: a.pick("releases", lambda r: r[2] == "lottery"))
    role = a.rng.choice(("maker", "approver"))
    out = a.page(a.staff[role], f"/releases/{release[0]}/draw")
    out.actor, out.campaigns, out.ids = f"{role}{a.index}", frozenset({release[1]}), {"release_id": release[0]}
    return out


def confirm_draw(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text("SELECT status, drawn_at FROM releases WHERE id = :release_id"), out.ids).first()
    if row.status == "closed" and row.drawn_at:
        return None
    return f"draw of round #{out.ids['release_id']} acknowledged, found {tuple(row)}"


def create_round(a: Actor) -> Outcome:
    """The maker schedules a round (a lottery now and then), opening a minute ago."""
    from voucher.core.clock import to_local, utcnow

    campaign_id = a.any_campaign()
    lottery = a.rng.random() < 0.3
    name = a.uid("轮次")
    opens = to_local(utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    out = a.page(a.staff["maker"], f"/campaigns/{campaign_id}/releases", {
        "name": name, "quantity": str(a.rng.choice((3, 5, 8, 12)) * a.settings.scale),
        "per_person_limit": "1" if lottery else str(a.rng.choice((1, 2))), "opens_at": opens,
        "mode": "lottery" if lottery else "first_come"})
    out.actor, out.campaigns = f"maker{a.index}", frozenset({campaign_id})
    out.ids = {"campaign_id": campaign_id, "name": name}
    if out.kind == "ok":
        out.ids["release_id"] = a.lookup("SELECT id FROM releases WHERE campaign_id = :c AND name = :n",
                                         c=campaign_id, n=name)
        a.registry.add("releases", (out.ids["release_id"], campaign_id, "lottery" if lottery else "first_come"))
    return out


def confirm_round(conn: Connection, out: Outcome) -> str | None:
    found = conn.execute(text("SELECT id FROM releases WHERE campaign_id = :campaign_id AND name = :name"),
                         out.ids).scalar()
    return None if found == out.ids.get("release_id") else f"round {out.ids} acknowledged, found #{found}"


def open_round(a: Actor) -> Outcome:
    release = a.usually("SELECT id, campaign_id, mode FROM releases WHERE status = 'scheduled' ORDER BY id",
                        lambda: a.pick("releases"))
    role = a.rng.choice(("maker", "approver"))
    out = a.page(a.staff[role], f"/releases/{release[0]}/open")
    out.actor, out.campaigns, out.ids = f"{role}{a.index}", frozenset({release[1]}), {"release_id": release[0]}
    return out


def confirm_open(conn: Connection, out: Outcome) -> str | None:
    opened = conn.execute(text("SELECT opened_at FROM releases WHERE id = :release_id"), out.ids).scalar()
    return None if opened is not None else f"opening of round #{out.ids['release_id']} acknowledged, not open"


def run_job(name: str) -> Callable[[Actor], Outcome]:
    """A finance officer presses 立即运行 on the jobs page: the job runs in the request."""

    def run(a: Actor) -> Outcome:
        out = a.page(a.staff["finance"], f"/admin/jobs/{name}/run", ok=(303,))
        if out.status == 303 and "运行失败" in out.message:
            out.kind = "error"  # the runner caught an exception: a breakdown, shown as a message
        out.actor, out.campaigns = f"finance{a.index}", None
        out.ids["job"] = name
        return out

    return run


def confirm_job(conn: Connection, out: Outcome) -> str | None:
    """Nothing per run: check() counts the succeeded runs on record against the acknowledged ones."""
    return None


def request_budget_change(a: Actor) -> Outcome:
    """The maker asks for a top-up, a cut, or a move to another campaign. Half of them concern the
    main (co-funded) campaign, and moves mostly go to it: its funding sources are where approvals
    decided at the same moment meet."""
    main = a.world.campaigns["cofunded"]
    campaign_id = a.focus if a.focus is not None else main if a.rng.random() < 0.5 else a.any_campaign()
    kind = a.rng.choice(("top_up", "cut", "move"))
    amount = a.settings.scale * a.rng.choice({"top_up": (50, 100, 300, 800), "cut": (20, 100, 400, 1500),
                                              "move": (20, 100, 300, 900)}[kind])
    target = 0
    if kind == "move":
        receiver = main if campaign_id != main and a.rng.random() < 0.7 else a.rng.choice(
            [c for c in a.world.sources if c != campaign_id])
        target = a.rng.choice(a.world.sources[receiver])
    reason = a.uid("压测调整")
    out = a.page(a.staff["maker"], f"/campaigns/{campaign_id}/budget-changes", {
        "kind": kind, "funding_source_id": str(a.rng.choice(a.world.sources[campaign_id])),
        "amount": str(amount), "reason": reason, "target_funding_source_id": str(target)})
    out.actor = f"maker{a.index}"
    out.campaigns = frozenset({campaign_id} | ({_source_campaign(a.world, target)} if target else set()))
    out.ids = {"reason": reason, "kind": kind, "amount": amount * 100, "requested_by": a.user_id("maker")}
    if out.kind == "ok":
        out.ids["change_id"] = a.lookup("SELECT id FROM budget_changes WHERE reason = :r", r=reason)
        a.registry.add("changes", (out.ids["change_id"], campaign_id))
    return out


def _source_campaign(world: World, source_id: int) -> int:
    return next(c for c, ids in world.sources.items() if source_id in ids)


def confirm_budget_request(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text("SELECT id, kind, amount_fen, requested_by_id FROM budget_changes WHERE reason = :reason"),
                       out.ids).first()
    expected = (out.ids.get("change_id"), out.ids["kind"], out.ids["amount"], out.ids["requested_by"])
    return None if row and tuple(row) == expected else f"budget request {out.ids} acknowledged, found {row}"


def decide_budget_change(a: Actor) -> Outcome:
    """An approver approves (mostly) or rejects a pending request from the 待审批 list."""
    pending = "SELECT id, campaign_id FROM budget_changes WHERE status = 'pending' ORDER BY id"
    if a.rushing:
        # The approvers clear the list together, each from a different row: different changes, often
        # of the same funding source, decided at the same moment.
        rows = a.focused(a.seen(pending), lambda row: row[1])
        change = a.spread(rows) if rows else None
    else:
        change = a.usually(pending, lambda: a.pick("changes"))
    if change is None:  # nothing to decide yet: the approver's colleague asks first
        out = request_budget_change(a)
        out.op = "budget request"
        return out
    change_id, campaign_id = change
    approve = a.rng.random() < 0.8
    data = {} if approve else {f"bc{change_id}-reason": "压测驳回"}
    out = a.page(a.staff["approver"], f"/budget-changes/{change_id}/{'approve' if approve else 'reject'}", data)
    out.actor, out.campaigns = f"approver{a.index}", frozenset({campaign_id})
    out.ids = {"change_id": change_id, "status": "approved" if approve else "rejected",
               "decided_by": a.user_id("approver")}
    return out


def confirm_decision(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text("SELECT status, decided_by_id FROM budget_changes WHERE id = :change_id"), out.ids).first()
    expected = (out.ids["status"], out.ids["decided_by"])
    return None if tuple(row) == expected else f"decision {out.ids} acknowledged, found {tuple(row)}"


def campaign_action(action: str, roles: tuple[str, ...], data: dict | None = None, shown: str | None = None,
                    spare: str | None = None) -> Callable[[Actor], Outcome]:
    """A button on the campaign page; `shown`: the campaign status that shows the button; `spare`: a
    campaign never chosen, and two campaigns kept running (a seed that closes early, or a long run,
    still has people working: the closes that do happen are the ones that matter)."""

    def run(a: Actor) -> Outcome:
        spared = a.world.campaigns.get(spare or "", 0)
        running = a.seen("SELECT id FROM campaigns WHERE status IN ('active', 'paused') ORDER BY id") if spare else []
        if spare and len(running) <= 2:
            # Only closed ones left to press the button on (from a page not yet refreshed): refused.
            closed = [c for c in a.world.campaigns.values() if (c,) not in running]
            campaign_id = a.rng.choice(closed) if closed else spared
        elif shown:
            (campaign_id,) = a.usually("SELECT id FROM campaigns WHERE status = :s AND id <> :spared ORDER BY id",
                                       lambda: (a.any_campaign(),), campaign_at=0, s=shown, spared=spared)
        elif a.focus is not None and a.focus != spared:
            campaign_id = a.focus
        else:
            campaign_id = a.rng.choice([c for c in a.world.campaigns.values() if c != spared])
        role = a.rng.choice(roles)
        out = a.page(a.staff[role], f"/campaigns/{campaign_id}/{action}", data)
        out.actor, out.campaigns = f"{role}{a.index}", frozenset({campaign_id})
        out.ids = {"campaign_id": campaign_id, "action": f"campaign.{action}", "actor_id": a.user_id(role)}
        return out

    return run


def confirm_campaign_action(conn: Connection, out: Outcome) -> str | None:
    found = conn.execute(text(
        "SELECT count(*) FROM audit_entries WHERE action = :action AND object_type = 'campaigns' "
        "AND object_id = :campaign_id AND actor_id = :actor_id"), out.ids).scalar()
    if not found:
        return f"{out.ids['action']} of campaign #{out.ids['campaign_id']} acknowledged, no audit entry"
    if out.ids["action"] == "campaign.close":
        status = conn.execute(text("SELECT status FROM campaigns WHERE id = :campaign_id"), out.ids).scalar()
        return None if status == "closed" else f"close of campaign #{out.ids['campaign_id']} acknowledged: {status}"
    return None


def build_settlement(a: Actor) -> Outcome:
    """A finance officer builds a business day's batches: the latest buildable day, one before it, or
    today (refused: its redemptions can still be reversed)."""
    from voucher.core.clock import local_today

    day = local_today() - timedelta(days=1 if a.rushing else a.rng.choice((0, 1, 1, 2, 3)))
    out = a.page(a.staff["finance"], "/finance/settlement/build", {"business_date": day.isoformat()})
    out.actor, out.campaigns = f"finance{a.index}", None
    out.ids = {"business_date": day.isoformat(), "actor_id": a.user_id("finance")}
    return out


def confirm_build(conn: Connection, out: Outcome) -> str | None:
    found = conn.execute(text(
        "SELECT count(*) FROM audit_entries WHERE action = 'settlement.build' AND actor_id = :actor_id"), out.ids
    ).scalar()
    return None if found else f"settlement build {out.ids} acknowledged, no audit entry"


def close_month(a: Actor) -> Outcome:
    """A finance officer closes a month: last month, the one before, or this one (refused)."""
    from voucher.core.clock import local_today

    first = local_today().replace(day=1)
    back = 1 if a.rushing else a.rng.choice((0, 1, 1, 2))
    year, month = divmod(first.year * 12 + first.month - 1 - back, 12)
    period = f"{year}-{month + 1:02d}"
    out = a.page(a.staff["finance"], "/finance/periods", {"period": period})
    out.actor, out.campaigns, out.ids = f"finance{a.index}", None, {"period": period}
    if "账务核对未通过" in out.message:
        # The close checks the ledger first. Under load it must judge the committed ledger as it is
        # (clean: check() proves it on every snapshot), never a mix of two moments.
        out.kind = "error"
    return out


def confirm_close_month(conn: Connection, out: Outcome) -> str | None:
    found = conn.execute(text("SELECT count(*) FROM closed_periods WHERE period = :period"), out.ids).scalar()
    return None if found == 1 else f"close of {out.ids['period']} acknowledged, {found} rows"


def export_payout(a: Actor) -> Outcome:
    """A finance officer creates a numbered payout file of the pending batches (the page asks first;
    this POST is what agreeing sends). Two officers at once: one file, the other finds nothing new."""
    out = a.page(a.staff["finance"], "/finance/settlement/payout-files", {}, ok=(303,))
    out.actor, out.campaigns = f"finance{a.index}", None
    found = re.search(r"已生成付款文件 (FK[0-9-]+)：([0-9]+) 个批次", out.message)
    out.ids = {"number": found.group(1), "batches": int(found.group(2))} if found else {}
    return out


def confirm_export(conn: Connection, out: Outcome) -> str | None:
    row = conn.execute(text("SELECT f.batch_count, (SELECT COUNT(*) FROM payout_file_items i WHERE i.payout_file_id = f.id)"
                            " FROM payout_files f WHERE f.number = :number"), out.ids).first()
    if row is None:
        return f"payout file {out.ids['number']} acknowledged, not stored"
    return None if row[0] == row[1] == out.ids["batches"] else f"payout file {out.ids} holds {row[1]} of {row[0]}"


def pay_through_bank(a: Actor) -> Outcome:
    """The bank pays one of the latest payout files as written; the officer imports its statement (the
    system's template, fresh serials: paying a file twice gives lines that must not pay twice) and
    confirms every matched batch at once."""
    client = a.staff["finance"]
    listing = client.get("/finance/settlement").get_data(as_text=True)
    files = re.findall(r"/finance/settlement/payout-files/([0-9]+)\.csv", listing)
    if not files:
        return Outcome(status=200, kind="refused", message="no payout file yet", actor=f"finance{a.index}",
                       campaigns=None)
    paid = client.get(f"/finance/settlement/payout-files/{a.rng.choice(files[:3])}.csv").data.decode("utf-8-sig")
    from voucher.core.clock import local_today

    written = io.StringIO()
    writer = csv.writer(written)
    writer.writerow(["交易日期", "流水号", "附言", "收款户名", "收款账号", "金额"])
    for row in list(csv.reader(io.StringIO(paid)))[1:]:  # 批次号, 收款户名, 收款银行, 收款账号, 金额, 附言, ...
        writer.writerow([local_today().isoformat(), a.uid("BANK"), row[5], row[1], row[3], row[4]])
    statement = written.getvalue().encode("utf-8")
    imported = a.page(client, "/finance/reconciliation/import", {
        "statement": (io.BytesIO(statement), f"{a.uid('stmt')}.csv"), "mapping": "默认"}, ok=(302, 303))
    if imported.kind != "ok":
        imported.actor, imported.campaigns = f"finance{a.index}", None
        return imported
    out = a.page(client, "/finance/settlement/confirm-matched", {"next": "/finance/settlement"}, ok=(303,))
    out.actor, out.campaigns = f"finance{a.index}", None
    found = re.search(r"已确认 ([0-9]+) 个批次支付", out.message)
    out.ids = {"confirmed": int(found.group(1)) if found else 0, "actor_id": a.user_id("finance")}
    return out


def confirm_paid(conn: Connection, out: Outcome) -> str | None:
    paid = conn.execute(text("SELECT COUNT(*) FROM settlement_batches WHERE status = 'paid' "
                             "AND confirmed_by_id = :actor_id"), out.ids).scalar()
    return None if paid >= out.ids["confirmed"] else f"{out.ids['confirmed']} confirmations acknowledged, {paid} paid"


@dataclass(frozen=True)
class Operation:
    weight: float
    run: Callable[[Actor], Outcome] | None
    #: checks after the run that an acknowledged answer is in the database: None when it is, else why not
    confirm: Callable[[Connection, Outcome], str | None] | None = None
    #: not driven yet, and why (weight 0)
    placeholder: str = ""


#: Every money flow, weighted by how often people do it. Weights are relative.
OPERATIONS: dict[str, Operation] = {
    "claim (citizen page)": Operation(9, claim_page, confirm_claim),
    "claim (partner API)": Operation(9, claim_channel, confirm_claim),
    "redeem (terminal API)": Operation(12, redeem_api, confirm_redemption),
    "redeem (counter page)": Operation(8, redeem_counter, confirm_redemption),
    "redeem retry (same key)": Operation(3, retry_redemption, confirm_retry),
    "reverse (terminal API)": Operation(4, reverse_api, confirm_reversal),
    "reverse (counter page)": Operation(3, reverse_counter, confirm_reversal),
    "lottery entry": Operation(6, enter_lottery, confirm_entry),
    "lottery draw": Operation(1.5, draw_lottery, confirm_draw),
    "round create": Operation(2.5, create_round, confirm_round),
    "round open": Operation(2.5, open_round, confirm_open),
    "job: open due rounds": Operation(1, run_job("open_releases"), confirm_job),
    "budget request": Operation(4, request_budget_change, confirm_budget_request),
    "budget decision": Operation(4, decide_budget_change, confirm_decision),
    "campaign pause": Operation(1.2, campaign_action("pause", ("maker", "approver"), shown="active"),
                                confirm_campaign_action),
    "campaign resume": Operation(2, campaign_action("resume", ("maker", "approver"), shown="paused"),
                                 confirm_campaign_action),
    "campaign close": Operation(0.4, campaign_action("close", ("approver",), {"close-reason": "压测：提前结束"},
                                                     spare="cofunded"), confirm_campaign_action),
    "job: expire vouchers": Operation(1.5, run_job("expire_vouchers"), confirm_job),
    "settlement build": Operation(2, build_settlement, confirm_build),
    "payout export": Operation(1, export_payout, confirm_export),
    "confirm paid": Operation(1, pay_through_bank, confirm_paid),
    "month-end close": Operation(1, close_month, confirm_close_month),
}


# The run ------------------------------------------------------------------------------------------


#: What rushes take turns at, in a seeded order. In a rush every thread waits for the others, then all
#: act at once with the same random choices, about the same campaign: the collisions a flash crowd,
#: two officers on one page, or a button pressed while the counters are busy make. "A + B": half the
#: threads do A, half B (the pairs docs/concurrency.md orders the locks for). A budget request rush
#: comes just before a decision rush, so that the approvers find several requests of one campaign.
RUSHES = [
    "claim (citizen page)",  # one citizen, every open round of one campaign, at once
    "claim (partner API)",
    "redeem (terminal API)",  # one voucher at every terminal
    "redeem (counter page)",
    "redeem retry (same key)",  # one lost answer retried everywhere
    "reverse (terminal API)",
    "reverse (counter page) + redeem (counter page)",
    "lottery entry",
    "lottery draw + claim (partner API)",  # the campaign's per-person limit, claimed and drawn at once
    "lottery draw + lottery entry",
    "round open + budget decision",
    "budget request",
    "budget decision",  # the approvers clear the list together
    "campaign close + redeem (terminal API)",
    "campaign pause + redeem (counter page)",
    "job: open due rounds + budget decision",
    "job: expire vouchers + redeem (terminal API)",
    "settlement build + reverse (terminal API)",
    "settlement build",
    "payout export",  # two officers at once: one file
    "confirm paid + payout export",  # a statement confirmed while the next file is written
    "confirm paid",  # the same file paid twice by the bank, confirmed by two officers at once
    "month-end close + redeem (terminal API)",
    "month-end close",
]

#: Rushes that need a new day to act on (its redemptions to settle, its month to close, its vouchers
#: run out): they come right after the days pass.
DAY_RUSHES = [r for r in RUSHES if r.split(" + ")[0] in ("settlement build", "month-end close", "job: expire vouchers")]


def rush_schedule(seed: int, names: list[str], count: int, after_jumps: set[int]) -> list[str]:
    """`count` rushes: the names in a seeded order, over again as needed, a budget decision right
    after a budget request, and the day's rushes (DAY_RUSHES) at `after_jumps`."""
    rng = random.Random(f"{seed}:rush")
    daily = [n for n in DAY_RUSHES if n in names]
    rng.shuffle(daily)
    order = [n for n in names if n not in daily or not after_jumps]
    rng.shuffle(order)
    if "budget request" in order and "budget decision" in order:
        order.remove("budget decision")
        order.insert(order.index("budget request") + 1, "budget decision")
    schedule, others, days = [], iter(order * (count // max(len(order), 1) + 1)), iter(daily * (count + 1))
    for k in range(count):
        schedule.append(next(days) if k in after_jumps and daily else next(others))
    return schedule


def rush_focus(world: World, seed: int, rushes: list[str], rush: int) -> int:
    """The campaign a rush is about: never the spared main campaign for a close, and for decisions
    the campaign of the requests just made."""
    if rush and rushes[rush] == "budget decision" and rushes[rush - 1] == "budget request":
        rush -= 1
    what = rushes[rush]
    campaigns = [c for label, c in world.campaigns.items() if not ("campaign close" in what and label == "cofunded")]
    return random.Random(f"{seed}:rush:{rush}:focus").choice(campaigns)


def run_soak(app, world: World, settings: SoakSettings, operations: dict[str, Operation] | None = None) -> SoakRun:
    """Every thread signs its people in, then all start together and perform their operations."""
    from voucher.core.clock import utcnow
    from voucher.core.db import db

    operations = {n: o for n, o in (operations or OPERATIONS).items() if o.run is not None and o.weight > 0}
    names, weights = list(operations), [o.weight for o in operations.values()]
    registry = Registry(world)
    outcomes: list[list[Outcome]] = [[] for _ in range(settings.threads)]
    plans = [random.Random(f"{settings.seed}:{i}:plan").choices(names, weights, k=settings.ops)
             for i in range(settings.threads)]
    rush_slots = set(range(settings.rush_every - 1, settings.ops, settings.rush_every) if settings.rush_every else [])
    # A day passes before the rushes numbered in `jumps` (evenly spaced; see next_rush below).
    jumps = {round((k + 1) * len(rush_slots) / (settings.days + 1)) for k in range(settings.days)}
    jumps = {j for j in jumps if j < len(rush_slots)}  # a short run has fewer rushes than days
    rushes = rush_schedule(settings.seed, [r for r in RUSHES if all(n in operations for n in r.split(" + "))],
                           len(rush_slots), jumps)
    for index, plan in enumerate(plans):
        for k, slot in enumerate(sorted(rush_slots)):
            pair = rushes[k].split(" + ")
            plan[slot] = pair[index % len(pair)]
    # Every operation at least once in a run long enough to hold them all (rare ones could be missed).
    coverage = random.Random(f"{settings.seed}:coverage")
    counts = Counter(name for plan in plans for name in plan)
    if len(names) <= settings.threads * settings.ops // 4:
        for name in (n for n in names if not counts[n]):
            while True:  # in place of an operation planned more than once, not in a rush
                plan = coverage.choice(plans)
                slot = coverage.randrange(len(plan))
                if counts[plan[slot]] > 1 and slot not in rush_slots:
                    counts[plan[slot]] -= 1
                    plan[slot], counts[name] = name, 1
                    break
    barrier = threading.Barrier(settings.threads + 1)
    # The day passes in the rush barrier's action: every thread is waiting there, so no request
    # straddles the change of day.
    rushes_started = [-1]
    days_passed: list[datetime] = []

    def next_rush() -> None:
        from voucher.core.clock import set_clock, utcnow

        rushes_started[0] += 1
        if rushes_started[0] in jumps:
            set_clock(utcnow() + timedelta(days=1))
            days_passed.append(utcnow())

    rush_barrier = threading.Barrier(settings.threads, action=next_rush)
    done = threading.Event()
    snapshots: list[int] = [0]
    seen_in_snapshots: dict[str, list[int]] = {}  # problem -> the snapshots it was seen in
    failures: list[str] = []

    def worker(index: int) -> None:
        # The plan (which operations, in which order) has an RNG of its own: the other RNG's draws
        # depend on what the registry holds by then, which depends on the interleaving.
        plan = plans[index]
        rng = random.Random(f"{settings.seed}:{index}")
        try:
            actor = Actor(app, world, registry, index, rng, settings)
        except BaseException as error:  # noqa: BLE001 - reported, and the barrier released
            failures.append(f"thread {index} could not sign in: {error!r}")
            barrier.abort()
            return
        barrier.wait()
        for slot, name in enumerate(plan):
            rush = sorted(rush_slots).index(slot) if slot in rush_slots else None
            if rush is not None:
                try:
                    rush_barrier.wait(timeout=120)
                except threading.BrokenBarrierError:
                    pass  # a thread is gone: the rush goes on unsynchronised (and the run reports why)
                # Everybody draws the same choices: the same target, at the same moment.
                actor.rng, actor.rushing = random.Random(f"{settings.seed}:rush:{rush}"), True
                actor.focus = rush_focus(world, settings.seed, rushes, rush)
            started = time.perf_counter()
            try:
                out = operations[name].run(actor)
            except Exception as error:  # noqa: BLE001 - TESTING propagates what would be a 500
                out = Outcome(status=500, kind="error", message=f"{type(error).__name__}: {error}"[:300],
                              campaigns=None)
            out.op, out.thread, out.started, out.ended = out.op or name, index, started, time.perf_counter()
            out.actor = out.actor or f"thread {index}"
            out.rush = rush
            outcomes[index].append(out)
            actor.rng, actor.rushing, actor.focus = rng, False, None

    def observer() -> None:
        engine = _engine(app)
        while not done.wait(settings.observe_every):
            try:
                with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
                    found = invariant_problems(conn, world)
            except Exception as error:  # noqa: BLE001 - a check that cannot run is a problem, reported
                found = [f"the observer's check failed: {error!r}"[:300]]
            snapshots[0] += 1
            for problem in found:
                seen_in_snapshots.setdefault(problem, []).append(snapshots[0])

    threads = [threading.Thread(target=worker, args=(i,), name=f"soak-{i}") for i in range(settings.threads)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    started = time.perf_counter()
    watcher = threading.Thread(target=observer, name="soak-observer")
    if settings.observe_every > 0:
        watcher.start()
    for thread in threads:
        thread.join(timeout=600)
    seconds = time.perf_counter() - started
    done.set()
    if watcher.is_alive():
        watcher.join(timeout=60)
    with app.app_context():
        ended_at = utcnow()
        state = tally(db.session.connection())
        db.session.remove()
    if failures:
        raise RuntimeError("; ".join(failures))
    snapshot_problems = [f"[snapshot {seen[0]}, seen in {len(seen)} of {snapshots[0]}] {problem}"
                         for problem, seen in seen_in_snapshots.items()]
    if len(days_passed) < len(jumps):
        snapshot_problems.append(f"only {len(days_passed)} of {len(jumps)} days passed: a rush barrier broke")
    return SoakRun(settings, [o for per_thread in outcomes for o in per_thread], seconds, snapshots[0],
                   snapshot_problems, ended_at, plans, state, days=len(days_passed))


def _engine(app):
    from voucher.core.db import db

    with app.app_context():
        return db.engine


# The invariants, by SQL of their own ------------------------------------------------------------------

BALANCES = """
    SELECT a.id, a.campaign_id, a.funding_source_id, a.kind, COALESCE(SUM(p.amount_fen), 0) AS balance
    FROM ledger_accounts a LEFT JOIN postings p ON p.account_id = a.id
    GROUP BY a.id, a.campaign_id, a.funding_source_id, a.kind
"""

#: (name, SQL whose every row is a violation[, the KNOWN_DEFECTS entry it shows]). They read the
#: tables, never the product's services.
INVARIANTS: list[tuple] = [
    ("a journal entry's postings do not sum to zero",
     "SELECT entry_id, SUM(amount_fen) FROM postings GROUP BY entry_id HAVING SUM(amount_fen) <> 0"),
    ("a journal entry without postings",
     "SELECT e.id, e.kind FROM journal_entries e WHERE NOT EXISTS (SELECT 1 FROM postings p WHERE p.entry_id = e.id)"),
    ("an account's balance has the wrong sign (funding never positive, the others never negative)",
     f"SELECT id, kind, balance FROM ({BALANCES}) b "
     "WHERE (kind = 'funding' AND balance > 0) OR (kind <> 'funding' AND balance < 0)"),
    ("a funding source's five accounts do not sum to zero",
     f"SELECT funding_source_id, SUM(balance) FROM ({BALANCES}) b GROUP BY funding_source_id HAVING SUM(balance) <> 0"),
    ("a funded source's funding account differs from its amount less what went back",
     f"SELECT s.id, -b.balance, s.amount_fen - s.returned_fen FROM funding_sources s "
     f"JOIN campaigns c ON c.id = s.campaign_id "
     f"JOIN ({BALANCES}) b ON b.funding_source_id = s.id AND b.kind = 'funding' "
     "WHERE c.status IN ('active', 'paused', 'closed') AND s.status = 'in_hand' "
     "AND -b.balance <> s.amount_fen - s.returned_fen"),
    ("reserved money differs from the face value of unused vouchers (and approved unpaid grants)",
     f"""SELECT c.id, r.balance, COALESCE(v.face, 0) + COALESCE(g.fen, 0) FROM campaigns c
         JOIN (SELECT campaign_id, SUM(balance) AS balance FROM ({BALANCES}) b WHERE kind = 'reserved'
               GROUP BY campaign_id) r ON r.campaign_id = c.id
         LEFT JOIN (SELECT campaign_id, SUM(face_value_fen) AS face FROM vouchers
                    WHERE status IN ('available', 'claimed') GROUP BY campaign_id) v ON v.campaign_id = c.id
         LEFT JOIN (SELECT campaign_id, SUM(approved_fen) AS fen FROM grant_applications WHERE status = 'approved'
                    GROUP BY campaign_id) g ON g.campaign_id = c.id
         WHERE r.balance <> COALESCE(v.face, 0) + COALESCE(g.fen, 0)"""),
    ("spent + settled money differs from live redemptions' subsidies (and paid grants)",
     f"""SELECT c.id, s.balance, COALESCE(r.fen, 0) + COALESCE(g.fen, 0) FROM campaigns c
         JOIN (SELECT campaign_id, SUM(balance) AS balance FROM ({BALANCES}) b WHERE kind IN ('spent', 'settled')
               GROUP BY campaign_id) s ON s.campaign_id = c.id
         LEFT JOIN (SELECT campaign_id, SUM(subsidy_fen) AS fen FROM redemptions WHERE reversed_at IS NULL
                    GROUP BY campaign_id) r ON r.campaign_id = c.id
         LEFT JOIN (SELECT campaign_id, SUM(approved_fen) AS fen FROM grant_applications WHERE status = 'paid'
                    GROUP BY campaign_id) g ON g.campaign_id = c.id
         WHERE s.balance <> COALESCE(r.fen, 0) + COALESCE(g.fen, 0)"""),
    ("settled money differs from the batches confirmed paid (and paid grants)",
     f"""SELECT c.id, s.balance, COALESCE(p.fen, 0) + COALESCE(g.fen, 0) FROM campaigns c
         JOIN (SELECT campaign_id, SUM(balance) AS balance FROM ({BALANCES}) b WHERE kind = 'settled'
               GROUP BY campaign_id) s ON s.campaign_id = c.id
         LEFT JOIN (SELECT campaign_id, SUM(amount_fen) AS fen FROM settlement_batches WHERE status = 'paid'
                    GROUP BY campaign_id) p ON p.campaign_id = c.id
         LEFT JOIN (SELECT campaign_id, SUM(approved_fen) AS fen FROM grant_applications WHERE status = 'paid'
                    GROUP BY campaign_id) g ON g.campaign_id = c.id
         WHERE s.balance <> COALESCE(p.fen, 0) + COALESCE(g.fen, 0)"""),
    ("a voucher with more than one live (unreversed) redemption",
     "SELECT voucher_id, COUNT(*) FROM redemptions WHERE reversed_at IS NULL GROUP BY voucher_id HAVING COUNT(*) > 1"),
    ("a voucher's status disagrees with its live redemption",
     "SELECT v.code, v.status FROM vouchers v WHERE (v.status = 'redeemed') <> EXISTS "
     "(SELECT 1 FROM redemptions r WHERE r.voucher_id = v.id AND r.reversed_at IS NULL)"),
    ("a redemption without exactly one redemption entry, or reversed without exactly one reversal entry",
     """SELECT r.id, r.reversed_at IS NOT NULL, COUNT(e.id) FILTER (WHERE e.kind = 'redemption'),
               COUNT(e.id) FILTER (WHERE e.kind = 'reversal') FROM redemptions r
        LEFT JOIN journal_entries e ON e.ref_type = 'redemption' AND e.ref_id = r.id GROUP BY r.id, r.reversed_at
        HAVING COUNT(e.id) FILTER (WHERE e.kind = 'redemption') <> 1
            OR COUNT(e.id) FILTER (WHERE e.kind = 'reversal') <> CASE WHEN r.reversed_at IS NULL THEN 0 ELSE 1 END"""),
    ("a redemption's entry does not move exactly its subsidy to spent",
     """SELECT r.id, r.subsidy_fen, SUM(p.amount_fen) FROM redemptions r
        JOIN journal_entries e ON e.ref_type = 'redemption' AND e.ref_id = r.id AND e.kind = 'redemption'
        JOIN postings p ON p.entry_id = e.id JOIN ledger_accounts a ON a.id = p.account_id AND a.kind = 'spent'
        GROUP BY r.id, r.subsidy_fen HAVING SUM(p.amount_fen) <> r.subsidy_fen"""),
    ("a redemption settled more than once for one funding source",
     "SELECT redemption_id, funding_source_id, COUNT(*) FROM settlement_items "
     "GROUP BY redemption_id, funding_source_id HAVING COUNT(*) > 1"),
    ("a reversed redemption in a settlement batch",
     "SELECT i.redemption_id FROM settlement_items i JOIN redemptions r ON r.id = i.redemption_id "
     "WHERE r.reversed_at IS NOT NULL"),
    ("a settlement item that is not its redemption's spent share for that funder, or in another's batch",
     """SELECT i.id, i.amount_fen, (SELECT SUM(p.amount_fen) FROM journal_entries e JOIN postings p ON p.entry_id = e.id
                                    JOIN ledger_accounts a ON a.id = p.account_id
                                    WHERE e.ref_type = 'redemption' AND e.ref_id = i.redemption_id
                                      AND e.kind = 'redemption' AND a.kind = 'spent'
                                      AND a.funding_source_id = i.funding_source_id) AS share
        FROM settlement_items i JOIN settlement_batches b ON b.id = i.batch_id
        JOIN redemptions r ON r.id = i.redemption_id
        WHERE b.funding_source_id <> i.funding_source_id OR b.merchant_id <> r.merchant_id
           OR b.campaign_id <> r.campaign_id
           OR i.amount_fen IS DISTINCT FROM (SELECT SUM(p.amount_fen) FROM journal_entries e
                JOIN postings p ON p.entry_id = e.id JOIN ledger_accounts a ON a.id = p.account_id
                WHERE e.ref_type = 'redemption' AND e.ref_id = i.redemption_id AND e.kind = 'redemption'
                  AND a.kind = 'spent' AND a.funding_source_id = i.funding_source_id)"""),
    ("a settlement batch's amount or count differs from its items",
     "SELECT b.id, b.amount_fen, SUM(i.amount_fen), b.redemption_count, COUNT(i.id) FROM settlement_batches b "
     "LEFT JOIN settlement_items i ON i.batch_id = b.id GROUP BY b.id, b.amount_fen, b.redemption_count "
     "HAVING b.amount_fen <> COALESCE(SUM(i.amount_fen), 0) OR b.redemption_count <> COUNT(i.id)"),
    ("a batch is in two payout files at once (it could be paid twice)",
     "SELECT batch_id, COUNT(*) FROM payout_file_items WHERE superseded_by_id IS NULL GROUP BY batch_id "
     "HAVING COUNT(*) > 1"),
    ("an exported or paid batch is in no payout file, or not in the one it names",
     "SELECT b.id, b.status, b.payout_file_id FROM settlement_batches b WHERE b.status <> 'pending' AND NOT EXISTS ("
     "SELECT 1 FROM payout_file_items i WHERE i.batch_id = b.id AND i.payout_file_id = b.payout_file_id "
     "AND i.superseded_by_id IS NULL)"),
    ("a batch is paid without a bank line of its amount or a second officer's override",
     "SELECT b.id, b.paid_evidence FROM settlement_batches b WHERE b.status = 'paid' AND NOT ("
     "(b.paid_evidence = 'bank_line' AND EXISTS (SELECT 1 FROM bank_statement_lines l WHERE l.batch_id = b.id "
     "AND l.match_status = 'matched' AND l.amount_fen = b.amount_fen)) OR (b.paid_evidence = 'override' "
     "AND b.override_requested_by_id IS NOT NULL AND b.override_requested_by_id <> b.confirmed_by_id))"),
    ("two bank lines pay one batch as matched",
     "SELECT batch_id, COUNT(*) FROM bank_statement_lines WHERE match_status <> 'unmatched_line' GROUP BY batch_id "
     "HAVING COUNT(*) > 1"),
    ("a citizen holds more vouchers of a round than its per-person limit",
     "SELECT v.release_id, v.citizen_id, COUNT(*), r.per_person_limit FROM vouchers v "
     "JOIN releases r ON r.id = v.release_id WHERE v.citizen_id IS NOT NULL "
     "GROUP BY v.release_id, v.citizen_id, r.per_person_limit HAVING COUNT(*) > r.per_person_limit"),
    ("a citizen holds more vouchers of a campaign than its per-person limit",
     "SELECT v.campaign_id, v.citizen_id, COUNT(*), c.per_person_limit FROM vouchers v "
     "JOIN campaigns c ON c.id = v.campaign_id WHERE v.citizen_id IS NOT NULL AND c.per_person_limit IS NOT NULL "
     "GROUP BY v.campaign_id, v.citizen_id, c.per_person_limit HAVING COUNT(*) > c.per_person_limit"),
    ("a lottery round's vouchers are not exactly its winners' (or more than its quantity)",
     """SELECT r.id, r.drawn_at IS NOT NULL, r.quantity,
               (SELECT COUNT(*) FROM lottery_entries e WHERE e.release_id = r.id AND e.won) AS won,
               (SELECT COUNT(*) FROM vouchers v WHERE v.release_id = r.id AND v.citizen_id IS NOT NULL) AS held
        FROM releases r WHERE r.mode = 'lottery' AND (
            (SELECT COUNT(*) FROM lottery_entries e WHERE e.release_id = r.id AND e.won) > r.quantity
         OR EXISTS (SELECT 1 FROM vouchers v WHERE v.release_id = r.id AND v.citizen_id IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM lottery_entries e WHERE e.release_id = r.id AND e.won AND e.citizen_id = v.citizen_id))
         OR (SELECT COUNT(*) FROM lottery_entries e WHERE e.release_id = r.id AND e.won)
            <> (SELECT COUNT(*) FROM vouchers v WHERE v.release_id = r.id AND v.citizen_id IS NOT NULL))"""),
    ("an opened round without exactly one reservation of its quantity and its minted vouchers (or a "
     "scheduled one with either)",
     """SELECT r.id, r.opened_at IS NOT NULL, r.quantity,
               (SELECT COUNT(*) FROM vouchers v WHERE v.release_id = r.id) AS minted,
               (SELECT COUNT(*) FROM journal_entries e WHERE e.kind = 'release_reserve' AND e.ref_type = 'release'
                                                         AND e.ref_id = r.id) AS reservations,
               (SELECT SUM(p.amount_fen) FROM journal_entries e JOIN postings p ON p.entry_id = e.id
                JOIN ledger_accounts a ON a.id = p.account_id AND a.kind = 'reserved'
                WHERE e.kind = 'release_reserve' AND e.ref_type = 'release' AND e.ref_id = r.id) AS reserved,
               r.quantity * vp.face_value_fen AS expected
        FROM releases r JOIN voucher_products vp ON vp.campaign_id = r.campaign_id
        WHERE CASE WHEN r.opened_at IS NULL
                   THEN (SELECT COUNT(*) FROM vouchers v WHERE v.release_id = r.id) > 0
                        OR EXISTS (SELECT 1 FROM journal_entries e WHERE e.kind = 'release_reserve'
                                   AND e.ref_type = 'release' AND e.ref_id = r.id)
                   ELSE (SELECT COUNT(*) FROM vouchers v WHERE v.release_id = r.id) <> r.quantity
                        OR (SELECT COUNT(*) FROM journal_entries e WHERE e.kind = 'release_reserve'
                            AND e.ref_type = 'release' AND e.ref_id = r.id) <> 1
                        OR (SELECT SUM(p.amount_fen) FROM journal_entries e JOIN postings p ON p.entry_id = e.id
                            JOIN ledger_accounts a ON a.id = p.account_id AND a.kind = 'reserved'
                            WHERE e.kind = 'release_reserve' AND e.ref_type = 'release' AND e.ref_id = r.id)
                           IS DISTINCT FROM r.quantity * vp.face_value_fen END"""),
    ("a budget change whose ledger entries do not match its decision (approved top-up or cut: one; "
     "approved move: two; pending or rejected: none)",
     """SELECT bc.id, bc.kind, bc.status, COUNT(e.id) FROM budget_changes bc
        LEFT JOIN journal_entries e ON e.ref_type = 'budget_change' AND e.ref_id = bc.id
        GROUP BY bc.id, bc.kind, bc.status
        HAVING COUNT(e.id) <> CASE WHEN bc.status <> 'approved' THEN 0 WHEN bc.kind = 'move' THEN 2 ELSE 1 END"""),
    ("a closed campaign still has unused vouchers",
     "SELECT v.campaign_id, v.status, COUNT(*) FROM vouchers v JOIN campaigns c ON c.id = v.campaign_id "
     "WHERE c.status = 'closed' AND v.status IN ('available', 'claimed') GROUP BY v.campaign_id, v.status"),
    ("a closed campaign still has available or reserved money",
     f"SELECT b.campaign_id, b.funding_source_id, b.kind, b.balance FROM ({BALANCES}) b "
     "JOIN campaigns c ON c.id = b.campaign_id WHERE c.status = 'closed' AND b.kind IN ('available', 'reserved') "
     "AND b.balance <> 0"),
    ("a closed campaign has a round that is not closed",
     "SELECT r.campaign_id, r.id, r.name, r.status, r.created_at, c.closed_at FROM releases r "
     "JOIN campaigns c ON c.id = r.campaign_id WHERE c.status = 'closed' AND r.status <> 'closed'",
     "round scheduled in a closed campaign"),
    ("a voucher expired before its validity ended, in a campaign still running",
     "SELECT v.code, v.valid_until FROM vouchers v JOIN campaigns c ON c.id = v.campaign_id "
     "WHERE v.status = 'expired' AND c.status <> 'closed' AND v.valid_until >= :now"),
]


def invariant_problems(conn: Connection, world: World, now: datetime | None = None) -> list[str]:
    """Every invariant's violations on what `conn` sees (one snapshot when its transaction is
    REPEATABLE READ), one line each, plus the funding sources against their budget history."""
    from voucher.core.clock import utcnow

    # The snapshot first, then the clock: an expiry committed before the snapshot ran at a moment no
    # later than this one (the clock only moves forward).
    conn.execute(text("SELECT 1"))
    params = {"now": now or utcnow()}
    problems = []
    for name, sql, *defect in INVARIANTS:
        rows = conn.execute(text(sql), params if ":now" in sql else {}).all()
        if rows:
            shown = "; ".join(str(tuple(row)) for row in rows[:3])
            tag = f"{KNOWN}{defect[0]}] " if defect else ""
            problems.append(f"{tag}{name}: {len(rows)} row(s): {shown}{' ...' if len(rows) > 3 else ''}")

    # A source's amount is what it was approved with plus its approved changes: a decision lost to a
    # concurrent one (a stale read written back) shows here.
    amounts = dict(conn.execute(text("SELECT id, amount_fen FROM funding_sources")).all())
    expected = dict(world.initial_source_fen)
    for kind, source, target, amount in conn.execute(text(
            "SELECT kind, funding_source_id, target_funding_source_id, amount_fen FROM budget_changes "
            "WHERE status = 'approved'")):
        expected[source] += amount if kind == "top_up" else -amount
        if kind == "move":
            expected[target] += amount
    wrong = {s: (amounts.get(s), fen) for s, fen in expected.items() if amounts.get(s) != fen}
    if wrong:
        problems.append(f"a funding source's amount differs from its approval plus approved changes: {wrong}")
    return problems


def check(app, world: World, run: SoakRun, operations: dict[str, Operation] | None = None) -> list[str]:
    """The final state's invariants, the product's own `ledger verify` besides, every acknowledged
    action in the database, no 5xx; and whatever the observer saw during the run."""
    from voucher.core.db import db
    from voucher.reports.consistency import verify_ledger

    operations = operations or OPERATIONS
    strict = os.environ.get("MONEY_SOAK_STRICT") == "1"
    problems = list(run.snapshot_problems)
    with _engine(app).connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        problems += invariant_problems(conn, world, run.ended_at)
        for out in run.outcomes:
            confirm = operations[out.op].confirm if out.op in operations else None
            if out.kind == "ok" and confirm is not None:
                problem = confirm(conn, out)
                if problem:
                    problems.append(f"acknowledged but not found ({out.op}, {out.actor}): {problem}")
        jobs = Counter(o.ids["job"] for o in run.outcomes if o.kind == "ok" and "job" in o.ids)
        for job, acknowledged in jobs.items():
            succeeded = conn.execute(text("SELECT COUNT(*) FROM job_runs WHERE job = :j AND status = 'succeeded'"),
                                     {"j": job}).scalar()
            if succeeded < acknowledged:
                problems.append(f"job {job}: {acknowledged} runs acknowledged, {succeeded} succeeded on record")
    with app.app_context():
        problems += [f"ledger verify: {line}" for line in verify_ledger()]
        db.session.remove()
    errors = [o for o in run.outcomes if o.kind == "error" or (
        o.kind == "defect" and (strict or o.ids.get("defect") not in KNOWN_DEFECTS))]
    problems += [f"{o.status} on {o.op} by {o.actor}: {o.message}" for o in errors[:20]]
    if len(errors) > 20:
        problems.append(f"... and {len(errors) - 20} more errors")
    # Violations a known, unfixed defect explains are counted, not failed on (unless strict).
    run.known = Counter(p.split(KNOWN, 1)[1].split("]", 1)[0] for p in problems if KNOWN in p)
    return [p for p in problems if strict or KNOWN not in p]


# Figures ------------------------------------------------------------------------------------------

TALLY = {
    "vouchers claimed or used": "SELECT COUNT(*) FROM vouchers WHERE citizen_id IS NOT NULL",
    "redeemed": "SELECT COUNT(*) FROM vouchers WHERE status = 'redeemed'",
    "expired": "SELECT COUNT(*) FROM vouchers WHERE status = 'expired'",
    "withdrawn": "SELECT COUNT(*) FROM vouchers WHERE status = 'withdrawn'",
    "redemptions reversed": "SELECT COUNT(*) FROM redemptions WHERE reversed_at IS NOT NULL",
    "rounds opened": "SELECT COUNT(*) FROM releases WHERE opened_at IS NOT NULL",
    "lotteries drawn": "SELECT COUNT(*) FROM releases WHERE drawn_at IS NOT NULL",
    "budget changes approved": "SELECT COUNT(*) FROM budget_changes WHERE status = 'approved'",
    "campaigns closed": "SELECT COUNT(*) FROM campaigns WHERE status = 'closed'",
    "settlement batches": "SELECT COUNT(*) FROM settlement_batches",
    "settled redemption parts": "SELECT COUNT(*) FROM settlement_items",
    "months closed": "SELECT COUNT(*) FROM closed_periods",
    "journal entries": "SELECT COUNT(*) FROM journal_entries",
}


def tally(conn: Connection) -> dict[str, int]:
    return {name: conn.execute(text(sql)).scalar() for name, sql in TALLY.items()}


def interleavings(outcomes: list[Outcome]) -> tuple[int, int]:
    """(operations that overlapped in time with another thread's on a campaign they share, such
    pairs). A job over every campaign shares each one."""
    ordered = sorted(outcomes, key=lambda o: o.started)
    active: list[Outcome] = []
    overlapped: set[int] = set()
    pairs = 0
    for out in ordered:
        active = [o for o in active if o.ended > out.started]
        for other in active:
            shared = out.campaigns is None or other.campaigns is None or bool(out.campaigns & other.campaigns)
            if other.thread != out.thread and shared:
                pairs += 1
                overlapped.update((id(out), id(other)))
        active.append(out)
    return len(overlapped), pairs


def summary(run: SoakRun, problems: list[str] | None = None) -> str:
    settings = run.settings
    overlapped, pairs = interleavings(run.outcomes)
    by_op: dict[str, Counter] = defaultdict(Counter)
    for out in run.outcomes:
        by_op[out.op][f"{out.status} {out.kind}"] += 1
    kinds = Counter(o.kind for o in run.outcomes)
    count, rate = len(run.outcomes), len(run.outcomes) / max(run.seconds, 1e-9)
    lines = [
        f"money soak: seed {settings.seed}, {settings.threads} threads x {settings.ops} operations = "
        f"{count} operations in {run.seconds:.1f} s ({rate:.0f} ops/s)",
        f"  answers: {dict(kinds)}; interleavings: {overlapped} operations overlapped another thread's on the same "
        f"campaign ({pairs} overlapping pairs); {len({o.rush for o in run.outcomes if o.rush is not None})} rushes "
        f"(all threads at once on the same choice); {run.days} days passed; {run.snapshots} consistent snapshots "
        f"checked during the run",
        "  afterwards: " + ", ".join(f"{name} {n}" for name, n in run.state.items()),
    ]
    for op in OPERATIONS:
        if op in by_op:
            lines.append(f"  {op:26s} " + ", ".join(f"{k} x{n}" for k, n in sorted(by_op[op].items())))
        elif OPERATIONS[op].placeholder:
            lines.append(f"  {op:26s} placeholder: {OPERATIONS[op].placeholder}")
    defects = Counter(o.ids["defect"] for o in run.outcomes if o.kind == "defect") + run.known
    for defect, count in defects.items():
        lines.append(f"  KNOWN DEFECT seen {count} time(s): {defect}: {KNOWN_DEFECTS.get(defect, '(not on the list)')}")
    if problems is not None:
        lines.append(f"  invariants: {'all hold' if not problems else f'{len(problems)} PROBLEMS'}")
        lines += [f"    - {p}" for p in problems]
        if problems:
            lines.append(f"  reproduce: MONEY_SOAK_SEED={settings.seed} MONEY_SOAK_THREADS={settings.threads} "
                         f"MONEY_SOAK_OPS={settings.ops} .venv/bin/pytest tests/test_money_invariants.py -k postgresql")
    return "\n".join(lines)


def fingerprint(run: SoakRun) -> str:
    """The workload's identity (each thread's operations as drawn), equal for equal seeds."""
    return hashlib.sha256(json.dumps(run.plans, ensure_ascii=False).encode()).hexdigest()[:12]
