"""What every request gets: a request id, one JSON access line without personal data, metrics by
route, security headers; behind a trusted proxy, the client's real address and scheme."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import PASSWORD, make_campaign, make_world
from tests.ops.conftest import redeem_request, signed_claim
from voucher import PROJECT_ROOT
from voucher.api.models import Partner
from voucher.merchants import terminals
from voucher.ops.logs import redact

PHONE = "13912345678"


def test_access_lines_are_json_with_the_request_id_and_no_personal_data(make_ops_app, log_lines, db):
    ops_app = make_ops_app()
    log_lines.start()
    world = make_world()
    _, release = make_campaign(world, quantity=5)
    db.session.add(Partner(name="运维渠道", key_id="pk_ops"))
    _, token = terminals.issue_terminal_token(world.cashier.store_id, "一号机", world.manager.id)
    db.session.commit()
    client = ops_app.test_client()

    claimed = signed_claim(client, {"release_id": release.id, "citizen": {"phone": PHONE}})
    assert claimed.status_code == 201, claimed.get_json()
    voucher = claimed.get_json()["data"]["voucher"]
    assert redeem_request(client, token, voucher["qr_token"], "k-1").status_code == 201
    given = client.get("/healthz", headers={"X-Request-ID": "edge-7f3a9c1e-0001"})
    forged = client.get("/healthz", headers={"X-Request-ID": 'x" injected\\n{"level": "ERROR"}'})
    client.get(f"/nope?phone={PHONE}&token={token}")
    assert client.post("/login", data={"username": "cashier", "password": PASSWORD}).status_code == 302
    assert client.get("/counter").status_code == 200

    assert given.headers["X-Request-ID"] == "edge-7f3a9c1e-0001"
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])
    lines = log_lines()  # every line parses as JSON
    access = [line for line in lines if line["logger"] == "voucher.access"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("POST", "/api/v1/channel/claims", 201),
        ("POST", "/api/v1/redemptions", 201),
        ("GET", "/healthz", 200),
        ("GET", "/healthz", 200),
        ("GET", "<unmatched>", 404),
        ("POST", "/login", 302),
        ("GET", "/counter", 200),
    ]
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in access)
    assert all(re.fullmatch(r"[0-9A-Za-z._-]{8,128}", a["request_id"]) for a in access)
    assert access[2]["request_id"] == "edge-7f3a9c1e-0001"
    assert access[3]["request_id"] == forged.headers["X-Request-ID"]
    assert (access[6]["user_id"], access[6]["role"]) == (world.cashier.id, "cashier")
    assert "user_id" not in access[1]  # a terminal, not a signed-in user
    text = log_lines.text()
    for secret in (PHONE, token, voucher["qr_token"], voucher["code"], PASSWORD, "injected"):
        assert secret not in text


def test_an_exception_is_logged_as_json_without_the_data_in_its_message(make_ops_app, log_lines, db):
    ops_app = make_ops_app(TESTING=False)

    @ops_app.get("/boom")
    def boom():
        raise RuntimeError(f"citizen {PHONE} with token st_{'a' * 40} and 320706199001011234")

    log_lines.start()
    response = ops_app.test_client().get("/boom", headers={"Accept": "application/json"})
    assert response.status_code == 500
    errors = [line for line in log_lines() if line["level"] == "ERROR"]
    assert errors and "RuntimeError" in errors[0]["exc"]
    assert errors[0]["request_id"] == response.headers["X-Request-ID"]
    assert PHONE not in log_lines.text() and "st_aaaa" not in log_lines.text()
    assert "320706199001011234" not in log_lines.text()


def test_redact_masks_what_looks_personal():
    assert redact(f"phone={PHONE}&x=1") == "[redacted]&x=1"
    assert redact("LYGV1.k1.ABCD1234.sig-nature_x") == "[redacted]"
    assert redact("Authorization: Bearer st_abcdefghijklmnopqrstuvwxyz") == "Authorization: [redacted]"
    assert redact("order 42 of 150 yuan") == "order 42 of 150 yuan"


def metric(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_count_requests_latency_and_errors_by_route(make_ops_app, db):
    ops_app = make_ops_app(TESTING=False)

    @ops_app.get("/boom/<int:n>")
    def boom(n):
        raise RuntimeError("boom")

    client = ops_app.test_client()
    route = "/api/v1/redemptions/<int:redemption_id>"
    before = client.get("/metrics").get_data(as_text=True)
    for n in (1, 2):
        assert client.get(f"/api/v1/redemptions/{n}").status_code == 401  # no terminal token
    client.get("/boom/7")
    after = client.get("/metrics")
    assert after.status_code == 200 and after.content_type.startswith("text/plain")
    text = after.get_data(as_text=True)

    def delta(name, **labels):
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert delta("voucher_http_requests_total", method="GET", route=route, status="401") == 2
    assert delta("voucher_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert delta("voucher_http_request_errors_total", method="GET", route="/boom/<int:n>", status="500") == 1
    assert delta("voucher_http_request_errors_total", method="GET", route=route, status="401") == 0
    assert "/api/v1/redemptions/1" not in text  # a series per route, never per path


def test_metrics_answer_only_allowed_networks_or_the_token(make_ops_app, db):
    ops_app = make_ops_app(METRICS_TOKEN="m" * 24)
    client = ops_app.test_client()
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    assert client.get("/metrics").status_code == 200  # 127.0.0.1 is allowed by default
    assert client.get("/metrics", environ_base=outside).status_code == 404
    assert client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", environ_base=outside,
                      headers={"Authorization": f"Bearer {'m' * 24}"}).status_code == 200


def test_behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for(make_ops_app, db):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    proxied = make_ops_app(TRUSTED_PROXIES=1).test_client()
    # The proxy itself is on 127.0.0.1, but the client is outside: no metrics for it.
    assert proxied.get("/metrics", headers=forwarded).status_code == 404
    assert "Strict-Transport-Security" in proxied.get("/healthz", headers=forwarded).headers
    direct = make_ops_app(TRUSTED_PROXIES=0).test_client()
    # Without a trusted proxy the headers are the client's own claims and are ignored.
    assert direct.get("/metrics", headers=forwarded).status_code == 200
    assert "Strict-Transport-Security" not in direct.get("/healthz", headers=forwarded).headers


@pytest.mark.parametrize("path", ["/login", "/c/", "/api/v1/openapi.json", "/no-such-page", "/static/app.css"])
def test_security_headers_on_every_answer(make_ops_app, db, path):
    client = make_ops_app().test_client()
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                      "form-action 'self'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # plain HTTP
    https = client.get(path, base_url="https://localhost").headers
    assert https["Strict-Transport-Security"].startswith("max-age=")


def test_templates_and_charts_need_no_inline_script_or_style():
    """What lets the policy forbid inline scripts and styles: none in the templates, none in the charts."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:", re.I)
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}: {match.group(0)}"
        for path in (PROJECT_ROOT / "templates").rglob("*.html")
        for match in inline.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    from voucher.core import charts

    drawn = [
        charts.bars([("餐饮", 1.5), ("零售", None)], "标题"),
        charts.floor_and_excess([("餐饮", 1.0, 0.5)], "标题"),
        charts.line([("2026-11-01", 2.0), ("2026-11-02", None)], "标题"),
        charts.radar(["需求", "供给", "环境"], [("连云港", [40.0, 50.0, 60.0])], "标题"),
        charts.lines(["2021", "2022"], [("连云港", [40.0, None])], "标题"),
        charts.distribution([("连云港", 40.0), ("苏州", 70.0)], "标题", highlight="连云港"),
        charts.rank_intervals([{"city": "连云港", "low": 3, "median": 5, "high": 8, "rank": 5}], "标题"),
    ]
    assert all("<svg" in str(chart) and not inline.search(str(chart)) for chart in drawn)


def test_production_cookies_are_secure(monkeypatch, tmp_path: Path):
    from voucher.config import load

    for name, value in {"VOUCHER_ENV": "production", "SECRET_KEY": "prod-secret-4f1c0e9a7b",
                        "QR_SIGNING_KEYS": "p1:prod-qr-key-aaaa-bbbb", "IDENTITY_HASH_KEY": "prod-identity-key-77",
                        "PARTNER_MASTER_KEY": "prod-partner-master-key-99",
                        "AUDIT_MAC_KEYS": "a1:prod-audit-mac-key-31",
                        "FIELD_ENCRYPTION_KEYS": "f1:sm4-gcm:Zm9vYmFyYmF6cXV4MTIzNA=="}.items():
        monkeypatch.setenv(name, value)
    config = load(str(tmp_path))
    assert config["SESSION_COOKIE_SECURE"] and config["SESSION_COOKIE_HTTPONLY"]
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["REMEMBER_COOKIE_SECURE"] and config["REMEMBER_COOKIE_HTTPONLY"]
    assert config["LOG_FORMAT"] == "json"
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["hide_parameters"] is True


def test_gunicorn_writes_its_own_lines_as_json(monkeypatch):
    """gunicorn.conf.py's logging, merged into gunicorn's defaults as gunicorn does it, gives JSON lines."""
    import io
    import json
    import logging
    import logging.config
    import runpy

    from gunicorn.glogging import CONFIG_DEFAULTS

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-not-made-by-this-test")
    settings = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    config = {**CONFIG_DEFAULTS, **settings["logconfig_dict"]}
    logger = logging.getLogger("gunicorn.error")
    saved = (logger.handlers[:], logger.propagate, logger.level, logging.getLogger().handlers[:])
    try:
        logging.config.dictConfig(config)
        buffer = io.StringIO()
        logger.handlers[0].setStream(buffer)
        logger.warning("Worker with pid %s was terminated due to signal %s", 4242, 9)
        line = json.loads(buffer.getvalue())
        assert line["logger"] == "gunicorn.error" and line["level"] == "WARNING" and "4242" in line["msg"]
        assert callable(settings["child_exit"]) and settings["accesslog"] is None
    finally:
        logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]
        logging.getLogger().handlers[:] = saved[3]


def test_gunicorn_builds_no_access_line_while_its_access_logger_is_off(monkeypatch):
    """gunicorn.conf.py's logger class skips gunicorn's per-request access atoms while gunicorn.access
    is switched off (as the log configuration has it), and writes the line once it is switched on."""
    import logging
    import runpy

    from gunicorn.glogging import Logger

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-not-made-by-this-test")
    settings = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert settings["logconfig_dict"]["loggers"]["gunicorn.access"]["level"] == "CRITICAL"
    built: list[str] = []
    monkeypatch.setattr(Logger, "access", lambda self, resp, req, environ, request_time: built.append(req))
    logger = settings["logger_class"].__new__(settings["logger_class"])  # no logging setup of its own
    logger.access_log = logging.getLogger("tests.gunicorn.access")
    logger.access_log.setLevel(logging.CRITICAL)  # a logger of this test's own
    logger.access(None, "first", {}, 0.01)
    assert built == []
    logger.access_log.setLevel(logging.INFO)
    logger.access(None, "second", {}, 0.01)
    assert built == ["second"]


def test_a_request_without_a_session_cookie_gets_an_empty_session_and_a_signed_one_still_loads(app):
    """The session interface skips its serializer only when there is no session cookie to read."""
    from flask import request, session

    from voucher.web import CookieSessions

    assert isinstance(app.session_interface, CookieSessions)
    with app.test_request_context("/api/v1/redemptions", method="POST"):
        opened = app.session_interface.open_session(app, request)
        assert opened is not None and dict(opened) == {} and not opened.modified
    client = app.test_client()
    with client.session_transaction() as signed:
        signed["probe"] = "kept"
    with client:
        client.get("/healthz")
        assert session.get("probe") == "kept"
    client.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), "forged.value.here")
    with client:
        client.get("/healthz")
        assert "probe" not in session
