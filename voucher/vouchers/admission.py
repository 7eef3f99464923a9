"""The admission gate for first-come releases: a flash crowd is answered from Redis, and only the claims
it admits reach the database.

When a first-come release opens, its remaining count and per-person limit go into Redis (`build`). A
claim runs one Lua script, atomically: the gate gone -> the database path, as without Redis; this
citizen at the per-person limit -> refused; nothing left -> sold out; else remaining - 1 and the
citizen's count + 1 -> admitted. A refused attempt never touches PostgreSQL. An admitted one goes on to
`services.claim`, which still takes a pre-minted voucher with SKIP LOCKED and enforces every limit: the
database stays the only source of truth, and the gate only ever lets too many through, never hands
out a voucher. An admitted claim that the database then refuses, or that fails, gives its place back
when its transaction rolls back (core.db.on_rollback).

Redis keeps nothing on disk here. A restart, a flush or an eviction loses the gate; the claims then take
the database path until `reconcile` (a job every minute, and at each opening) builds it again from the
database: remaining = the vouchers still available, each citizen's count = the vouchers they hold. At
worst the gate lets in claims the database then refuses (sold out: a definite answer), or holds back a
place whose give-back was lost in a crash until the next reconcile: it can delay a voucher, never issue
one beyond the release. Every gate carries an epoch: a give-back from before a rebuild is dropped, so a
rebuilt count is never pushed above the truth twice.

Without ADMISSION_REDIS_URL nothing here runs. With it and Redis unreachable, claims take the database
path, a warning is logged (once a minute), /readyz says `admission: degraded (database path)` and
`voucher_admission_total{result="redis_unreachable"}` counts them; Redis is tried again after
RETRY_AFTER seconds, so a dead Redis costs one connect timeout per RETRY_AFTER, not one per claim.

Keys (prefix ADMISSION_KEY_PREFIX, so deployments can share a Redis): `{p}:gate:{release}` a hash
(left, limit, epoch), `{p}:gate:{release}:held` a hash (member -> count), `{p}:gates` the set of releases
with a gate. A member is the citizen's identity hash, which the channel API can compute from the phone
number without the database.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import redis
from flask import current_app
from prometheus_client import Counter
from sqlalchemy import func, select

from voucher.campaigns.models import Campaign, CampaignStatus, Release, ReleaseMode, ReleaseStatus
from voucher.core import redis_store
from voucher.core.clock import to_local, utcnow
from voucher.core.db import db, on_rollback
from voucher.core.errors import ClaimLimitReached, Queued, ReleaseNotOpen, SoldOut
from voucher.vouchers.models import FREE, Citizen, Voucher

logger = logging.getLogger(__name__)

HELD_CHUNK = 5000

ADMISSIONS = Counter("voucher_admission_total", "Claims seen by the admission gate, by what it answered", ["result"])

# KEYS: gate, held, queue, then one per step. ARGV: member (its last hex digit picks its batch, as in
# vouchers/batches.py), the app's clock (epoch seconds: opening times are the app's; the waiting room's are
# Redis's), then kind, seconds and limit of each step (redis_store.Step: the caller's rate limits and nonce,
# run first, in order).
# -> {code, n, epoch, wait}: 1 admitted, 0 no gate, -1 at limit (n: held), -2 sold out, -3 queued (n:
# people ahead, wait: seconds), -4 its batch not open yet (wait: seconds; only a batched release: an open
# unbatched one is open, as on the database path), -10 - i: step i refused (nothing after it ran). With a
# rate, every new arrival takes the next number; number k may pass once (now - start) x rate + burst >= k
# (Redis's clock, one for all app servers), so claims reach the database at the rate, in order of arrival.
_ADMIT = """
for i = 1, (#ARGV - 2) / 3 do
  local key, kind, seconds = KEYS[3 + i], ARGV[3 * i], ARGV[3 * i + 1]
  if kind == 'count' then
    local n = redis.call('INCRBY', key, 1)
    if n == 1 then redis.call('EXPIRE', key, seconds) end
    if n > tonumber(ARGV[3 * i + 2]) then return {-10 - i, n, '', 0} end
  elseif not redis.call('SET', key, '1', 'NX', 'EX', seconds) then
    return {-10 - i, 0, '', 0}
  end
end
local left = redis.call('HGET', KEYS[1], 'left')
if not left then return {0, 0, '', 0} end
local f = redis.call('HMGET', KEYS[1], 'limit', 'epoch', 'rate', 'burst', 'start')
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if held >= tonumber(f[1]) then return {-1, held, f[2], 0} end
if tonumber(left) <= 0 then return {-2, 0, f[2], 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'opens', 'batches', 'batch_minutes')
local batches = tonumber(b[2] or '1')
if batches > 1 then
  local batch = math.floor((tonumber(string.sub(ARGV[1], -1), 16) or 0) * batches / 16)
  local opens = tonumber(b[1] or '0') + batch * tonumber(b[3] or '0') * 60
  local app_now = tonumber(ARGV[2])
  if app_now < opens then return {-4, 0, f[2], math.ceil(opens - app_now)} end
end
local rate = tonumber(f[3] or '0')
if rate > 0 then
  local n = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if n == 0 then
    n = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    redis.call('HSET', KEYS[3], ARGV[1], n)
  end
  local allowed = math.floor((now - tonumber(f[5])) * rate) + tonumber(f[4])
  if n > allowed then return {-3, n - allowed, f[2], math.ceil((n - allowed) / rate)} end
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'left', -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return {1, held + 1, f[2], 0}
"""
# KEYS: gate, held. ARGV: member, epoch. Gives a place back only to the gate that gave it.
_GIVE_BACK = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[1], 'left', 1)
if tonumber(redis.call('HINCRBY', KEYS[2], ARGV[1], -1)) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
"""


class ChecksNotMade(Exception):
    """The caller's checks could not go with the gate (Redis failed): the caller makes `steps` its own
    way, outside its transaction (a nonce spent in the database commits on its own), then claims again
    without them, on the database path. An answer to nobody: the caller catches it."""

    def __init__(self, steps: list[redis_store.Step]) -> None:
        super().__init__("the admission gate's Redis could not make the caller's checks")
        self.steps = steps


@dataclass
class Ticket:
    release_id: int
    member: str
    epoch: str
    #: the database found nothing left: the place is not given back (the gate is closed instead)
    spent: bool = False


enabled = redis_store.enabled
_client = redis_store.CLIENT

# Gates this process has seen sold out, until when (time.monotonic()). The flood's late arrivals are then
# refused without asking Redis (here, and before Flask in api/fast_lane.py). A place given back meanwhile
# (an admitted claim the database refused) waits at most ADMISSION_SOLD_OUT_MEMO_SECONDS for its taker:
# a delay, never a voucher too many.
_sold_out_until: dict[int, float] = {}


def known_sold_out(release_id: int) -> bool:
    until = _sold_out_until.get(release_id)
    return until is not None and time.monotonic() < until


def any_known_sold_out() -> bool:
    """Cheap enough for every request: whether any gate is remembered as sold out at all."""
    return bool(_sold_out_until)


def _remember_sold_out(release_id: int) -> None:
    seconds = current_app.config.get("ADMISSION_SOLD_OUT_MEMO_SECONDS", 0)
    if seconds > 0:
        now = time.monotonic()
        for stale in [key for key, until in _sold_out_until.items() if until <= now]:
            del _sold_out_until[stale]
        _sold_out_until[release_id] = now + seconds


def forget_sold_out(release_id: int | None = None) -> None:
    """A gate rebuilt in this process (it may have places again), or every memo (tests)."""
    if release_id is None:
        _sold_out_until.clear()
    else:
        _sold_out_until.pop(release_id, None)


def state() -> str:
    """For /readyz: off, ok, or degraded (database path)."""
    if not enabled():
        return "off"
    if _client.degraded:
        return "degraded (database path)"
    client = _client.get()
    try:
        if client is not None:
            client.ping()
            return "ok"
    except redis.RedisError as error:
        _client.failed(error)
    return "degraded (database path)"


def _keys(release_id: int) -> tuple[str, str]:
    prefix = current_app.config.get("ADMISSION_KEY_PREFIX", "voucher")
    return f"{prefix}:gate:{release_id}", f"{prefix}:gate:{release_id}:held"


def _queue_key(release_id: int) -> str:
    return f"{_keys(release_id)[0]}:queue"


def _registry() -> str:
    return f"{current_app.config.get('ADMISSION_KEY_PREFIX', 'voucher')}:gates"


def admit(release_id: int, member: str, first: Sequence[redis_store.Step] = ()) -> Ticket | None:
    """Ask the gate. Raises SoldOut or ClaimLimitReached when it refuses (no database touched); returns
    a Ticket when it admits (its place goes back if the transaction rolls back), or None when there is
    no gate to ask (off, not built, Redis unreachable): the caller goes on to the database as before.

    `first`: the caller's own checks (rate limits, nonce) to make in the same round trip, before the
    gate; one that refuses raises its exception and the gate is not asked. Where Redis cannot run them
    (unreachable), ChecksNotMade hands them back."""
    client = _client.get()
    if client is None:
        if enabled():
            ADMISSIONS.labels("redis_unreachable").inc()
        if first:
            raise ChecksNotMade(list(first))
        return None
    if known_sold_out(release_id) and not first:  # with checks to make, the round trip is needed anyway
        ADMISSIONS.labels("sold_out").inc()
        raise SoldOut()
    gate, held = _keys(release_id)
    try:
        code, count, epoch, wait = _client.script(client, "admit", _ADMIT)(
            keys=[gate, held, _queue_key(release_id), *(step.key for step in first)],
            args=[member, f"{utcnow().replace(tzinfo=timezone.utc).timestamp():.3f}",
                  *(value for step in first for value in (step.kind, step.seconds, step.limit))])
    except redis.RedisError as error:
        _client.failed(error)
        ADMISSIONS.labels("redis_unreachable").inc()
        if first:
            # A timeout leaves it unknown whether the script ran: its counts are not handed back to be
            # made twice (at worst one request goes uncounted, where counting twice in a crowd would spend
            # a whole partner's allowance early); its nonce is, to be spent again (a replay never passes).
            raise ChecksNotMade([step for step in first if step.kind == "once"]
                                if isinstance(error, redis.TimeoutError) else list(first)) from error
        return None
    if code <= -10:
        raise first[-code - 11].refused()  # -11: the first step
    if code == 0:
        ADMISSIONS.labels("no_gate").inc()
        _build_once(client, release_id)
        return None
    if code == -1:
        ADMISSIONS.labels("limit").inc()
        raise ClaimLimitReached(f"每人限领 {count} 张，您已领取 {count} 张")
    if code == -2:
        ADMISSIONS.labels("sold_out").inc()
        _remember_sold_out(release_id)
        raise SoldOut()
    if code == -4:
        ADMISSIONS.labels("batch_not_open").inc()
        opens = to_local(utcnow() + timedelta(seconds=int(wait)))
        raise ReleaseNotOpen(f"本场次分批开放，您所在的批次将于 {opens:%m月%d日 %H:%M} 开放领取，请届时再来")
    if code == -3:
        ADMISSIONS.labels("queued").inc()
        raise Queued(int(count), max(1, int(wait)))
    ADMISSIONS.labels("admitted").inc()
    ticket = Ticket(release_id, member, epoch.decode() if isinstance(epoch, bytes) else str(epoch))
    on_rollback(lambda: give_back(ticket))
    return ticket


def places_left(release_id: int) -> int | None:
    """The gate's remaining count as it stands (not this process's memo), or None: no gate to ask (off,
    not built, Redis unreachable)."""
    client = _client.get()
    if client is None:
        return None
    try:
        left = client.hget(_keys(release_id)[0], "left")
    except redis.RedisError as error:
        _client.failed(error)
        return None
    return None if left is None else int(left)


def give_back(ticket: Ticket) -> None:
    client = _client.get()
    if client is None or ticket.spent:
        return
    gate, held = _keys(ticket.release_id)
    try:
        _client.script(client, "give_back", _GIVE_BACK)(keys=[gate, held], args=[ticket.member, ticket.epoch])
        ADMISSIONS.labels("given_back").inc()
    except redis.RedisError as error:  # the next reconcile restores the count
        _client.failed(error)


def build(release_id: int) -> bool:
    """Write the release's gate from the database (committed data): remaining, per-person limit, and
    what each citizen holds. Replaces any gate there was (a new epoch). False when Redis is unreachable."""
    client = _client.get()
    if client is None:
        return False
    release = db.session.get(Release, release_id)
    if release is None:
        return False
    limit, opens = release.per_person_limit, release.opens_at.replace(tzinfo=timezone.utc).timestamp()
    left = db.session.scalar(select(func.count(Voucher.id)).where(
        Voucher.release_id == release_id, FREE)) or 0
    holders = db.session.execute(
        select(Citizen.identity_hash, func.count(Voucher.id)).join(Citizen, Citizen.id == Voucher.citizen_id)
        .where(Voucher.release_id == release_id).group_by(Citizen.identity_hash)).all()
    gate, held = _keys(release_id)
    staging = f"{held}:building:{secrets.token_hex(4)}"
    try:
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(holders), HELD_CHUNK):
            pipe.hset(staging, mapping={member: count for member, count in holders[start:start + HELD_CHUNK]})
        pipe.execute()
        swap = client.pipeline(transaction=True)  # MULTI: the gate and its holders change together
        if holders:
            swap.rename(staging, held)
        else:
            swap.delete(held)
        seconds, micros = client.time()
        swap.delete(gate, _queue_key(release_id))
        swap.hset(gate, mapping={"left": left, "limit": limit or 1, "epoch": secrets.token_hex(8), "seq": 0,
                                 "rate": current_app.config.get("ADMISSION_RATE", 0) or 0,
                                 "burst": current_app.config.get("ADMISSION_BURST", 0) or 0,
                                 "start": f"{seconds + micros / 1_000_000:.6f}", "opens": f"{opens:.6f}",
                                 "batches": release.batches, "batch_minutes": release.batch_minutes})
        swap.sadd(_registry(), release_id)
        swap.execute()
    except redis.RedisError as error:
        _client.failed(error)
        return False
    forget_sold_out(release_id)
    return True


def drop(release_id: int) -> None:
    client = _client.get()
    if client is None:
        return
    gate, held = _keys(release_id)
    try:
        client.pipeline(transaction=True).delete(gate, held, _queue_key(release_id)).srem(
            _registry(), release_id).execute()
    except redis.RedisError as error:
        _client.failed(error)


def sold_out(ticket: Ticket | None) -> None:
    """The database has no voucher left for an admitted claim: close the gate (remaining 0) instead of
    giving the place back, or every later attempt would be admitted only to be refused."""
    if ticket is None:
        return
    ticket.spent = True
    client = _client.get()
    if client is None:
        return
    gate, _ = _keys(ticket.release_id)
    try:
        if client.hget(gate, "epoch") in (ticket.epoch, ticket.epoch.encode()):
            client.hset(gate, "left", "0")
    except redis.RedisError as error:
        _client.failed(error)


def _build_once(client: Any, release_id: int) -> None:
    """No gate for this release: if it is an open first-come one, one request (the one that gets the
    lock) builds it from the database; the others meanwhile take the database path."""
    gate, _ = _keys(release_id)
    try:
        if not client.set(f"{gate}:building", "1", nx=True, ex=10):
            return
    except redis.RedisError as error:
        _client.failed(error)
        return
    first_come = db.session.scalar(select(Release.id).join(Campaign, Campaign.id == Release.campaign_id).where(
        Release.id == release_id, Release.status == ReleaseStatus.OPEN.value,
        Release.mode == ReleaseMode.FIRST_COME.value, Campaign.status == CampaignStatus.ACTIVE.value))
    if first_come is not None:
        build(release_id)


def reconcile() -> dict[str, int]:
    """The scheduled check: every open first-come release has a gate whose remaining count is at least
    the database's (never fewer places than vouchers); gates of releases no longer open go."""
    client = _client.get()
    if client is None:
        return {"built": 0, "corrected": 0, "dropped": 0, "unreachable": int(enabled())}
    open_ids = set(db.session.scalars(
        select(Release.id).join(Campaign, Campaign.id == Release.campaign_id).where(
            Release.status == ReleaseStatus.OPEN.value, Release.mode == ReleaseMode.FIRST_COME.value,
            Campaign.status == CampaignStatus.ACTIVE.value)))
    built = corrected = dropped = 0
    try:
        known = {int(x) for x in client.smembers(_registry())}
        for release_id in sorted(known - open_ids):
            drop(release_id)
            dropped += 1
        for release_id in sorted(open_ids):
            gate, _ = _keys(release_id)
            left = client.hget(gate, "left")
            if left is None:
                built += build(release_id)
                continue
            available = db.session.scalar(select(func.count(Voucher.id)).where(
                Voucher.release_id == release_id, FREE)) or 0
            if int(left) < available:  # places lost in a crash between admission and give-back
                client.hset(gate, "left", str(available))
                corrected += 1
    except redis.RedisError as error:
        _client.failed(error)
    return {"built": built, "corrected": corrected, "dropped": dropped, "unreachable": 0}


def forget_client() -> None:
    """For tests that point the app at another Redis, or stop one."""
    _client.reset()
    forget_sold_out()
