"""Load seed/demo.toml through the same services the pages use, so the ledger rules apply."""
from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.campaigns import releases
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Measure
from voucher.core.clock import local_today, utcnow
from voucher.core.db import db
from voucher.core.permissions import Role
from voucher.merchants.models import Merchant, Store


def load_demo(path: Path) -> list[tuple[str, str, str]]:
    """Create the demo merchants, accounts and campaign (once). Returns (username, role label, password)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    password = data["password"]
    accounts = [(u["username"], Role(u["role"]).label + "：" + u["display_name"], password) for u in data["users"]]
    if db.session.scalar(select(User.id).limit(1)) is not None:
        return accounts  # already loaded

    by_uscc: dict[str, Merchant] = {}
    for item in data["merchants"]:
        merchant = Merchant(name=item["name"], uscc=item["uscc"], category=item["category"], status="approved")
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
        )

    spec = data.get("demo_campaign")
    if spec:
        measure = db.session.scalar(select(Measure).where(Measure.number == spec["measure"]))
        today = local_today()
        campaign = campaigns.create_campaign(
            campaigns.CampaignInput(
                measure_id=measure.id, name=spec["name"],
                sources=[campaigns.SourceInput("municipal_finance", spec["funding_name"], spec["budget_yuan"] * 100)],
                face_value_fen=spec["face_value_yuan"] * 100,
                threshold_fen=spec["threshold_yuan"] * 100, categories=spec["categories"], districts=spec["districts"],
                valid_from=today, valid_until=today + timedelta(days=spec["valid_days"]),
            ),
            users["maker"],
        )
        campaigns.submit_for_approval(campaign, users["maker"])
        campaigns.approve(campaign.id, users["approver"])
        release = releases.create_release(
            campaign, name=spec["release_name"], quantity=spec["release_quantity"],
            per_person_limit=spec["per_person_limit"], opens_at=utcnow(), actor=users["maker"],
        )
        releases.open_release(release.id, users["maker"])
    return accounts
