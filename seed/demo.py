"""Load seed/demo.toml through the same services the pages use, so the ledger rules apply; and write
the bank's statement of the demo's payout files, for trying reconciliation."""
from __future__ import annotations

import csv
import io
import random
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.analytics import benefit
from voucher.campaigns import grants, targets
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Campaign, Measure
from voucher.core.clock import local_moment, local_today, utcnow
from voucher.core.db import db
from voucher.core.money import format_yuan
from voucher.core.permissions import Role
from voucher.counter.redemption import redeem
from voucher.merchants.models import Merchant, Store
from voucher.reconciliation.mapping import TEMPLATE_HEADERS
from voucher.settlement.models import BatchStatus, SettlementBatch
from voucher.settlement.payout_file import remark
from voucher.vouchers import citizens, releases
from voucher.vouchers import services as vouchers


def load_demo(path: Path) -> list[tuple[str, str, str]]:
    """Create the demo merchants, accounts and campaign (once). Returns (username, role label, password)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    password = data["password"]
    accounts = [(u["username"], Role(u["role"]).label + "：" + u["display_name"], password) for u in data["users"]]
    if db.session.scalar(select(User.id).limit(1)) is not None:
        return accounts  # already loaded

    by_uscc: dict[str, Merchant] = {}
    for item in data["merchants"]:
        merchant = Merchant(name=item["name"], uscc=item["uscc"], category=item["category"], status="approved",
                            bank_account_name=item.get("bank_account_name"), bank_name=item.get("bank_name"),
                            bank_account_no=item.get("bank_account_no"))
        for store in item["stores"]:
            merchant.stores.append(Store(name=store["name"], district=store["district"], address=store.get("address", "")))
        db.session.add(merchant)
        by_uscc[item["uscc"]] = merchant
    db.session.flush()  # users below refer to merchant and store ids

    users: dict[str, User] = {}
    for item in data["users"]:
        merchant = by_uscc.get(item.get("merchant", ""))
        users[item["username"]] = create_user(
            item["username"], password, Role(item["role"]), display_name=item["display_name"],
            merchant_id=merchant.id if merchant else None,
            store_id=merchant.stores[0].id if merchant and item["role"] == Role.CASHIER.value else None,
            # The demo's shared, easy password (demo1234) is below the rule on purpose: demo data is for
            # trying the app on one machine, and `flask seed demo` is not there in production (wsgi.py).
            enforce_password_rule=False,
        )

    for spec in data.get("campaigns", []):
        _load_campaign(spec, users, by_uscc)
    for item in data.get("progress", []):
        measure = db.session.scalar(select(Measure).where(Measure.number == item["measure"]))
        targets.record_progress(
            measure.targets[item["target"]].id, quantity=item["quantity"], description=item["description"],
            evidence=item["evidence"], district=item.get("district"), actor=users["maker"],
        )
    for item in data.get("populations", []):  # 示例数据, labelled so in their source
        benefit.set_population(benefit.PopulationInput(item["district"], item["year"], item["residents"], item["source"]),
                               users["admin"])
    return accounts


def _yuan(spec: dict, key: str) -> int | None:
    return spec[key] * 100 if key in spec else None


def _load_campaign(spec: dict, users: dict[str, User], by_uscc: dict[str, Merchant]) -> None:
    measure = db.session.scalar(select(Measure).where(Measure.number == spec["measure"]))
    today = local_today()
    history = spec.get("history")
    # A campaign with a history was made, submitted and approved the day before its history starts.
    first_day = today - timedelta(days=history["days"]) if history else today
    valid_from = first_day - timedelta(days=1) if history else today
    made: dict[str, datetime | None] = {"create": None, "submit": None, "approve": None}
    if history:
        made = {step: local_moment(valid_from, hour) for step, hour in (("create", 9), ("submit", 10), ("approve", 11))}
    campaign = campaigns.create_campaign(
        campaigns.CampaignInput(
            measure_id=measure.id, name=spec["name"], description=spec.get("description", ""),
            instrument=spec["instrument"],
            sources=[
                campaigns.SourceInput(s["kind"], s["name"], s["amount_yuan"] * 100, share=s.get("share", 1))
                for s in spec["sources"]
            ],
            face_value_fen=_yuan(spec, "face_value_yuan") or 0, threshold_fen=_yuan(spec, "threshold_yuan") or 0,
            percent_bp=spec["percent"] * 100 if "percent" in spec else None,
            planned_quantity=spec.get("planned_quantity"),
            award_min_fen=_yuan(spec, "award_min_yuan"), award_max_fen=_yuan(spec, "award_max_yuan"),
            categories=spec.get("categories", []), districts=spec.get("districts", []),
            merchant_ids=[by_uscc[code].id for code in spec.get("merchants", [])],
            valid_from=valid_from, valid_until=today + timedelta(days=spec["valid_days"]),
        ),
        users["maker"], at=made["create"],
    )
    campaigns.submit_for_approval(campaign, users["maker"], at=made["submit"])
    if spec.get("status") == "pending_approval":
        return
    campaigns.approve(campaign.id, users["approver"], plan_override_reason=spec.get("plan_override_reason"),
                      at=made["approve"])
    if history:
        _load_history(campaign, history, first_day, users)
    for item in spec.get("releases", []):
        release = releases.create_release(
            campaign, name=item["name"], quantity=item["quantity"], per_person_limit=item["per_person_limit"],
            opens_at=utcnow(), actor=users["maker"], mode=item.get("mode", "first_come"),
        )
        releases.open_release(release.id, users["maker"])
    for item in spec.get("grants", []):
        application = grants.submit(
            campaign.id, applicant_name=item["applicant"], applicant_uscc=item["uscc"], project=item["project"],
            evidence=item["evidence"], requested_fen=item["requested_yuan"] * 100, district=item.get("district"),
            actor=users["maker"],
        )
        if "review_yuan" in item:
            grants.review(application.id, users["maker"], recommended_fen=item["review_yuan"] * 100, note="材料齐全，符合条件")
        if "approve_yuan" in item:
            grants.approve(application.id, users["approver"], amount_fen=item["approve_yuan"] * 100)
        if item.get("pay"):
            grants.pay(application.id, users["finance"])


def _load_history(campaign: Campaign, spec: dict, first_day: date, users: dict[str, User]) -> None:
    """Replay a few days of a release, from `first_day` to yesterday, through the services with the moment
    each step happened: the release opens, demo citizens claim it (a few each day) and most redeem at the
    counter. Every fen moves as it would live (the postings are dated by the services); the choices come
    from a fixed random seed, so every run loads the same history."""
    rng = random.Random(spec["random_seed"])
    days, count = spec["days"], spec["citizens"]
    opened = local_moment(first_day, 9)
    release = releases.create_release(
        campaign, name=spec["release"], quantity=count, per_person_limit=1, opens_at=opened, actor=users["maker"],
        at=opened - timedelta(hours=1),
    )
    releases.open_release(release.id, users["maker"], at=opened)
    cashiers = [users[name] for name in spec["cashiers"]]
    low, high = spec["order_yuan"]
    claims: list[tuple[datetime, str]] = []
    redemptions: list[tuple[datetime, str, User, int]] = []
    for n in range(count):
        phone = f"1380000{n + 1:04d}"  # obviously not a real subscriber
        day = n % days
        claimed = local_moment(first_day + timedelta(days=day), 9, 5) + timedelta(minutes=rng.randint(0, 11 * 60))
        claims.append((claimed, phone))
        # The first claimant of each day redeems that day, so every day of the history has redemptions.
        if n >= days and rng.randint(1, 100) > spec["redeemed_percent"]:
            continue  # kept unused: the release's breakage
        later = 0 if n < days else min(rng.choice((0, 0, 1, 2)), days - 1 - day)
        if later == 0:
            when = claimed + timedelta(minutes=rng.randint(15, 90))
        else:
            when = local_moment(first_day + timedelta(days=day + later), 10) + timedelta(minutes=rng.randint(0, 11 * 60))
        # an order of at least the threshold, to the jiao
        redemptions.append((when, phone, rng.choice(cashiers), rng.randint(low * 10, high * 10) * 10))

    # In the order they happened, so the audit log and the ledger read as a week of real use.
    tokens: dict[str, str] = {}
    events = [(when, 0, phone, None, 0) for when, phone in claims] + [(when, 1, *rest) for when, *rest in redemptions]
    for when, kind, phone, cashier, amount in sorted(events, key=lambda e: (e[0], e[1], e[2])):
        if kind == 0:
            tokens[phone] = vouchers.qr_token(vouchers.claim(release.id, citizens.citizen_for(phone), now=when))
        else:
            redeem(tokens[phone], amount, cashier, now=when)


def bank_statement(day: date | None = None) -> tuple[bytes, int]:
    """What the bank would send back after paying every batch of the payout files not yet confirmed
    (status 已导出待确认) in full, in the system's statement template (UTF-8 CSV): one line per batch,
    its remark carrying the batch reference. Returns the file and its number of lines. Reads only."""
    day = day or local_today()
    batches = db.session.scalars(
        select(SettlementBatch).where(SettlementBatch.status == BatchStatus.EXPORTED.value).order_by(SettlementBatch.id)
    ).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TEMPLATE_HEADERS)
    for batch in batches:
        merchant = batch.merchant
        writer.writerow([day.isoformat(), f"DEMO{day:%Y%m%d}{batch.id:06d}", remark(batch), merchant.bank_account_name,
                         "".join((merchant.bank_account_no or "").split()), format_yuan(batch.amount_fen, grouping=False)])
    return ("\ufeff" + out.getvalue()).encode("utf-8"), len(batches)
