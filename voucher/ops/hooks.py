"""What every request pays for: a request id, the clock, one access log line, the metrics and the
security headers, in one hook before and one after the view.

Kept lean on purpose (the redemption API's budget): the headers are built once, the metric label
children are cached per route, the access line is a small dict, and the signed-in user is read only
if the view already loaded it, never with a query of its own.
"""
from __future__ import annotations

import logging
import os
import re
from time import perf_counter

from flask import Flask, Response, g, request
from sqlalchemy import inspect as sa_inspect

from voucher.ops import logs, metrics, security

#: a proxy's X-Request-ID is taken as is when it looks like an id (nginx's $request_id is 32 hex
#: digits); anything else is replaced, so a client cannot write arbitrary text into the logs.
_WELL_FORMED_ID = re.compile(r"[0-9A-Za-z._-]{8,128}")

access_logger = logging.getLogger(logs.ACCESS_LOGGER)


def new_request_id() -> str:
    return os.urandom(16).hex()


def _signed_in(user) -> tuple[int, str | None] | None:
    """(id, role) of a user Flask-Login loaded for this request, read from what is already in memory:
    after a commit the object is expired and reading `user.role` would query the database again."""
    values = getattr(user, "__dict__", None)
    if not values or "_sa_instance_state" not in values:
        return None  # anonymous
    user_id = values.get("id")
    if user_id is None:
        identity = sa_inspect(user).identity
        user_id = identity[0] if identity else None
    return (user_id, values.get("role")) if user_id is not None else None


class Finisher:
    """The after-request work, built once per app: the security headers, the access line and the
    metrics. Shared with api/fast_lane.py, which answers some requests before Flask sees them."""

    def __init__(self, config) -> None:
        self.headers = security.static_headers()
        self.hsts = security.hsts_header(config["HSTS_MAX_AGE"])
        self.access_log = config["ACCESS_LOG"]
        self.count = metrics.observe if config["METRICS_ENABLED"] else None

    def headers_for(self, secure: bool) -> tuple[tuple[str, str], ...]:
        return self.headers + (self.hsts,) if secure and self.hsts is not None else self.headers

    def record(self, route: str, method: str, status: int, seconds: float,
               user: tuple[int, str | None] | None = None) -> None:
        if self.count is not None:
            self.count(route, method, status, seconds)
        if self.access_log:
            fields = {"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)}
            if user is not None:
                fields["user_id"], fields["role"] = user
            access_logger.info("request", extra={"fields": fields})


def request_id_from(given: str | None) -> str:
    return given if given is not None and _WELL_FORMED_ID.fullmatch(given) else new_request_id()


def init_app(app: Flask) -> None:
    finisher = app.extensions["voucher.finisher"] = Finisher(app.config)
    set_request_id = logs.request_id.set

    @app.before_request
    def start_request() -> None:
        rid = request_id_from(request.headers.get("X-Request-ID"))
        g.request_id = rid
        g.request_started = perf_counter()
        set_request_id(rid)

    @app.after_request
    def finish_request(response: Response) -> Response:
        started = g.get("request_started")
        rid = g.get("request_id")
        response_headers = response.headers
        for name, value in finisher.headers_for(request.is_secure):
            response_headers[name] = value
        if started is None:  # a hook before ours refused the request: nothing to time
            return response
        response_headers["X-Request-ID"] = rid
        rule = request.url_rule
        finisher.record(rule.rule if rule is not None else metrics.UNMATCHED, request.method, response.status_code,
                        perf_counter() - started, _signed_in(g.get("_login_user")))
        return response

    @app.teardown_request
    def end_request(_error=None) -> None:
        set_request_id(None)
