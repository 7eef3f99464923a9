"""Behind a reverse proxy: take the client's address and scheme from X-Forwarded-* headers, but only
as many hops as TRUSTED_PROXIES says. With 0 (the default: no proxy) the headers are ignored, so a
client cannot claim another address to slip past the per-IP rate limits or the /metrics allow-list."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    hops = app.config["TRUSTED_PROXIES"]
    if hops > 0:
        # X-Forwarded-Prefix is not trusted: the app is served at the root (deploy/nginx.conf).
        # mypy reads wsgi_app as a method; wrapping it in middleware is Flask's documented way
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=0)
