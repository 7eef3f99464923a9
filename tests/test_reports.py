"""Voucher statistics per round, and the auditor's filterable, exportable audit log."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pandas as pd

from tests.factories import PASSWORD, claim_one, make_campaign, make_citizen, make_world
from voucher.core.clock import local_today
from voucher.counter.redemption import redeem, reverse
from voucher.reports.vouchers import voucher_statistics
from voucher.vouchers.closing import close_campaign


def _login(client, username):
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def test_voucher_statistics_per_round(db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=5)
    vouchers = [claim_one(release, make_citizen(t)) for t in "abc"]
    first = redeem(vouchers[0].code, 150_00, world.cashier).redemption
    reverse(first.id, reason="退单", cashier=world.cashier)
    redeem(vouchers[0].code, 150_00, world.cashier)  # redeemed again after the reversal
    redeem(vouchers[1].code, 150_00, world.cashier)
    db.session.commit()
    close_campaign(campaign.id, world.approver, "到期")  # 2 unclaimed withdrawn, 1 claimed expires
    db.session.commit()

    (row,) = voucher_statistics(campaign.id)
    assert (row.issued, row.claimed, row.redeemed, row.reversed, row.expired, row.withdrawn) == (5, 3, 2, 1, 1, 2)
    assert abs(row.redemption_rate - 2 / 3) < 1e-9


def test_the_voucher_statistics_page(client, db):
    world = make_world()
    make_campaign(world, quantity=4)
    _login(client, "auditor")
    text = client.get("/reports/vouchers").get_data(as_text=True)
    assert "第一轮" in text and "<td class=\"num\">4</td>" in text and "—" in text


def test_the_auditor_filters_and_exports_the_audit_log(client, db):
    world = make_world()
    campaign, release = make_campaign(world, quantity=2)
    voucher = claim_one(release, make_citizen("x"))
    done = redeem(voucher.code, 150_00, world.cashier).redemption
    reverse(done.id, reason="顾客退单", cashier=world.cashier)
    db.session.commit()
    _login(client, "auditor")

    page = client.get("/reports/audit?actor=cashier").get_data(as_text=True)
    assert "撤销核销" in page and "顾客退单" in page  # Chinese shown as is
    assert "批准活动" not in page
    page = client.get(f"/reports/audit?object_type=campaigns&object_id={campaign.id}").get_data(as_text=True)
    assert "批准活动" in page and "核销消费券" not in page
    tomorrow = (local_today() + timedelta(days=1)).isoformat()
    assert "没有符合条件的记录" in client.get(f"/reports/audit?date_from={tomorrow}").get_data(as_text=True)

    exported = client.get("/reports/audit.csv?actor=cashier")
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["编号", "时间", "操作人", "操作"]
    assert {r[3] for r in rows[1:]} == {"核销消费券", "撤销核销"}
    sheet = pd.read_excel(io.BytesIO(client.get("/reports/audit.xlsx?actor=cashier").data), dtype=str)
    assert len(sheet) == 2 and "原因：顾客退单" in " ".join(sheet["变更内容"])

    bad = client.get("/reports/audit?date_from=2026-02-31")
    assert bad.status_code == 422 and "开始日期格式应为 YYYY-MM-DD" in bad.get_data(as_text=True)
    assert client.get("/reports/audit?object_id=abc").status_code == 422
    assert client.get("/reports/audit.csv?date_from=2026-05-01&date_until=2026-04-01").status_code == 422
    _login(client, "cashier")
    assert client.get("/reports/audit").status_code == 403
    assert client.get("/reports/audit.csv").status_code == 403
