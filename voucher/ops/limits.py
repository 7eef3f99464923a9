"""Rate limits on the endpoints worth attacking: sign-in, claims and redemption.

Each guarded view carries a decorator from this module (the channel claim counts in the view instead: see
channel_claim_steps). Its POSTs are counted per client address
(after ProxyFix) and, on the JSON API, also per caller: per channel partner (counted in the view once
its signature has checked out, so nobody can spend a partner's allowance with its key id alone) and
per store terminal (a digest of its token, so nobody without the token can spend a terminal's allowance). The
numbers come from RATELIMIT_* settings in the `limits` notation ("5 per minute;30 per hour"; see
voucher/config.py for the defaults), read when the app is created, so a test app can lower them.

The counting is done by `limits` (the engine under Flask-Limiter) with fixed windows. Flask-Limiter
itself is not used: its per-request resolution of which limits apply cost about 0.15 ms of CPU per
request here (measured on the redemption API), more than the whole budget for logs, metrics and limits
together; checking a known limit directly costs a few microseconds.

Counters live in this process by default (with N gunicorn workers a client gets up to N times a limit);
with RATELIMIT_STORAGE_URI=redis://... every process and every app server share them. Should Redis stop
answering, counting falls back to this process for RETRY_STORAGE_AFTER seconds and a warning is logged:
a broken limiter never takes the service down.

A refusal is 429 with Retry-After: a Chinese page, or on the API the usual error shape with the code
`rate_limited` (voucher/web.py).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from functools import partial, wraps
from typing import Callable, NamedTuple

import redis
from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from voucher.config import RATE_LIMITS
from voucher.core.redis_store import Step

logger = logging.getLogger(__name__)

RETRY_MESSAGE = "请求过于频繁，请稍后再试"
RETRY_STORAGE_AFTER = 30.0


class LocalStorage(Storage):
    """Fixed-window counters in this process (the default). limits' own MemoryStorage starts a new
    timer thread every 10 ms while requests come in, each scanning every key to expire old windows;
    here an expired window is replaced when its key is next counted, and the rest are swept inline
    once a minute."""

    STORAGE_SCHEME = ["voucher-local"]
    SWEEP_EVERY = 60.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options) -> None:
        self._windows: dict[str, list] = {}  # key -> [window end (epoch seconds), count]
        self._lock = threading.Lock()
        self._next_sweep = time.time() + self.SWEEP_EVERY
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
                self._next_sweep = now + self.SWEEP_EVERY
            window = self._windows.get(key)
            if window is None or window[0] <= now:
                if amount < 0:  # giving back a count of a window that has ended: nothing to give back
                    return 0
                window = self._windows[key] = [now + expiry, 0]
            window[1] += amount
            return window[1]

    def get(self, key: str) -> int:
        window = self._windows.get(key)
        return window[1] if window is not None and window[0] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        window = self._windows.get(key)
        return window[0] if window is not None else time.time()

    def check(self) -> bool:
        return True

    def reset(self) -> int:
        with self._lock:
            count = len(self._windows)
            self._windows = {}
        return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)


def _where(connection: dict) -> tuple:
    """A Redis connection's server and database, from its pool's connection arguments."""
    return (connection.get("host"), connection.get("port"), connection.get("path"), int(connection.get("db") or 0),
            connection.get("username"))


class RateLimited(TooManyRequests):
    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(description=message)
        self.retry_after = retry_after


class RateLimits:
    """The app's counters: app.extensions["rate_limits"]."""

    def __init__(self, config: dict) -> None:
        self.enabled = config["RATELIMIT_ENABLED"]
        self.prefix = config["RATELIMIT_KEY_PREFIX"]
        self.items = {name: tuple(parse_many(config[name])) for name in RATE_LIMITS}
        uri = config["RATELIMIT_STORAGE_URI"]
        self.shared = uri != "local://"
        storage = (storage_from_string(uri, wrap_exceptions=True, **config["RATELIMIT_STORAGE_OPTIONS"])
                   if self.shared else LocalStorage())
        self.primary = FixedWindowRateLimiter(storage)
        self.fallback = FixedWindowRateLimiter(LocalStorage()) if self.shared else self.primary
        self._primary_down_until = 0.0
        self._counts_in_url: dict[str, bool] = {}

    def _strategy(self) -> FixedWindowRateLimiter:
        if self._primary_down_until and time.monotonic() < self._primary_down_until:
            return self.fallback
        return self.primary

    def check(self, setting: str, scope: str, key: str, message: str) -> None:
        """Count one request against every window of `setting`; raise RateLimited if any is full."""
        self.acquire(setting, scope, key, message)

    def acquire(self, setting: str, scope: str, key: str, message: str) -> list:
        """Count one request against every window of `setting` and raise RateLimited if any is now over
        its limit. Each window's count is incremented and read back in one step of the storage, so
        parallel requests each see their own number: no two can both pass as the last one allowed.
        Returns what was counted, for release()."""
        counted = []
        for item in self.items[setting]:
            counted.append(self._hit(item, scope, key, message))
        return counted

    def _hit(self, item: RateLimitItem, scope: str, key: str, message: str) -> tuple:
        strategy = self._strategy()
        try:
            allowed = strategy.hit(item, self.prefix, scope, key)
        except Exception:  # noqa: BLE001 - the shared storage failed; count locally meanwhile
            logger.warning("rate limit storage unreachable; counting in this process for %d s",
                           RETRY_STORAGE_AFTER)
            self._primary_down_until = time.monotonic() + RETRY_STORAGE_AFTER
            strategy = self.fallback
            allowed = strategy.hit(item, self.prefix, scope, key)
        if not allowed:
            raise RateLimited(message, self._retry_after(strategy, item, self.prefix, scope, key))
        return strategy, item

    def steps(self, setting: str, scope: str, key: str, message: str, redis_url: str) -> list[Step] | None:
        """The windows of `setting` as steps of the admission gate's script (core.redis_store.Step), when
        they are counted in that very Redis (`redis_url`): the same keys, counts and refusals as
        acquire(), in the gate's round trip. None when they are counted elsewhere (in this process, in
        another Redis, or locally while the shared storage is down): the caller counts them with check().
        None of them (an empty list) with the limits switched off."""
        if not self.enabled:
            return []
        storage = self.primary.storage
        prefixed = getattr(storage, "prefixed_key", None)
        if prefixed is None or self._strategy() is not self.primary or not self._counts_in(redis_url):
            return None
        return [Step("count", prefixed(item.key_for(self.prefix, scope, key)), item.get_expiry(), item.amount,
                     refused=partial(self._refused, item, scope, key, message),
                     usual=partial(self._hit, item, scope, key, message)) for item in self.items[setting]]

    def _counts_in(self, redis_url: str) -> bool:
        """Whether the counters live in the Redis server and database `redis_url` names, as `limits`
        connects (its URL with RATELIMIT_STORAGE_OPTIONS): the same address and database however the
        two URLs are written ("redis://h:6379" and "redis://h:6379/0" are one)."""
        known = self._counts_in_url.get(redis_url)
        if known is None:
            pool = getattr(getattr(self.primary.storage, "storage", None), "connection_pool", None)
            known = self._counts_in_url[redis_url] = pool is not None and (
                _where(pool.connection_kwargs) == _where(redis.ConnectionPool.from_url(redis_url).connection_kwargs))
        return known

    def _refused(self, item: RateLimitItem, scope: str, key: str, message: str) -> RateLimited:
        return RateLimited(message, self._retry_after(self.primary, item, self.prefix, scope, key))

    def release(self, counted: list, scope: str, key: str) -> None:
        """Give back what acquire() counted (a request that turned out not to count). A window that ended
        meanwhile may start one lower (Redis) or is left alone (local): at most one extra request."""
        for strategy, item in counted:
            try:
                strategy.hit(item, self.prefix, scope, key, cost=-1)
            except Exception:  # noqa: BLE001 - a count not given back only makes the limit stricter
                return

    @staticmethod
    def _retry_after(strategy, item, *identifiers) -> int | None:
        try:
            return max(1, int(strategy.get_window_stats(item, *identifiers).reset_time - time.time()) + 1)
        except Exception:  # noqa: BLE001 - only a hint for the client
            return None


def init_app(app: Flask) -> None:
    app.extensions["rate_limits"] = RateLimits(app.config)


def client_address() -> str:
    return request.remote_addr or "unknown"


def terminal_key() -> str:
    # The token's digest (as stored for the terminal), shortened: a key per terminal, no secret in it.
    token = request.headers.get("Authorization", "")[7:].strip()
    return hashlib.sha256(token.encode()).hexdigest()[:24]


class Allowance(NamedTuple):
    """A guarded action counted outside a decorator: its setting, its counters' scope, its refusal."""

    setting: str
    scope: str
    message: str


def limited(setting: str, message: str, key: Callable[[], str] = client_address, *,
            action: str | None = None) -> Callable:
    """Count the view's POSTs under `setting`, keyed by `key()`; GETs (showing the form) are free. Views
    of one `action` (two routes to the same thing) count in one allowance; by default each view its own."""

    def decorator(view: Callable) -> Callable:
        scope = f"{action or f'{view.__module__}.{view.__name__}'}:{setting}"

        @wraps(view)
        def wrapper(*args, **kwargs):
            if request.method == "POST":
                counters = current_app.extensions["rate_limits"]
                if counters.enabled:
                    counters.check(setting, scope, key(), message)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def limited_failures(setting: str, message: str) -> Callable:
    """Count only the view's refused POSTs (an answer of 400 or more) per client address, and refuse
    while the allowance is spent: colleagues behind one office address sign in as often as they need,
    while guessing passwords from one address is still cut off.

    Every POST is counted before the view runs (incremented, then checked: see acquire()), and the count
    is given back once the answer is a success. Checking first and counting after the answer would let
    parallel guesses all pass the check before any of them was counted."""

    def decorator(view: Callable) -> Callable:
        scope = f"{view.__module__}.{view.__name__}:{setting}"

        @wraps(view)
        def wrapper(*args, **kwargs):
            counters = current_app.extensions["rate_limits"]
            if request.method != "POST" or not counters.enabled:
                return view(*args, **kwargs)
            address = client_address()
            counted = counters.acquire(setting, scope, address, message)
            answer = view(*args, **kwargs)
            status = answer[1] if isinstance(answer, tuple) else getattr(answer, "status_code", 200)
            if status < 400:
                counters.release(counted, scope, address)
            return answer

        return wrapper

    return decorator


# One decorator per guarded action. On the API the address limit and the caller's limit both apply.
login = limited_failures("RATELIMIT_LOGIN", "登录尝试过于频繁，请一分钟后再试")
citizen_login = limited("RATELIMIT_CITIZEN_LOGIN", "验证请求过于频繁，请稍后再试")
claim_page = limited("RATELIMIT_CLAIM", "领取请求过于频繁，请稍后再试")
merchant_apply = limited("RATELIMIT_MERCHANT_APPLY", "提交入驻申请过于频繁，请稍后再试")
merchant_status = limited_failures("RATELIMIT_MERCHANT_STATUS", "查询过于频繁，请稍后再试")
counter_page = limited("RATELIMIT_COUNTER", "核销请求过于频繁，请稍后再试")
# The channel claim's counts are made by the view (api/views.py: _claim_checks), as steps of the admission
# gate's script where they can be: a flash crowd's claim then costs one Redis round trip, not four. Both
# claim routes (the release in the body or in the path) count in one allowance, as the partner's does.
CHANNEL_CLAIM_IP = Allowance("RATELIMIT_CHANNEL_CLAIM_IP", "voucher.api.views.channel_claim:RATELIMIT_CHANNEL_CLAIM_IP",
                             "该地址的领券请求过于频繁，请稍后再试")
CHANNEL_CLAIM_PARTNER = Allowance("RATELIMIT_CHANNEL_CLAIM_PARTNER",
                                  "api.channel_claim:RATELIMIT_CHANNEL_CLAIM_PARTNER", "该渠道的领券请求过于频繁，请稍后再试")
redemption_ip = limited("RATELIMIT_REDEMPTION_IP", "该地址的核销请求过于频繁，请稍后再试")
redemption_terminal = limited("RATELIMIT_REDEMPTION_TERMINAL", "该终端的核销请求过于频繁，请稍后再试", key=terminal_key)


def channel_claim_address() -> None:
    """Count a channel claim from this client address (both claim routes share the allowance)."""
    _count(CHANNEL_CLAIM_IP, client_address())


def channel_claim_partner(partner_id: str) -> None:
    """Count an authenticated partner's claim (called by the view after the signature checked out)."""
    _count(CHANNEL_CLAIM_PARTNER, partner_id)


def channel_claim_steps(partner_id: str, redis_url: str) -> tuple[list[Step], list[Step]] | None:
    """The address's and the partner's counts of a channel claim as steps of the admission gate's
    script in `redis_url`, or None when they are counted elsewhere (then: channel_claim_address and
    channel_claim_partner)."""
    counters = current_app.extensions["rate_limits"]
    address = counters.steps(CHANNEL_CLAIM_IP.setting, CHANNEL_CLAIM_IP.scope, client_address(),
                             CHANNEL_CLAIM_IP.message, redis_url)
    partner = counters.steps(CHANNEL_CLAIM_PARTNER.setting, CHANNEL_CLAIM_PARTNER.scope, partner_id,
                             CHANNEL_CLAIM_PARTNER.message, redis_url)
    return None if address is None or partner is None else (address, partner)


def _count(allowance: Allowance, key: str) -> None:
    counters = current_app.extensions["rate_limits"]
    if counters.enabled:
        counters.check(allowance.setting, allowance.scope, key, allowance.message)
