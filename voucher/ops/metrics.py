"""Request metrics for Prometheus, at GET /metrics.

Three series, labelled by the route's rule (`/api/v1/redemptions`, never the raw path: ids would make
a series per voucher) and the method:
  voucher_http_requests_total{method, route, status}            every answer
  voucher_http_request_duration_seconds{method, route}          latency histogram
  voucher_http_request_errors_total{method, route, status}      5xx answers only (4xx are the
                                                                 callers' mistakes: see requests_total)

Under gunicorn every worker process writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py sets one up and tells prometheus_client when a worker exits); /metrics adds the
processes up. Without that variable (flask run, tests) the samples live in this process.

/metrics answers only a client on METRICS_ALLOWED_NETWORKS (after ProxyFix: the real client) or one
that sends `Authorization: Bearer <METRICS_TOKEN>`; anyone else gets 404, as if it did not exist.
"""
from __future__ import annotations

import hmac
import ipaddress
import os

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from voucher.core.permissions import checks_itself

REQUESTS = Counter("voucher_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
ERRORS = Counter("voucher_http_request_errors_total", "HTTP requests answered with a 5xx status",
                 ["method", "route", "status"])
DURATION = Histogram(
    "voucher_http_request_duration_seconds", "Time from routing to the response, in the app", ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

#: a client may send any method name; anything else is counted as OTHER, so labels stay bounded
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"

# (route, method, status) -> the label children, looked up once per combination: a request pays one
# dict lookup instead of three `labels()` calls (each takes a lock and builds a tuple).
_children: dict[tuple[str, str, int], tuple] = {}


def observe(route: str, method: str, status: int, seconds: float) -> None:
    if method not in METHODS:
        method = "OTHER"  # before the cache too: made-up methods must not grow it
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        code = str(status)
        children = _children[key] = (
            REQUESTS.labels(method, route, code),
            DURATION.labels(method, route),
            ERRORS.labels(method, route, code) if status >= 500 else None,
        )
    children[0].inc()
    children[1].observe(seconds)
    if children[2] is not None:
        children[2].inc()


bp = Blueprint("metrics", __name__)


def _allowed() -> bool:
    token = current_app.config["METRICS_TOKEN"]
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(client in network for network in current_app.config["METRICS_ALLOWED_NETWORKS"])


@bp.get("/metrics")
@checks_itself("metrics")  # the network or the token: _allowed()
def metrics():
    if not _allowed():
        abort(404)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        body = generate_latest(REGISTRY)
    response = Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response

