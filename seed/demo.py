"""Load seed/demo.toml through the same services the pages use, so the ledger rules apply."""
from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from voucher.accounts.models import User
from voucher.accounts.services import create_user
from voucher.campaigns import grants, targets
from voucher.campaigns import services as campaigns
from voucher.campaigns.models import Measure
from voucher.core.clock import local_today, utcnow
from voucher.core.db import db
from voucher.core.permissions import Role
from voucher.merchants.models import Merchant, Store
from voucher.vouchers import releases


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
    return accounts


def _yuan(spec: dict, key: str) -> int | None:
    return spec[key] * 100 if key in spec else None


def _load_campaign(spec: dict, users: dict[str, User], by_uscc: dict[str, Merchant]) -> None:
    measure = db.session.scalar(select(Measure).where(Measure.number == spec["measure"]))
    today = local_today()
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
            valid_from=today, valid_until=today + timedelta(days=spec["valid_days"]),
        ),
        users["maker"],
    )
    campaigns.submit_for_approval(campaign, users["maker"])
    if spec.get("status") == "pending_approval":
        return
    campaigns.approve(campaign.id, users["approver"], plan_override_reason=spec.get("plan_override_reason"))
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
