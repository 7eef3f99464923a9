"""The audit log page and its exports: every action and object type named in Chinese, each change shown as
named fields (amounts in yuan, statuses in words), a page of 50 at a time with the filter kept, and the whole
filtered set exported (bounded) to the auditors."""
from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import voucher
from tests.factories import PASSWORD, make_campaign, make_world
from voucher.core import audit
from voucher.core.audit import AuditEntry
from voucher.core.clock import utcnow
from voucher.core.permissions import Role
from voucher.reports import audit_log
from voucher.reports.audit_diff import diff, value_text
from voucher.reports.audit_names import ACTIONS, OBJECT_TYPES, action_name, field_name, object_type_name
from voucher.settlement.models import SettlementBatch

PRODUCT = Path(voucher.__file__).parent
AUDITOR_ROLES = {Role.AUDITOR.value, Role.ADMIN.value, Role.FINANCE.value}
USERS = {"maker": "bureau_maker", "approver": "bureau_approver", "manager": "merchant_manager", "cashier": "cashier",
         "finance": "finance", "auditor": "auditor", "admin": "admin"}


def recorded_actions() -> dict[str, str]:
    """Every action the product records: the first argument of each audit.record(...) / audit.row(...) (or
    of record / row imported from voucher.core.audit), {action: where}. Both branches of a conditional count;
    an action that is not a literal fails, since no test could then know its name."""
    found: dict[str, str] = {}
    for path in sorted(PRODUCT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module == "voucher.core.audit" for alias in node.names if alias.name in ("record", "row")}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            by_module = (isinstance(func, ast.Attribute) and func.attr in ("record", "row")
                         and isinstance(func.value, ast.Name) and func.value.id == "audit")
            if not (by_module or (isinstance(func, ast.Name) and func.id in imported)):
                continue
            where = f"{path.relative_to(PRODUCT.parent)}:{node.lineno}"
            first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "action"), None)
            pending = [first]
            while pending:
                argument = pending.pop()
                if isinstance(argument, ast.IfExp):
                    pending += [argument.body, argument.orelse]
                elif isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.setdefault(argument.value, where)
                else:
                    pytest.fail(f"{where}: the audit action is not a string literal, so it cannot be checked for a name")
    return found


def test_every_action_the_code_records_has_a_chinese_name():
    recorded = recorded_actions()
    # the scan itself works: it finds the actions reviewers named, across the packages
    assert {"settlement.build", "index.catalogue.approve", "voucher.redeem", "baselines.import"} <= set(recorded)
    assert len(recorded) >= 70
    unnamed = {action: where for action, where in recorded.items() if action not in ACTIONS}
    assert not unnamed, "audit actions without a Chinese name in voucher/reports/audit_names.py ACTIONS:\n" + "\n".join(
        f"  {action}  ({where})" for action, where in sorted(unnamed.items()))
    chinese = re.compile(r"[\u4e00-\u9fff]")
    assert all(chinese.search(name) for name in ACTIONS.values())


def test_every_table_has_a_chinese_name():
    from voucher.core.db import db

    unnamed = sorted(set(db.metadata.tables) - set(OBJECT_TYPES))
    assert not unnamed, f"tables without a Chinese name in voucher/reports/audit_names.py OBJECT_TYPES: {unnamed}"


def test_unknown_codes_show_as_themselves():
    assert action_name("campaign.teleport") == "campaign.teleport"
    assert object_type_name("wormholes") == "wormholes"
    assert field_name("flux_capacity") == "flux_capacity"
    assert action_name(None) == "" and object_type_name("") == ""
    change = diff("wormholes", {"status": "sideways", "odd": [1, {"x": None}]}, {"status": "upwards", "odd": [1, {"x": None}]})
    assert [(f.label, f.before, f.after) for f in change.shown] == [("状态", "sideways", "upwards")]
    assert [f.label for f in change.unchanged] == ["odd"]


def test_a_change_in_named_fields_yuan_and_words():
    change = diff(
        "campaigns",
        {"status": "pending_approval", "name": "春季消费券", "validity_days": 7},
        {"name": "春季消费券", "validity_days": 7, "status": "active", "returned_fen": 1_234_567, "reason": "到期",
         "sources": [{"kind": "municipal_finance", "amount_fen": 500_000_00, "status": "in_hand"}]},
    )
    assert change.has_before
    status, *rest = change.shown
    assert (status.label, status.before, status.after, status.changed) == ("状态", "待审批", "进行中", True)
    assert [(f.label, f.before, f.after, f.changed) for f in rest] == [
        ("退回金额", None, "12,345.67 元", False), ("原因", None, "到期", False),
        ("资金来源", None, "（类型：市级财政，金额：500,000.00 元，资金状态：已到位）", False)]
    assert [f.label for f in change.unchanged] == ["名称", "领取后有效天数"]
    assert change.text() == ("状态：待审批 → 进行中\n退回金额：12,345.67 元\n原因：到期\n"
                             "资金来源：（类型：市级财政，金额：500,000.00 元，资金状态：已到位）\n未变更：名称、领取后有效天数")
    deleted = diff("campaigns", {"name": "春季消费券", "status": "draft"}, None)  # a draft deleted: before only
    assert (deleted.has_before, deleted.has_after) == (True, False)
    assert [(f.label, f.before, f.after) for f in deleted.shown] == [("名称", "春季消费券", None), ("状态", "草稿", None)]
    assert deleted.text() == "名称（变更前）：春季消费券\n状态（变更前）：草稿"
    # statuses in the words of their own object's enum; -fen amounts signed; basis points as percent
    assert value_text("status", "pending", "settlement_batches") == "待支付"
    assert value_text("status", "pending", "merchants") == "待审核"
    assert value_text("voucher_status", "redeemed") == "已核销"
    assert value_text("amount_fen", -150) == "-1.50 元"
    assert value_text("percent_bp", 1250) == "12.5%"
    assert value_text("seed_commitment", None) == "（空）"  # recorded as not set; a field not recorded is the page's —
    assert value_text("locked_until", "2027-03-17T02:15:00") == "2027-03-17 10:15:00"  # UTC kept, Beijing shown


def _login(client, username):
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": PASSWORD}).status_code == 302


def _without_raw(page: str) -> str:
    """The page less its <details> of raw records, which keep the codes and JSON on purpose."""
    return re.sub(r"<details class=\"raw\">.*?</details>", "", page, flags=re.S)


def _row(page: str, entry_id: int) -> str:
    """One record's row of the page (up to the next record's)."""
    start = page.index(f'<tr id="audit-{entry_id}">')
    end = page.find('<tr id="audit-', start + 1)
    return page[start:end if end > 0 else len(page)]


def _last_id(db) -> int:
    return db.session.scalar(select(func.max(AuditEntry.id)))


def test_the_page_names_actions_objects_and_fields_and_marks_what_changed(client, db):
    world = make_world()
    campaign, _ = make_campaign(world, quantity=2)
    audit.record("settlement.build", SettlementBatch(), actor=world.finance,
                 after={"business_date": "2027-03-16", "batches": 2, "total_fen": 123_456, "held_merchants": []})
    build = _last_id(db)
    audit.record("campaign.update", campaign, actor=world.maker,
                 before={"name": "春季券", "per_person_limit": 1, "status": "draft"},
                 after={"name": "春季券", "per_person_limit": 2, "status": "draft"})
    update = _last_id(db)
    db.session.commit()
    _login(client, "auditor")

    page = client.get("/reports/audit").get_data(as_text=True)
    shown = _without_raw(page[page.index('<table class="table audit">'):])  # the records, not the filter's option values
    for code in ("settlement.build", "campaign.update", "campaign.approve", "bank_statements", "settlement_batches",
                 "total_fen", "pending_approval", '{"', "&#34;"):
        assert code not in shown, f"{code} shown raw"
    built = _row(page, build)
    assert "生成结算批次" in built and "结算批次" in built and "finance" in built
    assert "合计金额" in built and "1,234.56 元" in built and "业务日期" in built
    assert "<thead>" not in built  # a record of the state after only: no before column
    updated = _row(page, update)
    assert re.search(r'<tr class="changed"><th scope="row">每人限领.*?<del>1</del></td><td><ins>2</ins>', updated, re.S)
    assert "未变更：名称、状态" in updated and "春季券" not in _without_raw(updated)  # unchanged: named, not spelt out
    approved = _row(page, _approve_id(db, campaign.id))
    assert "批准活动" in approved and "<del>待审批</del>" in approved and "<ins>进行中</ins>" in approved
    # the raw record stays at hand, folded
    assert "<summary>原始记录</summary>" in built and "settlement.build" in built
    # the filter offers object types by name
    assert '<option value="campaigns" >活动</option>' in page and '<option value="settlement_batches" >结算批次</option>' in page


def _approve_id(db, campaign_id: int) -> int:
    return db.session.scalar(select(AuditEntry.id).where(
        AuditEntry.action == "campaign.approve", AuditEntry.object_id == campaign_id))


def _bulk(db, count: int, actor: str, object_type: str = "vouchers", start: int = 1) -> None:
    """`count` records in one INSERT, signed as audit.record signs them."""
    now = utcnow()
    rows = [audit.signed({"at": now, "actor_id": None, "actor_label": actor, "action": "voucher.claim",
                          "object_type": object_type, "object_id": start + n, "before": None,
                          "after": {"release_id": 1, "citizen_id": start + n}}) for n in range(count)]
    db.session.execute(AuditEntry.__table__.insert(), rows)


def _ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="audit-(\d+)">', page)]


def test_pages_of_fifty_with_the_count_and_the_filter_kept(client, db):
    make_world()
    for _ in range(3):  # interleaved, so that the filter has something to leave out
        _bulk(db, 781, "市民#7")
        _bulk(db, 218, "市民#8", object_type="lottery_entries")
    _bulk(db, 2, "市民#7", start=5000)
    db.session.commit()
    mine = list(db.session.scalars(select(AuditEntry.id).where(AuditEntry.actor_label == "市民#7")
                                   .order_by(AuditEntry.id.desc())))
    everything = db.session.scalar(select(func.count(AuditEntry.id)))
    assert len(mine) == 2345
    _login(client, "auditor")

    first = client.get("/reports/audit").get_data(as_text=True)
    assert f"共 {everything + 1} 条记录" in first  # and the auditor's sign-in
    assert len(_ids(first)) == 50

    query = "actor=%E5%B8%82%E6%B0%91%237&object_type=vouchers"
    first = client.get(f"/reports/audit?{query}").get_data(as_text=True)
    assert "共 2345 条记录，当前显示第 1–50 条（第 1 / 47 页）" in first
    assert _ids(first) == mine[:50]
    links = re.findall(r'<a href="(/reports/audit\?[^"]+)"', first)
    assert links and all("actor=%E5%B8%82%E6%B0%91%237" in link and "object_type=vouchers" in link for link in links)
    assert any("page=47" in link for link in links) and any("page=2" in link for link in links)
    assert 'rel="next"' in first and 'rel="prev"' not in first

    last = client.get(f"/reports/audit?{query}&page=47").get_data(as_text=True)
    assert "当前显示第 2301–2345 条（第 47 / 47 页）" in last
    assert _ids(last) == mine[2300:]  # the oldest 45
    assert 'rel="prev"' in last and 'rel="next"' not in last
    middle = client.get(f"/reports/audit?{query}&page=20").get_data(as_text=True)
    assert _ids(middle) == mine[950:1000]
    assert client.get(f"/reports/audit?{query}&page=999").get_data(as_text=True).count('<tr id="audit-') == 45
    assert _ids(client.get(f"/reports/audit?{query}&page=abc").get_data(as_text=True)) == mine[:50]  # as core.paging reads it


def _sheet(response):
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return list(load_workbook(io.BytesIO(response.data))["审计日志"].iter_rows(values_only=True))


def test_the_export_is_the_whole_filtered_set_in_chinese_bounded(client, db, monkeypatch):
    make_world()
    _bulk(db, 120, "市民#7")
    _bulk(db, 30, "市民#8")
    audit.write(audit.signed({
        "at": utcnow(), "actor_id": None, "actor_label": "=HYPERLINK(\"http://x\",\"点我\")", "action": "risk.clear",
        "object_type": "risk_flags", "object_id": 3, "before": {"status": "open"},
        "after": {"status": "cleared", "note": "=1+1"}}))
    db.session.commit()
    _login(client, "auditor")

    rows = _sheet(client.get("/reports/audit.xlsx?actor=%E5%B8%82%E6%B0%91%237"))
    assert rows[0] == ("编号", "时间", "操作人", "操作", "对象类型", "对象编号", "变更内容", "变更前（原始记录）", "变更后（原始记录）")
    assert len(rows) == 121  # all of them, not a page
    assert {r[3] for r in rows[1:]} == {"领取消费券"} and {r[4] for r in rows[1:]} == {"消费券"}
    assert rows[1][6] == "发放场次编号：1\n市民编号：120" and rows[-1][6] == "发放场次编号：1\n市民编号：1"

    (flag,) = [r for r in _sheet(client.get("/reports/audit.xlsx?object_type=risk_flags"))[1:]]
    assert flag[2] == "'=HYPERLINK(\"http://x\",\"点我\")"  # a formula someone typed stays text
    assert flag[3:6] == ("处理风险提示", "风险提示", 3)
    assert flag[6] == "状态：待核查 → 已处理\n备注：=1+1"

    monkeypatch.setattr(audit_log, "EXPORT_LIMIT", 100)
    for fmt in ("xlsx", "csv"):
        refused = client.get(f"/reports/audit.{fmt}?actor=%E5%B8%82%E6%B0%91%237")
        assert refused.status_code == 422
        assert "符合筛选条件的记录共 120 条，超过单次导出上限 100 条" in refused.get_data(as_text=True)
    assert len(_sheet(client.get("/reports/audit.xlsx?actor=%E5%B8%82%E6%B0%91%238"))) == 31  # within the bound


def test_only_the_audit_page_readers_export_it(client, db):
    make_world()
    db.session.commit()
    for username, role in USERS.items():
        _login(client, username)
        response = client.get("/reports/audit.xlsx")
        if role in AUDITOR_ROLES:  # the page's own readers (reports.views.AUDITORS)
            assert _sheet(response)[0][6] == "变更内容", username
            assert client.get("/reports/audit").status_code == 200
        else:
            assert response.status_code == 403, username
            assert client.get("/reports/audit.csv").status_code == 403
            assert client.get("/reports/audit").status_code == 403
    client.post("/logout")
    assert client.get("/reports/audit.xlsx").status_code == 302  # to the sign-in page
