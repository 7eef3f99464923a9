"""A flash crowd's late arrivals, answered before Flask: a channel claim for a release whose admission gate
this process has just seen sold out gets its 409 `sold_out` here, in a small fraction of a full request.

In a drop of 50,000 vouchers and 500,000 attempts, nine attempts in ten come after the gate has sold out. A
full request (Flask's contexts, two rate-limit counters, the nonce, the gate's script: four Redis round
trips, or one script where the limits share the gate's Redis) costs more than everything the answer says.
Here the same request is answered with one Redis round trip, the nonce's, and the same bytes, headers,
access line and metrics as the full path.

Only a request that would certainly get `sold_out` takes the lane: a well-formed, correctly signed claim
by an active partner this process has in its cache (the signature and partner checks are auth.py's;
the lane reads no database), a valid release and phone number
(the view's own validators), a fresh nonce, and a release known sold out: the gate said so within
ADMISSION_SOLD_OUT_MEMO_SECONDS (admission.known_sold_out), or the database found no voucher of it left at
all, which is final (vouchers.services.known_sold_out; the gate can over-admit by the claims in flight while
it is built, and then the database has the last word). Anything else, including every doubt, goes on to Flask
untouched and gets the full path's precise answer: 401, 422, 429, or a voucher.

What the lane leaves out, on purpose: the per-address and per-partner rate limits. They protect the
database from a caller's excess; this answer reads no database and costs less than counting the request
would. A flood from one address is still limited in front of the app (nginx limit_req,
docs/operations.md). The nonce is spent, as on the full path, so a request refused here cannot be
replayed later to win a place given back meanwhile.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any, cast

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from voucher.api import auth
from voucher.api.body import too_deep
from voucher.api.views import read_citizen, read_claim
from voucher.core.errors import DomainError, SoldOut
from voucher.ops import logs
from voucher.ops.hooks import Finisher, request_id_from
from voucher.vouchers import admission
from voucher.vouchers import services as vouchers

PATH = "/api/v1/channel/claims"
#: the same claim with the release in the path (and the routes as the full path's access line and metrics
#: name them)
RELEASE_PATH = re.compile(r"/api/v1/channel/releases/([1-9][0-9]{0,9})/claims")
ROUTE = PATH
RELEASE_ROUTE = "/api/v1/channel/releases/<int:release_id>/claims"
MAX_BODY = 1024  # a claim is about 80 bytes; anything larger goes the full way

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class SoldOutFastLane:
    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app = app
        self.inner = inner
        self.finisher: Finisher = app.extensions["voucher.finisher"]
        with app.app_context():  # the full path's own JSON answer (web.py's error handler: jsonify)
            answer = cast(Response, app.json.response(success=False, errors=[
                {"code": SoldOut.code, "message": SoldOut.default_message}]))
        self.body = answer.get_data()
        self.content_type = answer.content_type

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if (not (admission.any_known_sold_out() or vouchers.any_known_sold_out())
                or environ.get("REQUEST_METHOD") != "POST"):
            return self.inner(environ, start_response)
        path = environ.get("PATH_INFO", "")
        in_path = None if path == PATH else RELEASE_PATH.fullmatch(path)
        if path != PATH and in_path is None:
            return self.inner(environ, start_response)
        started = perf_counter()
        body = self._body(environ)
        release_in_path = int(in_path.group(1)) if in_path is not None else None
        if body is not None and self._certainly_sold_out(environ, body, path, release_in_path):
            return self._answer(environ, start_response, started, ROUTE if in_path is None else RELEASE_ROUTE)
        return self.inner(environ, start_response)

    @staticmethod
    def _body(environ: dict) -> bytes | None:
        """The request's body, read once and put back for Flask; None (nothing read) when it is not a
        small JSON body of a declared length."""
        length = environ.get("CONTENT_LENGTH") or ""
        if not (length.isdigit() and 0 < int(length) <= MAX_BODY):
            return None
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != "application/json":
            return None
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _certainly_sold_out(self, environ: dict, body: bytes, path: str, release_in_path: int | None) -> bool:
        with self.app.app_context():
            if not admission.enabled():  # no Redis for the nonce: the full path spends it in the database
                return False
            try:
                nonce = environ.get("HTTP_X_NONCE", "")
                partner = auth.signed_partner(
                    environ.get("HTTP_X_PARTNER_KEY", ""), environ.get("HTTP_X_TIMESTAMP", ""), nonce,
                    environ.get("HTTP_X_SIGNATURE", ""), "POST", path, body, partner_of=auth.cached_partner)
                if too_deep(body):
                    return False
                claim: Any = json.loads(body)
                if not isinstance(claim, dict):
                    return False
                # the views' own validators
                if release_in_path is None:
                    release_id, _phone = read_claim(claim)
                else:
                    release_id, _phone = release_in_path, read_citizen(claim)
            except (DomainError, ValueError, RecursionError):
                return False
            if not (admission.known_sold_out(release_id) or vouchers.known_sold_out(release_id)):
                return False
            return auth.spend_nonce_in_redis(partner.id, nonce) is True

    def _answer(self, environ: dict, start_response: Callable, started: float, route: str) -> Iterable[bytes]:
        rid = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        secure = environ.get("wsgi.url_scheme") == "https"
        start_response("409 CONFLICT", [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))),
                                        ("Vary", "Cookie"), *self.finisher.headers_for(secure), ("X-Request-ID", rid)])
        token = logs.request_id.set(rid)
        try:
            self.finisher.record(route, "POST", 409, perf_counter() - started)
        finally:
            logs.request_id.reset(token)
        return [self.body]


def install(app: Flask) -> None:
    """Put the lane in front of Flask, behind the proxy fix (it reads the client's scheme as fixed)."""
    outer = app.wsgi_app
    if isinstance(outer, ProxyFix):
        outer.app = SoldOutFastLane(app, outer.app)
    else:
        app.wsgi_app = SoldOutFastLane(app, outer)  # type: ignore[method-assign]
