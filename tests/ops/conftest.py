"""An app of its own per test, on the session's database, with production plumbing switched on as
the test asks (rate limits, JSON logs, a trusted proxy...)."""
from __future__ import annotations

import io
import json
import time
import uuid

import pytest

from tests.conftest import make_app
from voucher.api import auth
from voucher.core.db import db as _db


@pytest.fixture
def make_ops_app(app, db):
    """Build an app and push its context: the test's own queries and its client's requests then share
    one session (on SQLite a second session would wait for the first one's write lock)."""
    contexts = []

    def build(**overrides):
        settings = {"RATELIMIT_ENABLED": True, "LOG_FORMAT": "json"}
        settings.update(overrides)
        built = make_app(app.config["SQLALCHEMY_DATABASE_URI"], **settings)
        context = built.app_context()
        context.push()
        contexts.append(context)
        return built

    yield build
    for context in reversed(contexts):
        _db.session.rollback()
        _db.session.remove()
        _db.engine.dispose()
        context.pop()


@pytest.fixture
def log_lines():
    """Send the logs to a buffer (as configure_logging does for stderr); read them back parsed."""
    from voucher.ops.logs import configure_logging

    buffer = io.StringIO()

    def start():
        configure_logging("json", "INFO", stream=buffer)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    lines.start = start
    lines.text = buffer.getvalue
    yield lines
    configure_logging("text", "INFO")  # back to stderr


def signed_claim(client, body: dict, key_id: str = "pk_ops", remote: str = "127.0.0.1",
                 path: str = "/api/v1/channel/claims"):
    raw = json.dumps(body).encode()
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    sig = auth.signature(auth.partner_secret(key_id), "POST", path, timestamp, nonce, raw)
    return client.post(path, data=raw, content_type="application/json",
                       environ_base={"REMOTE_ADDR": remote},
                       headers={"X-Partner-Key": key_id, "X-Timestamp": timestamp, "X-Nonce": nonce,
                                "X-Signature": sig})


def redeem_request(client, token: str, code: str, key: str, remote: str = "127.0.0.1"):
    return client.post("/api/v1/redemptions", json={"code": code, "order_amount_fen": 150_00},
                       environ_base={"REMOTE_ADDR": remote},
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
