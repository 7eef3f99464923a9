"""Liveness and readiness probes."""
from __future__ import annotations


def test_healthz_and_readyz_on_a_migrated_database(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


def test_readyz_reports_a_schema_behind_the_code(client, db, monkeypatch):
    import voucher.health

    monkeypatch.setattr(voucher.health, "migration_heads", lambda: {"a_newer_revision"})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["migrations"].startswith("behind")


def test_readyz_reports_an_unreachable_database(tmp_path):
    from tests.conftest import make_app

    app = make_app("postgresql+psycopg://postgres@127.0.0.1:1/none")  # nothing listens on port 1
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["checks"]["database"] == "unreachable"
    assert app.test_client().get("/healthz").status_code == 200
