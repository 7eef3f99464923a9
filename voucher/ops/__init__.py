"""Running in production: the reverse proxy, structured logs, request metrics, rate limits, security
headers and backups. Nothing here is business logic; each module attaches to the app in create_app().

Per request the work is kept to one before_request and one after_request hook (request id, timing,
access log line, metrics, headers): the redemption API is a hot path, and every microsecond here is
paid on each scan at the counter.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Called by create_app() after logging and before the extensions, so that the request hook runs
    first: it starts the clock and sets the request id before CSRF can refuse a request."""
    from voucher.ops import hooks, limits, proxy

    proxy.init_app(app)
    hooks.init_app(app)
    limits.init_app(app)
