"""`flask seed city-scale`: the city's reference case (2,902,100 vouchers, 43,000,000 yuan issued,
219,000,000 yuan driven, 60,000 merchants, 2020-2022) as a deterministic data set, loaded in bulk
with every movement of money still a balanced ledger entry; and the sales baselines with a planted
causal uplift. The database tests load it at scale 0.001 (2,902 vouchers) on SQLite and PostgreSQL."""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, text

from seed import bulk
from seed import city_scale_data as gen
from seed.city_scale import PLAN_OVERRIDE_REASON, TRUTH, AlreadyLoaded, DatabaseNotEmpty, load_city_scale
from tests.conftest import empty_tables
from tests.factories import make_world
from voucher.analytics.models import LEVERAGE_TRUTH, MerchantDailySales, SyntheticTruth
from voucher.campaigns.models import Campaign, FundingSource, Release, VoucherProduct
from voucher.core.audit import AuditEntry
from voucher.core.clock import to_local
from voucher.core.uscc import is_valid
from voucher.ledger.models import AccountKind, JournalEntry
from voucher.ledger.services import campaign_balances
from voucher.merchants.models import Merchant, Redemption, Store
from voucher.reports.consistency import verify_ledger
from voucher.vouchers.codes import is_well_formed
from voucher.vouchers.models import Citizen, Voucher

SCALE = 0.001
SEED = gen.DEFAULT_SEED


def load(db, seed: int = SEED, scale: float = SCALE, **options):
    summary = load_city_scale(seed, scale, **options)
    db.session.commit()
    return summary


def per_merchant(db) -> dict[str, tuple[int, int, int]]:
    """(redemptions, order amounts, subsidy) per merchant, keyed by USCC (ids differ between loads)."""
    rows = db.session.execute(
        select(Merchant.uscc, func.count(Redemption.id), func.sum(Redemption.order_amount_fen),
               func.sum(Redemption.subsidy_fen))
        .join(Redemption, Redemption.merchant_id == Merchant.id).group_by(Merchant.uscc)
    ).all()
    return {uscc: (int(n), int(orders), int(subsidy)) for uscc, n, orders, subsidy in rows}


# ---------------------------------------------------------------------------------------------
# The plan and the generator (no database)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.1, 0.0123, 0.003, SCALE, 0.0007])
def test_the_plan_hits_the_scaled_totals_exactly(scale):
    plan = gen.make_plan(SEED, scale)
    faces = [c.face_yuan * 100 for c in gen.CAMPAIGNS]
    assert plan.vouchers == round(gen.REFERENCE_VOUCHERS * scale) == sum(plan.counts)
    assert plan.issued_fen == round(gen.REFERENCE_ISSUED_YUAN * scale) * 100
    assert sum(n * face for n, face in zip(plan.counts, faces)) == plan.issued_fen
    assert plan.driven_fen % 100 == 0 and round(plan.driven_fen / plan.issued_fen, 2) == 5.09
    assert plan.merchants == max(50, round(60_000 * scale))
    for spec, count, redeemed, budget in zip(gen.CAMPAIGNS, plan.counts, plan.redeemed, plan.budgets_fen):
        assert 0 < redeemed <= count
        assert budget >= count * spec.face_yuan * 100  # every round can be reserved
        assert budget % sum(share for _, _, share in spec.sources) == 0  # co-funders in proportion
        assert spec.threshold_yuan >= spec.face_yuan and spec.valid_until.year in (2020, 2021, 2022)
    if scale == 1.0:  # the reference case itself: 2,902,100 vouchers, 43,000,000 and 219,000,000 yuan
        assert plan.counts == tuple(c.vouchers for c in gen.CAMPAIGNS)
        assert (plan.vouchers, plan.issued_fen, plan.driven_fen) == (2_902_100, 4_300_000_000, 21_900_000_000)


def test_the_generator_is_deterministic_and_exact():
    one, two, other = gen.generate(SEED, SCALE), gen.generate(SEED, SCALE), gen.generate(SEED + 1, SCALE)
    for name in ("v_code", "v_citizen", "v_claimed", "r_voucher", "r_merchant", "r_at", "r_order", "s_sales"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    assert one.merchant_uscc == two.merchant_uscc
    assert not np.array_equal(one.r_order, other.r_order)
    assert one.merchant_uscc != other.merchant_uscc
    assert int(one.r_order.sum()) == int(other.r_order.sum()) == one.plan.driven_fen
    assert all(is_valid(code) for code in one.merchant_uscc)
    assert all(is_well_formed(code) for code in one.v_code.astype("U11").tolist())


def test_timestamps_are_encoded_as_numpy_and_sqlalchemy_write_them():
    rng = np.random.default_rng(1)
    moments = np.concatenate([rng.integers(-2 * 10**15, 4 * 10**15, 20_000), [0, 951_782_399_999_999]])
    expected = np.char.replace(np.datetime_as_string(moments.astype("datetime64[us]"), unit="us"), "T", " ")
    assert (bulk.timestamp_texts(moments).astype("U26") == expected).all()


def _did(data: gen.CityData) -> tuple[float, float]:
    """Difference in differences over the panel: per merchant, mean daily sales in the campaign
    weeks minus the weeks before, regressed on its mean daily subsidy (zero for comparables) with an
    intercept per campaign. Returns the slope and its robust standard error."""
    r_day = gen.local_day_index(data.r_at)
    keys, inverse = np.unique(data.r_merchant * 100_000 + r_day, return_inverse=True)
    paid = np.bincount(inverse, weights=data.r_subsidy)
    sales_keys = data.s_merchant * 100_000 + data.s_day
    at = np.minimum(np.searchsorted(keys, sales_keys), len(keys) - 1)
    subsidy = np.where(keys[at] == sales_keys, paid[at], 0.0)
    rows = []
    for panel in data.panel:
        (pre_from, pre_until), (from_, until) = panel["pre"], panel["during"]
        for treated, members in ((True, panel["treated"]), (False, panel["comparable"])):
            for m in members:
                mine = data.s_merchant == m
                before = mine & (data.s_day >= pre_from) & (data.s_day <= pre_until)
                during = mine & (data.s_day >= from_) & (data.s_day <= until)
                change = data.s_sales[during].mean() - data.s_sales[before].mean()
                rows.append((panel["campaign"], change, subsidy[during].mean() if treated else 0.0))
    table = np.asarray(rows)
    x = np.column_stack([(table[:, 0] == c).astype(float) for c in range(len(gen.CAMPAIGNS))] + [table[:, 2]])
    beta, *_ = np.linalg.lstsq(x, table[:, 1], rcond=None)
    residual = table[:, 1] - x @ beta
    bread = np.linalg.inv(x.T @ x)
    covariance = bread @ ((x * residual[:, None]).T @ (x * residual[:, None])) @ bread
    return float(beta[-1]), float(np.sqrt(covariance[-1, -1]))


def test_the_planted_uplift_is_exactly_what_a_noise_free_panel_shows(monkeypatch):
    monkeypatch.setattr(gen, "NOISE", 0.0)
    data = gen.generate(SEED, SCALE)
    assert data.sales_clipped == 0
    estimate, se = _did(data)
    # Weekdays cancel over whole weeks; what is left is the planted leverage (to the fen's rounding).
    assert estimate == pytest.approx(gen.TRUE_INCREMENTAL_LEVERAGE, abs=0.001)
    assert se < 0.001


def test_with_noise_the_estimate_recovers_the_planted_value_within_its_interval():
    estimate, se = _did(gen.generate(SEED, 0.01))
    assert estimate - 1.96 * se <= gen.TRUE_INCREMENTAL_LEVERAGE <= estimate + 1.96 * se
    assert se < 1.0


# ---------------------------------------------------------------------------------------------
# Loaded (SQLite and PostgreSQL)


def test_the_loaded_case_has_the_exact_totals(db):
    summary = load(db)
    plan = gen.make_plan(SEED, SCALE)
    vouchers = db.session.scalar(select(func.count(Voucher.id)).where(Voucher.citizen_id.is_not(None)))
    issued = int(db.session.scalar(
        select(func.sum(Voucher.face_value_fen)).where(Voucher.citizen_id.is_not(None))))
    driven, paid, redeemed = (int(v) for v in db.session.execute(
        select(func.sum(Redemption.order_amount_fen), func.sum(Redemption.subsidy_fen), func.count(Redemption.id))
        .where(Redemption.reversed_at.is_(None))
    ).one())
    assert vouchers == db.session.scalar(select(func.count(Voucher.id))) == round(2_902_100 * SCALE) == 2_902
    assert issued == 43_000 * 100 == plan.issued_fen == summary.issued_fen
    assert driven == 219_000 * 100 == plan.driven_fen == summary.driven_fen
    assert round(driven / issued, 2) == 5.09
    assert paid == summary.subsidy_fen and redeemed == summary.redemptions == sum(plan.redeemed)
    assert 0.85 < redeemed / vouchers < 0.95  # the rest expired unused
    assert summary.campaigns == 6 and db.session.scalar(select(func.count(Release.id))) == summary.rounds
    years = {c.valid_from.year for c in db.session.scalars(select(Campaign))}
    assert years == {2020, 2021, 2022}


def test_merchants_span_the_city_and_each_one_taking_part_redeems(db):
    load(db)
    merchants = db.session.scalar(select(func.count(Merchant.id)))
    plan = gen.make_plan(SEED, SCALE)
    assert merchants == plan.merchants + plan.comparables and plan.merchants >= max(50, round(60_000 * SCALE))
    redeeming = db.session.scalar(select(func.count(func.distinct(Redemption.merchant_id))))
    assert redeeming == plan.merchants
    districts = set(db.session.scalars(
        select(Store.district).join(Redemption, Redemption.store_id == Store.id).distinct()))
    assert districts == set(gen.DISTRICTS)
    categories = set(db.session.scalars(
        select(Merchant.category).join(Redemption, Redemption.merchant_id == Merchant.id).distinct()))
    assert len(categories) >= 8 and categories <= set(gen.CATEGORIES)
    sizes = Counter(db.session.scalars(select(Merchant.size_class)))
    assert set(sizes) <= {"micro", "small", "medium", "large"} and sizes["micro"] > sizes["medium"]
    assert all(is_valid(uscc) for uscc in db.session.scalars(select(Merchant.uscc)))
    assert db.session.scalar(select(func.count(Store.id))) == merchants
    # Bulk rows skip the model's type: the account numbers are encrypted all the same, and read back.
    stored = db.session.scalars(text("SELECT bank_account_no FROM merchants")).all()
    assert len(stored) == merchants and all(value.startswith("v1.") for value in stored)
    assert all(no.startswith("6217") and len(no) == 19 for no in db.session.scalars(select(Merchant.bank_account_no)))


def test_every_redemption_keeps_its_vouchers_rules(db):
    load(db)
    rows = db.session.execute(
        select(Redemption.order_amount_fen, Redemption.subsidy_fen, Redemption.created_at, Voucher.face_value_fen,
               Voucher.claimed_at, Voucher.valid_from, Voucher.valid_until, Voucher.redeemed_at, Voucher.status,
               VoucherProduct.threshold_fen, Campaign.categories, Campaign.districts, Merchant.category,
               Store.district, Redemption.terminal_id)
        .join(Voucher, Voucher.id == Redemption.voucher_id)
        .join(Campaign, Campaign.id == Redemption.campaign_id)
        .join(VoucherProduct, VoucherProduct.campaign_id == Campaign.id)
        .join(Merchant, Merchant.id == Redemption.merchant_id)
        .join(Store, Store.id == Redemption.store_id)
    ).all()
    assert rows
    for (order, subsidy, at, face, claimed, valid_from, valid_until, redeemed_at, status, threshold, categories,
         districts, category, district, terminal) in rows:
        assert order >= threshold >= face == subsidy  # 满X减Y: the whole face value, on an order of at least X
        assert claimed < at <= valid_until and at >= valid_from and redeemed_at == at and status == "redeemed"
        assert category in categories and (not districts or district in districts)
        assert 9 <= to_local(at).hour <= 21 and terminal is not None
    # One voucher per citizen per round (the rounds' limit), in slot 1.
    per_round = db.session.execute(
        select(Voucher.release_id, Voucher.citizen_id, func.count(Voucher.id), func.max(Voucher.claim_slot))
        .group_by(Voucher.release_id, Voucher.citizen_id).having(func.count(Voucher.id) > 1)
    ).all()
    assert per_round == []
    assert set(db.session.scalars(select(Release.per_person_limit))) == {1}
    assert db.session.scalar(select(func.count(func.distinct(Voucher.citizen_id)))) < \
        db.session.scalar(select(func.count(Voucher.id)))  # citizens hold vouchers of several rounds
    assert db.session.scalar(select(func.count(Citizen.id))) == gen.make_plan(SEED, SCALE).citizens
    assert set(db.session.scalars(select(Voucher.status).distinct())) == {"redeemed", "expired"}


def test_the_ledger_verifies_and_every_campaign_closed_with_its_money_accounted_for(db):
    summary = load(db)
    assert verify_ledger() == []
    balances = campaign_balances()
    for campaign in db.session.scalars(select(Campaign)):
        assert campaign.status == "closed" and campaign.closed_at is not None
        assert campaign.approved_at < campaign.closed_at and campaign.approved_by_id != campaign.created_by_id
        assert {r.status for r in campaign.releases} == {"closed"}
        paid = db.session.scalar(select(func.sum(Redemption.subsidy_fen)).where(Redemption.campaign_id == campaign.id))
        mine = balances[campaign.id]
        assert mine[AccountKind.RESERVED] == mine[AccountKind.AVAILABLE] == mine[AccountKind.SETTLED] == 0
        assert mine[AccountKind.SPENT] == paid
        # Whatever was not spent went back to the funders when the campaign closed.
        assert sum(s.amount_fen - s.returned_fen for s in campaign.funding_sources) == paid
    kinds = Counter(db.session.scalars(select(JournalEntry.kind)))
    assert set(kinds) == {"funding", "release_reserve", "redemption", "expiry", "close_return"}
    assert kinds["release_reserve"] == summary.rounds  # one entry per round (co-funders split inside it)
    assert kinds["funding"] == db.session.scalar(select(func.count(FundingSource.id)))
    refs = set(db.session.scalars(select(JournalEntry.ref_type).where(JournalEntry.kind == "redemption")))
    assert refs == {"bulk_redemptions"}
    # Dated when it happened: the entries run from 2020 to the last close, by the end of 2022.
    first, last = db.session.execute(select(func.min(JournalEntry.created_at), func.max(JournalEntry.created_at))).one()
    assert to_local(first).year == 2020 and to_local(last).date().isoformat() == "2022-12-31"
    co_funded = db.session.scalars(select(FundingSource).where(FundingSource.share == 2)).all()
    assert len(co_funded) == 1  # the 2022 appliance campaign: city 2 : enterprises 1


def test_each_campaign_lived_through_the_campaign_services_on_its_historical_dates(db):
    load(db)
    for campaign, spec in zip(db.session.scalars(select(Campaign).order_by(Campaign.id)), gen.CAMPAIGNS):
        trail = db.session.execute(
            select(AuditEntry.action, AuditEntry.at, AuditEntry.after)
            .where(AuditEntry.object_type == "campaigns", AuditEntry.object_id == campaign.id).order_by(AuditEntry.id)
        ).all()
        assert [action for action, _, _ in trail] == ["campaign.create", "campaign.submit", "campaign.approve",
                                                       "campaign.close"]
        assert [at for _, at, _ in trail][2:] == [campaign.approved_at, campaign.closed_at]
        assert to_local(campaign.approved_at).date() == spec.valid_from - timedelta(days=10)
        assert to_local(campaign.closed_at).date() == spec.valid_until + timedelta(days=1)
        # The plan check of approve() applied: past the 2022 policy's plan, the reason is on record.
        plan = trail[2].after["plan"]
        assert campaign.plan_override_reason == (PLAN_OVERRIDE_REASON if plan["exceeds"] or not plan["has_plan"]
                                                 else None)
        for release in campaign.releases:
            assert release.opened_at == release.opens_at and release.created_at == release.opens_at - timedelta(days=3)
            opened = db.session.execute(
                select(JournalEntry.created_at).where(JournalEntry.kind == "release_reserve",
                                                      JournalEntry.ref_id == release.id)).scalar_one()
            assert opened == release.opens_at
    assert db.session.scalar(select(func.count(JournalEntry.id)).where(JournalEntry.kind == "withdrawal")) == 0


def test_the_same_seed_loads_the_same_data_and_another_seed_other_data(db):
    first = load(db)
    sums = per_merchant(db)
    codes = set(db.session.scalars(select(Voucher.code)))
    empty_tables(db)
    again = load(db)
    assert per_merchant(db) == sums and set(db.session.scalars(select(Voucher.code))) == codes
    assert (again.vouchers, again.issued_fen, again.driven_fen, again.subsidy_fen) == \
        (first.vouchers, first.issued_fen, first.driven_fen, first.subsidy_fen)
    # The database holds exactly what the generator made.
    data = gen.generate(SEED, SCALE)
    by_merchant = np.bincount(data.r_merchant, weights=data.r_order, minlength=len(data.merchant_uscc))
    assert {u: s[1] for u, s in sums.items()} == {
        uscc: int(total) for uscc, total in zip(data.merchant_uscc, by_merchant.tolist()) if total}
    empty_tables(db)
    other = load(db, seed=SEED + 1)
    assert (other.vouchers, other.issued_fen, other.driven_fen) == (first.vouchers, first.issued_fen, first.driven_fen)
    assert per_merchant(db) != sums


def test_the_baselines_cover_the_panel_and_the_truth_is_recorded(db):
    load(db)
    truth = db.session.scalar(select(SyntheticTruth).where(SyntheticTruth.name == LEVERAGE_TRUTH)).value
    assert truth["value"] == gen.TRUE_INCREMENTAL_LEVERAGE == 1.8
    marker = db.session.scalar(select(SyntheticTruth).where(SyntheticTruth.name == TRUTH)).value
    assert marker["seed"] == SEED and marker["scale"] == SCALE and marker["leverage_on_issued"] == 5.09
    redeeming = set(db.session.scalars(select(Redemption.merchant_id).distinct()))
    rows = Counter(db.session.scalars(select(MerchantDailySales.merchant_id)))
    assert set(db.session.scalars(select(MerchantDailySales.source).distinct())) == {"synthetic"}
    assert len(truth["panel"]) == 6
    for panel in truth["panel"]:
        assert panel["treated_merchant_ids"] and panel["comparable_merchant_ids"]
        assert set(panel["treated_merchant_ids"]) <= redeeming
        assert not set(panel["comparable_merchant_ids"]) & redeeming  # eligible, never redeeming
        pre_from, pre_until = (date.fromisoformat(d) for d in panel["pre"])
        from_, until = (date.fromisoformat(d) for d in panel["during"])
        assert pre_until + timedelta(days=1) == from_
        assert ((pre_until - pre_from).days + 1) % 7 == 0 and ((until - from_).days + 1) % 7 == 0  # whole weeks
        days = (until - pre_from).days + 1
        for merchant_id in panel["treated_merchant_ids"] + panel["comparable_merchant_ids"]:
            assert rows[merchant_id] >= days
        campaign = db.session.get(Campaign, panel["campaign_id"])
        assert (from_, until) == (campaign.valid_from, campaign.valid_until)
        comparable = db.session.get(Merchant, panel["comparable_merchant_ids"][0])
        assert comparable.category in campaign.categories
    # A treated merchant's sales on a day are at least that day's voucher orders at it.
    merchant_id = truth["panel"][0]["treated_merchant_ids"][0]
    day_sales = {r.day: r.sales_fen for r in db.session.scalars(
        select(MerchantDailySales).where(MerchantDailySales.merchant_id == merchant_id))}
    orders: Counter = Counter()
    for amount, at in db.session.execute(
        select(Redemption.order_amount_fen, Redemption.created_at).where(Redemption.merchant_id == merchant_id)
    ):
        orders[(at + timedelta(hours=8)).date()] += amount
    assert all(day_sales[day] >= total for day, total in orders.items() if day in day_sales)


def test_a_second_load_is_refused_and_changes_nothing(db):
    load(db)
    before = (db.session.scalar(select(func.count(Voucher.id))), db.session.scalar(select(func.count(JournalEntry.id))))
    with pytest.raises(AlreadyLoaded):
        load_city_scale(SEED, SCALE, append=True)
    db.session.rollback()
    with pytest.raises(AlreadyLoaded):
        load_city_scale(SEED + 1, SCALE)
    db.session.rollback()
    after = (db.session.scalar(select(func.count(Voucher.id))), db.session.scalar(select(func.count(JournalEntry.id))))
    assert after == before


def test_the_command_loads_prints_the_figures_and_refuses_a_second_run(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["seed", "city-scale", "--scale", str(SCALE)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "领取券 2,902 张，面值合计 43,000.00 元" in result.output
    assert "带动消费 219,000.00 元" in result.output and "杠杆率（带动消费 / 发放面值）5.09" in result.output
    assert "用时" in result.output
    db.session.rollback()
    vouchers = db.session.scalar(select(func.count(Voucher.id)))

    again = runner.invoke(args=["seed", "city-scale", "--scale", str(SCALE)])
    assert again.exit_code == 2 and "不再重复载入" in again.output
    db.session.rollback()
    assert db.session.scalar(select(func.count(Voucher.id))) == vouchers
    assert runner.invoke(args=["ledger", "verify"]).exit_code == 0

    bad = runner.invoke(args=["seed", "city-scale", "--scale", "2"])
    assert bad.exit_code == 2 and "--scale" in bad.output


def test_fresh_refuses_a_database_with_data_and_append_loads_beside_it(app, db):
    make_world()
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["seed", "city-scale", "--scale", str(SCALE)])
    assert refused.exit_code == 2 and "--append" in refused.output
    db.session.rollback()
    assert db.session.scalar(select(func.count(Voucher.id))) == 0
    with pytest.raises(DatabaseNotEmpty):
        load_city_scale(SEED, SCALE)
    db.session.rollback()

    loaded = runner.invoke(args=["seed", "city-scale", "--scale", str(SCALE), "--append"])
    assert loaded.exit_code == 0, (loaded.output, loaded.exception)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Voucher.id))) == 2_902
    assert verify_ledger() == []
    # The ids went past the existing rows, and the sequences after the loaded ones.
    db.session.add(Citizen(identity_hash="f" * 64))
    db.session.commit()


def test_the_page_reads_the_rollup_shows_5_09_and_the_causal_estimate_covers_the_planted_value(client, db):
    from tests.factories import PASSWORD, make_world
    from voucher.analytics import panel, rollup
    from voucher.analytics.leverage import headline

    load(db)
    assert rollup.built_through() is not None  # the load pre-aggregated its days
    f = headline()
    assert round(f.leverage_on_issued, 2) == 5.09 and f.driven_fen == 219_000 * 100
    result = panel.estimate().estimate
    # at this scale four campaigns have fewer than 20 merchants on a side: each is named, none pooled
    assert result.campaigns == 2 and len(result.left_out) == 4 and result.treated >= 40
    assert all(check.passed is not False for check in result.checks)
    assert result.low <= gen.TRUE_INCREMENTAL_LEVERAGE <= result.high
    make_world()
    client.post("/login", data={"username": "auditor", "password": PASSWORD})
    text = client.get("/analytics/leverage").get_data(as_text=True)
    assert ">5.09<" in text and "增量杠杆率（因果，净）" in text and "埋入的真实增量杠杆率为 1.80：\n  位于置信区间内" in text
