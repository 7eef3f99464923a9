"""ICDI-EC data: the catalogue a fresh database starts with, imports (all or nothing, row-level Chinese
messages), the CLI, and the campaign feed with its provenance and the official override."""
from __future__ import annotations

import csv
import io
import uuid

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import create_engine, func, select, text

from tests.conftest import _postgres_admin_url, make_app
from tests.factories import claim_one, make_campaign, make_citizen, make_world
from tests.test_instruments import merchant_with_cashier
from voucher.core.audit import AuditEntry
from voucher.core.clock import local_today
from voucher.counter.redemption import redeem, reverse
from voucher.info_consumption_index import catalogue, feed, importing, method, services
from voucher.info_consumption_index.models import IndexImportBatch, IndexValue, ValueSource

CODES = catalogue.default_catalogue().codes


@pytest.fixture
def cat(db):
    version = catalogue.install_default_catalogue()
    db.session.commit()
    return catalogue.as_method(version)


def wide_csv(rows: list[dict], codes=CODES) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["city", "year", *codes])
    for row in rows:
        writer.writerow([row["city"], row["year"], *(row.get(c, "") for c in codes)])
    return out.getvalue().encode("utf-8")


def full_row(city: str, year: int, base: float) -> dict:
    row = {"city": city, "year": year}
    for i in catalogue.default_catalogue().indicators:
        row[i.code] = min(base, 99) if i.kind == "share" else base * 10
    return row


def three_cities(year: int = 2020) -> bytes:
    return wide_csv([full_row("连云港", year, 50), full_row("徐州", year, 60), full_row("苏州", year, 90)])


# A freshly migrated database ----------------------------------------------------------------------------


@pytest.fixture
def fresh_database(database_url, tmp_path):
    """A new, empty database of the same kind, migrated from nothing (the session's is emptied by tests)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    admin = create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"voucher_fresh_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_fresh_database_has_the_default_catalogue_and_imports_and_computes_from_the_cli(fresh_database, tmp_path):
    app = make_app(fresh_database)
    try:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            version = catalogue.active_version()
            assert version.version == 1 and version.status == "active"
            assert [i.code for i in version.indicators] == CODES
            s11 = next(i for i in version.indicators if i.code == "S11")
            assert (s11.name, s11.unit, s11.kind, s11.first_level, s11.second_level) == (
                "信息消费项目专项资金额度", "元", "numeric", "supply", "信息消费引导水平")
            assert catalogue.as_method(version).first_weights().tolist() == pytest.approx([0.15, 0.55, 0.30])

        path = tmp_path / "values.csv"
        path.write_bytes(three_cities())
        runner = app.test_cli_runner()
        imported = runner.invoke(args=["index", "import", str(path)])
        assert imported.exit_code == 0, imported.output
        computed = runner.invoke(args=["index", "compute", "--year", "2020"])
        assert computed.exit_code == 0, computed.output
        lines = computed.stdout.strip().splitlines()
        assert lines[0] == "city,composite,demand,supply,environment,rank"
        assert [line.split(",")[0] for line in lines[1:]] == ["苏州", "徐州", "连云港"]
        assert [line.split(",")[-1] for line in lines[1:]] == ["1", "2", "3"]
        with app.app_context():
            data = services.load()
            result = services.compute(data, method.Settings())
            row = result.table(2020)[0]
            first = lines[1].split(",")
            assert float(first[1]) == pytest.approx(row["composite"], abs=1e-6)
            assert float(first[3]) == pytest.approx(row["supply"], abs=1e-6)
            recorded = services.computations()[0]
            assert recorded.catalogue_version.version == 1 and recorded.settings == method.Settings().as_dict()
    finally:
        with app.app_context():
            from voucher.core.db import db as _db

            _db.session.remove()
            _db.engine.dispose()


# Imports ------------------------------------------------------------------------------------------------


def test_long_and_wide_imports(db, cat):
    long_form = "city,year,indicator,value\n连云港市,2020,D1,41000\n连云港,2020,s4,88.5%\n徐州,2020,E7,\"1,234.5\"\n"
    summary = importing.import_file(long_form.encode(), "long.csv", cat)
    assert (summary.cells, summary.cities, summary.years) == (3, ["徐州", "连云港"], [2020])
    values = {(v.city, v.code): v.value for v in db.session.scalars(select(IndexValue))}
    assert values == {("连云港", "D1"): 41000, ("连云港", "S4"): 88.5, ("徐州", "E7"): 1234.5}

    book = Workbook()
    sheet = book.active
    sheet.append(["城市", "年份", "D1", "S4"])
    sheet.append(["徐州", 2020, 45000, 91])
    sheet.append(["连云港", 2020, 42000, None])  # an empty cell is not imported
    buffer = io.BytesIO()
    book.save(buffer)
    summary = importing.import_file(buffer.getvalue(), "wide.xlsx", cat)
    assert summary.batch.layout == "wide" and summary.batch.file_type == "xlsx"
    assert summary.cells == 3 and summary.replaced == 1  # 连云港 D1 41000 -> 42000
    values = {(v.city, v.code): v.value for v in db.session.scalars(select(IndexValue))}
    assert values[("连云港", "D1")] == 42000 and values[("徐州", "S4")] == 91 and values[("连云港", "S4")] == 88.5


@pytest.mark.parametrize("body, message", [
    ("city,year,indicator,value\n连云港,2020,D1,41000\n连云港,2020,X9,3\n", "第 3 行：未知的指标代码“X9”"),
    ("city,year,indicator,value\n连云港,2020,S4,130\n", "第 2 行 S4（社区医院及一级以上医疗机构电子病历普及率，占比类，按百分数填写 0-100）：130 超出范围"),
    ("city,year,indicator,value\n连云港,2020,D1,四万\n", "第 2 行 D1：“四万”不是数字"),
    ("city,year,indicator,value\n连云港,2020,D1,1\n连云港,2020,D1,2\n", "第 3 行 D1：连云港 2020 年 D1 与第 2 行重复"),
    ("city,year,indicator,value\n连云港,2020,D1,-5\n", "第 2 行 D1（人均可支配收入，单位 元）：不能为负数"),
    ("city,year,indicator,value\n,2020,D1,5\n", "第 2 行：城市为空"),
    ("city,year,indicator,value\n连云港,二〇二〇,D1,5\n", "第 2 行：年份“二〇二〇”应为 1990-2100 之间的整数"),
    ("city,year,indicator,value\n连云港,2020,D1,\n", "第 2 行 D1：数值为空"),
    ("city,year,D1,Z7\n连云港,2020,5,6\n", "第 4 列表头“Z7”不是指标代码"),
    ("city,year,D1,E1\n连云港,2020,5,101\n徐州,2020,abc,50\n", "第 3 行 D1：“abc”不是数字"),
    ("城市,D1\n连云港,5\n", "表头缺少“year”（或“年份”）列"),
])
def test_bad_files_are_refused_whole_with_row_level_messages(db, cat, body, message):
    importing.import_file(three_cities(), "good.csv", cat)
    db.session.commit()
    before = sorted((v.city, v.year, v.code, v.value) for v in db.session.scalars(select(IndexValue)))
    batches = db.session.scalar(select(func.count(IndexImportBatch.id)))
    with pytest.raises(importing.ImportRefused) as refused:
        importing.import_file(body.encode(), "bad.csv", cat)
    assert any(message in p for p in refused.value.problems), refused.value.problems
    db.session.rollback()
    after = sorted((v.city, v.year, v.code, v.value) for v in db.session.scalars(select(IndexValue)))
    assert after == before
    assert db.session.scalar(select(func.count(IndexImportBatch.id))) == batches


def test_a_file_with_several_problems_lists_them_all_and_imports_nothing(db, cat):
    body = "city,year,indicator,value\n连云港,2020,D1,41000\n连云港,2020,S4,130\n连云港,2020,Q1,1\n连云港,2020,D1,41000\n"
    with pytest.raises(importing.ImportRefused) as refused:
        importing.import_file(body.encode(), "bad.csv", cat)
    assert refused.value.total == 3
    assert [p.split("：")[0].split(" ")[1] for p in refused.value.problems] == ["3", "4", "5"]
    db.session.rollback()
    assert db.session.scalar(select(func.count(IndexValue.id))) == 0


def test_cli_import_refuses_a_bad_file_with_the_rows(app, db, cat, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("city,year,indicator,value\n连云港,2020,S4,130\n连云港,2020,D1,x\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["index", "import", str(path)])
    assert result.exit_code == 2
    assert "未导入：文件有 2 处问题" in result.stderr and "第 3 行 D1" in result.stderr
    assert db.session.scalar(select(func.count(IndexValue.id))) == 0


def test_templates_round_trip(db, cat):
    template = importing.template_csv(cat).decode("utf-8-sig")
    assert template.strip() == "city,year," + ",".join(CODES)
    filled = template.strip() + "\n连云港,2020," + ",".join("50" for _ in CODES) + "\n"
    assert importing.import_file(filled.encode(), "filled.csv", cat).cells == 23
    book = load_workbook(io.BytesIO(importing.template_xlsx(cat)))
    assert [c.value for c in book["数据"][1]] == ["city", "year", *CODES]
    assert book["指标说明"]["A2"].value == "D1"


def test_missing_values_refused_unless_imputed_and_flagged_in_the_cli(app, db, cat):
    rows = [full_row("连云港", 2020, 50), full_row("徐州", 2020, 60), full_row("苏州", 2020, 90)]
    del rows[0]["E7"]
    importing.import_file(wide_csv(rows), "gap.csv", cat)
    db.session.commit()
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["index", "compute", "--year", "2020"])
    assert refused.exit_code == 2 and "连云港 2020 年 E7" in refused.stderr
    imputed = runner.invoke(args=["index", "compute", "--year", "2020", "--missing", "median"])
    assert imputed.exit_code == 0, imputed.output
    lines = imputed.stdout.strip().splitlines()
    assert lines[0].endswith(",imputed")
    assert [line.split(",")[-1] for line in lines[1:]] == ["", "", "E7"]


# The campaign feed --------------------------------------------------------------------------------------


def test_feed_publishes_s11_with_provenance_and_yields_to_an_official_figure(db, cat):
    world = make_world()
    digital, cashier = merchant_with_cashier(db, "港城数码通讯店", "信息消费", "海州区", 7, "cashier_digital")
    tagged, release = make_campaign(world, name="5G 手机换新券", categories=["信息消费"], quantity=5)
    feed.request_tag(tagged.id, True, world.maker)  # measure 1, tagged by hand: one asks, another approves
    feed.decide_tag(tagged.id, True, world.approver)
    info_measure, release17 = make_campaign(world, name="宽带提速补贴券", measure_number=17,
                                            categories=["信息消费"], quantity=5,
                                            plan_override_reason="措施17未列资金，按财政批复安排")
    _plain, plain_release = make_campaign(world, name="餐饮券", quantity=5)
    first = redeem(claim_one(release, make_citizen("a")).code, 300_00, cashier).redemption  # 20 yuan subsidy
    undone = redeem(claim_one(release, make_citizen("b")).code, 500_00, cashier).redemption
    reverse(undone.id, reason="退货", cashier=cashier)
    redeem(claim_one(release17, make_citizen("c")).code, 150_00, cashier)
    redeem(claim_one(plain_release, make_citizen("d")).code, 100_00, world.cashier)  # 餐饮: neither
    db.session.commit()
    year = local_today().year

    row = feed.publish("连云港", year)
    db.session.commit()
    assert row.value == 40.0  # two unreversed 20-yuan subsidies, in yuan
    p = row.provenance
    assert [(c["name"], c["executed_fen"]) for c in p["campaigns"]] == [("5G 手机换新券", 20_00), ("宽带提速补贴券", 20_00)]
    assert p["driven_consumption_fen"] == 450_00 and p["redemptions"] == 2 and p["computed_at"]
    assert first.subsidy_fen == 20_00
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "index.feed.publish")) is not None

    # the rest of the city's values, official; S11 only from the feed
    rows = [full_row("连云港", year, 50), full_row("徐州", year, 60), full_row("苏州", year, 90)]
    del rows[0]["S11"]
    importing.import_file(wide_csv(rows), "official.csv", cat)
    db.session.commit()
    data = services.load()
    assert data.sources[("连云港", year, "S11")] == "campaign_feed"
    assert ValueSource.CAMPAIGN_FEED.label == "活动数据推送（已执行补贴）"
    fed_result = services.compute(data, method.Settings())
    c, t, k = data.panel.cities.index("连云港"), data.panel.years.index(year), CODES.index("S11")
    assert fed_result.values[t, c, k] == 40.0

    # an official figure entered later overrides it; both stay visible
    importing.import_file(f"city,year,indicator,value\n连云港,{year},S11,25000000\n".encode(), "s11.csv", cat)
    db.session.commit()
    data = services.load()
    assert data.sources[("连云港", year, "S11")] == "official"
    assert services.compute(data, method.Settings()).values[t, c, k] == 25_000_000
    both = data.all_values[("连云港", year, "S11")]
    assert both["campaign_feed"].value == 40.0 and both["official"].value == 25_000_000
    (view,) = feed.feed_views("连云港")
    assert view.used == "official" and view.fed.value == 40.0

    # refreshing the feed does not touch the official value
    feed.publish("连云港", year)
    db.session.commit()
    assert services.load().sources[("连云港", year, "S11")] == "official"


def test_feed_cli(app, db, cat):
    world = make_world()
    _digital, cashier = merchant_with_cashier(db, "港城数码通讯店", "信息消费", "海州区", 8, "cashier_digital2")
    _c, release = make_campaign(world, name="宽带提速补贴券", measure_number=17, categories=["信息消费"], quantity=2,
                                plan_override_reason="措施17未列资金，按财政批复安排")
    redeem(claim_one(release, make_citizen("z")).code, 120_00, cashier)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["index", "feed", "--year", str(local_today().year)])
    assert result.exit_code == 0, result.output
    assert "S11（活动数据，已执行补贴）：20.00 元" in result.output and "1 个信息消费活动" in result.output


def test_whoever_edited_a_catalogue_draft_cannot_approve_it_and_only_one_version_is_in_force(db):
    from sqlalchemy.exc import IntegrityError

    from tests.factories import PASSWORD
    from voucher.accounts.services import create_user
    from voucher.core.errors import InvalidTransition, MakerCheckerViolation
    from voucher.core.permissions import Role
    from voucher.info_consumption_index.models import CatalogueVersion

    world = make_world()
    editor = create_user("admin2", PASSWORD, Role.ADMIN)
    catalogue.install_default_catalogue()
    db.session.commit()
    draft = catalogue.draft_from(catalogue.active_version(), world.admin)
    catalogue.update_draft(draft, {"demand": 20, "supply": 50, "environment": 30}, [], "需求权重提高", editor)
    catalogue.submit(draft, world.admin)
    with pytest.raises(MakerCheckerViolation):
        catalogue.approve(draft, editor)  # edited the weights, then let someone else submit
    catalogue.reject(draft, "再议", world.approver)
    with pytest.raises(InvalidTransition):
        catalogue.draft_from(catalogue.active_version(), world.admin)  # the rejected one is still open
    catalogue.submit(draft, world.admin)
    catalogue.approve(draft, world.approver)
    db.session.commit()
    assert catalogue.active_version().id == draft.id

    version_1 = db.session.scalar(select(CatalogueVersion).where(CatalogueVersion.version == 1))
    version_1.status = "active"  # what two approvals racing would do
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_an_information_consumption_tag_needs_a_second_person(db, cat):
    from voucher.core.audit import AuditEntry
    from voucher.core.errors import InvalidInput, InvalidTransition, MakerCheckerViolation

    world = make_world()
    campaign, _ = make_campaign(world, name="5G 手机换新券", categories=["信息消费"], quantity=5)
    feed.request_tag(campaign.id, True, world.admin)
    assert campaign.is_information_consumption is False and campaign.info_tag_requested is True
    assert campaign not in feed.tagged_campaigns()  # nothing counts in S11 before the approval
    with pytest.raises(InvalidTransition):
        feed.request_tag(campaign.id, True, world.maker)  # one request at a time
    with pytest.raises(MakerCheckerViolation):
        feed.decide_tag(campaign.id, True, world.admin)  # never the maker
    with pytest.raises(InvalidInput):
        feed.decide_tag(campaign.id, False, world.approver)  # a rejection says why
    feed.decide_tag(campaign.id, False, world.approver, "不属于信息消费")
    assert campaign.is_information_consumption is False and campaign.info_tag_requested is None
    feed.request_tag(campaign.id, True, world.maker)
    feed.decide_tag(campaign.id, True, world.admin)
    assert campaign.is_information_consumption is True and campaign in feed.tagged_campaigns()
    with pytest.raises(InvalidTransition):
        feed.decide_tag(campaign.id, True, world.approver)  # nothing pending any more
    db.session.flush()
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == campaign.id,
                                 AuditEntry.action.like("campaign.tag_information_consumption%"))
                                 .order_by(AuditEntry.id)).all()
    assert [a.removeprefix("campaign.tag_information_consumption") for a in actions] == [
        ".request", ".reject", ".request", ""]  # "" is the approval: the tag changed
