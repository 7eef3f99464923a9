"""The production plumbing's settings from the environment, read by voucher/config.py. Kept free of
Flask and of the extensions so the configuration can be loaded anywhere (gunicorn.conf.py, scripts)."""
from __future__ import annotations

import ipaddress

#: the rate limits and their defaults, in the `limits` notation ("5 per minute;30 per hour")
RATE_LIMITS = {
    # staff sign-in, per address: the sixth attempt within a minute is refused
    "RATELIMIT_LOGIN": "5 per minute;30 per hour",
    # citizen phone / one-time code, per address (mobile carriers put many phones behind one address)
    "RATELIMIT_CITIZEN_LOGIN": "20 per minute",
    # citizen claim and lottery entry, per address
    "RATELIMIT_CLAIM": "30 per minute",
    # the public merchant application form, per address (every POST, whatever its outcome)
    "RATELIMIT_MERCHANT_APPLY": "5 per minute;20 per hour",
    # partner claim API, per address and per partner
    "RATELIMIT_CHANNEL_CLAIM_IP": "3000 per minute",
    "RATELIMIT_CHANNEL_CLAIM_PARTNER": "3000 per minute",
    # counter page, per address (a shop's tills often share one)
    "RATELIMIT_COUNTER": "120 per minute",
    # terminal redemption API, per address and per terminal
    "RATELIMIT_REDEMPTION_IP": "1200 per minute",
    "RATELIMIT_REDEMPTION_TERMINAL": "120 per minute",
}


def parse_networks(text: str) -> tuple:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def rate_limits_from_env(env: dict[str, str]) -> dict:
    from limits import parse_many

    from voucher.config import ConfigError

    settings = {name: env.get(name, default) for name, default in RATE_LIMITS.items()}
    for name, value in settings.items():
        try:
            parse_many(value)
        except ValueError as error:
            raise ConfigError(f"{name} 不是有效的限流设置（例如 \"5 per minute;30 per hour\"）：{value!r}") from error
    # local:// counts in each process (voucher.ops.limits.LocalStorage); redis://host:port/db shares.
    storage = env.get("RATELIMIT_STORAGE_URI", "").strip() or "local://"
    settings.update({
        "RATELIMIT_ENABLED": env.get("RATELIMIT_ENABLED", "1") == "1",
        "RATELIMIT_STORAGE_URI": storage,
        # A Redis that stops answering holds a request up at most this long before the fallback.
        "RATELIMIT_STORAGE_OPTIONS": (
            {"socket_connect_timeout": 0.5, "socket_timeout": 0.5} if storage.startswith("redis") else {}
        ),
        # Several deployments may share one Redis: each counts under its own prefix.
        "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", "voucher"),
    })
    return settings
