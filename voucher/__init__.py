"""消费券与补贴活动管理系统.

create_app() runs in a fixed order: config -> logging and the per-request hooks (voucher/ops) -> extensions ->
blueprints -> error handlers -> CLI -> scheduled jobs.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask

from voucher import config as config_module

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(config_module.load(app.instance_path, overrides))
    from voucher.web import CookieSessions

    app.session_interface = CookieSessions()  # the API's cookie-less requests skip the cookie signer
    from voucher import ops
    from voucher.ops.logs import configure_logging

    # JSON lines in production (LOG_FORMAT); then the proxy fix and the per-request hook (request id,
    # access log, metrics, security headers), registered before any extension's hook.
    configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    ops.init_app(app)

    _init_extensions(app)
    _bound_integer_urls(app)
    _register_blueprints(app)
    _register_hooks()

    from voucher.web import register_error_handlers, register_template_helpers

    register_error_handlers(app)
    register_template_helpers(app)

    from voucher.cli import register_cli

    register_cli(app)

    from voucher.jobs.scheduler import should_start, start_scheduler

    if should_start(app):
        start_scheduler(app)
    return app


def _init_extensions(app: Flask) -> None:
    from voucher.core.db import configure_sqlite_durability
    from voucher.extensions import csrf, db, login_manager, migrate

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        configure_sqlite_durability()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)

    # Import every model so metadata (and Alembic's autogenerate) sees all tables.
    from voucher import models  # noqa: F401
    from voucher.accounts import sessions

    # Staff sessions are checked against the database on every request (and the user loaded with them).
    sessions.init_app(app)


def _register_hooks() -> None:
    """Where a lower layer calls up into a higher one, the higher one is plugged in here, the only
    place that sees both (docs/architecture.md)."""
    from voucher.analytics import rollup
    from voucher.counter import redemption
    from voucher.ledger import closing
    from voucher.reports.consistency import verify_against_domains

    closing.register_check("consistency.verify_against_domains", verify_against_domains,
                           "账簿与业务一致：各资金来源到位金额、预留（未用券面值与已批补贴）、已支出（有效核销与已拨补贴）、已结算（已支付批次）与账户余额相符，券状态与核销记录相符")
    # The leverage figures must equal a full scan the moment a redemption of an aggregated day is reversed.
    redemption.on_reversal("analytics.rollup", rollup.redemption_reversed)


def _bound_integer_urls(app: Flask) -> None:
    """`<int:id>` in a URL stops at 2^31 - 1: a larger id is a plain 404, not a database error."""
    from werkzeug.routing import IntegerConverter

    class BoundedInteger(IntegerConverter):
        def __init__(self, url_map, *args, **kwargs):
            kwargs.setdefault("max", 2**31 - 1)
            super().__init__(url_map, *args, **kwargs)

    app.url_map.converters["int"] = BoundedInteger


def _register_blueprints(app: Flask) -> None:
    from voucher.accounts.views import bp as accounts_bp
    from voucher.analytics.views import bp as analytics_bp
    from voucher.api.views import bp as api_bp
    from voucher.campaigns.grant_views import bp as grants_bp
    from voucher.campaigns.measure_views import bp as measures_bp
    from voucher.campaigns.views import bp as campaigns_bp
    from voucher.extensions import csrf
    from voucher.health import bp as health_bp
    from voucher.info_consumption_index.views import bp as index_bp
    from voucher.jobs.views import bp as jobs_bp
    from voucher.ledger.views import bp as periods_bp
    from voucher.merchants.onboarding_views import bp as onboarding_bp
    from voucher.merchants.views import bp as merchants_bp
    from voucher.ops.metrics import bp as metrics_bp
    from voucher.reconciliation.views import bp as reconciliation_bp
    from voucher.reports.views import bp as reports_bp
    from voucher.settlement.views import bp as settlement_bp
    from voucher.vouchers.views import bp as vouchers_bp

    for bp in (accounts_bp, measures_bp, campaigns_bp, grants_bp, vouchers_bp, merchants_bp, onboarding_bp, analytics_bp,
               settlement_bp, reconciliation_bp, periods_bp, reports_bp, jobs_bp, index_bp):
        app.register_blueprint(bp)
    # The API authenticates every request itself (bearer token or signature), not by cookie: no CSRF.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    # A flash crowd's late channel claims, answered before Flask once the admission gate has sold out.
    from voucher.api import fast_lane

    fast_lane.install(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
