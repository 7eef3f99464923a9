"""The shared Redis of the admission gate (voucher/vouchers/admission.py) and of the partners' request
nonces (voucher/api/auth.py), at ADMISSION_REDIS_URL: one connection pool per process, and a back-off.

Redis is optional: without the setting nothing here connects. With it, a failure (refused connection,
timeout) makes `get()` answer None for RETRY_AFTER seconds, so the callers take their database path and
a dead Redis costs one connect timeout per RETRY_AFTER, not one per request; a warning is logged once
a minute and `degraded` says so for /readyz.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis
from flask import current_app

logger = logging.getLogger(__name__)

RETRY_AFTER = 5.0  # seconds before a Redis that failed is tried again
WARN_EVERY = 60.0


def enabled() -> bool:
    return bool(current_app.config.get("ADMISSION_REDIS_URL"))


class _Client:
    """One Redis connection pool per process, with the back-off after a failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url: str | None = None
        self._redis: Any = None
        self._scripts: dict[str, object] = {}
        self.failed_at = 0.0
        self._warned_at = 0.0

    def get(self) -> Any:  # a redis.Redis or None; redis-py types its replies as sync-or-async unions
        url = current_app.config.get("ADMISSION_REDIS_URL")
        if not url or time.monotonic() - self.failed_at < RETRY_AFTER:
            return None
        with self._lock:
            if self._url != url or self._redis is None:
                self._redis = redis.Redis.from_url(url, socket_connect_timeout=0.3, socket_timeout=0.3,
                                                   health_check_interval=30)
                self._url, self._scripts = url, {}
            return self._redis

    def script(self, client: Any, name: str, source: str) -> Any:
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = client.register_script(source)
        return found

    def failed(self, error: Exception) -> None:
        self.failed_at = time.monotonic()
        if self.failed_at - self._warned_at >= WARN_EVERY:
            self._warned_at = self.failed_at
            logger.warning("Redis unreachable (%s): the admission gate and partner nonces take the database path",
                           error)

    @property
    def degraded(self) -> bool:
        return self.failed_at > 0 and time.monotonic() - self.failed_at < RETRY_AFTER

    def reset(self) -> None:
        with self._lock:
            self._redis, self._url, self._scripts, self.failed_at = None, None, {}, 0.0


CLIENT = _Client()


@dataclass(frozen=True)
class Step:
    """A check a caller needs made in this Redis just before an admission (vouchers/admission.py), in
    the same script, so a flash crowd's claim costs one round trip instead of one per check: a window
    of a rate limit ("count": the key's count + 1, expiring after `seconds` from its first count,
    refused past `limit`) or a request's nonce ("once": refused if the key exists, else kept `seconds`).
    Steps run in order and stop at the first refusal, which raises `refused()`; nothing after it runs.
    When this Redis cannot run them, `usual()` makes the check the caller's own way (its own storage,
    the database), with the same outcome."""

    kind: Literal["count", "once"]
    key: str
    seconds: int
    limit: int
    refused: Callable[[], Exception]
    usual: Callable[[], object]  # (what it returns is not used)
