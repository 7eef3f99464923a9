"""A flash drop's claims keep their index in PostgreSQL's generic plans.

psycopg runs a statement as a prepared one after five runs, and PostgreSQL may then plan it once for any
parameters (a generic plan). A partial index is usable there only if its condition is in the SQL itself:
with the voucher's status as a bound parameter, the claim's "first free voucher of the release" walked the
primary key past every other voucher (the benchmark's 50,000-voucher drop admitted 130-240 claims a second
instead of about 500). Forcing the generic plan makes the choice certain instead of the planner's coin.

The table holds twelve releases, as a live one holds many: with only two or three, the planner may guess that
a walk of the primary key meets the release's vouchers at once (it assumes them spread evenly) and prefer it
even with the constant; with more releases that guess costs what it really does.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.factories import make_campaign, make_citizen, make_world
from voucher.core.clock import utcnow
from voucher.core.db import db as _db
from voucher.vouchers import releases, services
from voucher.vouchers.models import Voucher

#: scans of the index by this transaction so far
_FREE_INDEX_SCANS = text("SELECT pg_stat_get_xact_numscans('ix_vouchers_release_available'::regclass)")


def _releases_of_one_campaign(count: int):
    """`count` open releases of 400 vouchers in one campaign (the first is returned; the others' vouchers
    follow its own in the table), and three citizens."""
    world = make_world()
    campaign, release = make_campaign(world, quantity=400)
    for number in range(count - 1):
        later = releases.create_release(campaign, name=f"第{number + 2}场", quantity=400, per_person_limit=1,
                                        opens_at=utcnow(), actor=world.maker)
        releases.open_release(later.id, world.maker)
    citizens = [make_citizen(f"{i:02d}") for i in range(3)]
    _db.session.flush()
    return release, citizens


def test_a_claim_finds_its_voucher_through_the_free_voucher_index_in_a_generic_plan(app, db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no plan cache: each statement is planned with its values")
    release, citizens = _releases_of_one_campaign(12)
    db.session.execute(text("ANALYZE vouchers"))
    db.session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    before = db.session.scalar(_FREE_INDEX_SCANS) or 0
    taken = [services.claim(release.id, citizen).id for citizen in citizens]
    assert (db.session.scalar(_FREE_INDEX_SCANS) or 0) - before >= len(citizens)
    assert {_db.session.get(Voucher, id_).release_id for id_ in taken} == {release.id}


def test_what_a_citizen_holds_is_counted_from_their_own_vouchers_whatever_the_statistics(app, db):
    """The claim counts what the citizen already holds of the release and of the campaign. Planned on
    statistics older than the drop (none yet: a round minted minutes ago), PostgreSQL combined the citizen's
    index with the campaign's and read every voucher of the campaign on each claim. The counts now name only
    the citizen in their WHERE clause, so no plan can reach for the campaign's or the release's vouchers."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no plan cache: each statement is planned with its values")
    release, citizens = _releases_of_one_campaign(6)
    # no statistics for the table (rolled back with the test): the planner's default guesses
    db.session.execute(text("DELETE FROM pg_statistic WHERE starelid = 'vouchers'::regclass"))
    db.session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    scans = text("SELECT pg_stat_get_xact_numscans('ix_vouchers_campaign_id'::regclass) "
                 "+ pg_stat_get_xact_numscans('ix_vouchers_release_status'::regclass)")
    before = db.session.scalar(scans) or 0
    for citizen in citizens:
        services.claim(release.id, citizen)
    assert (db.session.scalar(scans) or 0) - before == 0
