"""Configuration from the environment. Development defaults are marked, and refused in production."""
from __future__ import annotations

import os
from pathlib import Path

from voucher.core.uploads import MAX_REQUEST_BYTES
from voucher.ops.settings import parse_networks, rate_limits_from_env

# Development-only defaults. create_app() refuses to start in production while any is in use.
DEV_SECRET_KEY = "dev-only-insecure-secret-key"
DEV_QR_KEYS = "dev1:dev-only-insecure-qr-signing-key"
DEV_IDENTITY_HASH_KEY = "dev-only-insecure-identity-hash-key"
DEV_AUDIT_MAC_KEYS = "dev1:dev-only-insecure-audit-mac-key"
DEV_PARTNER_MASTER_KEY = "dev-only-insecure-partner-master-key"


class ConfigError(RuntimeError):
    pass


def parse_key_ring(text: str, name: str = "QR_SIGNING_KEYS") -> dict[str, bytes]:
    """`kid1:secret1,kid2:secret2` -> {kid: secret}. The active key is QR_ACTIVE_KEY_ID (default: the first)."""
    ring: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kid, sep, secret = item.partition(":")
        if not sep or not kid.strip() or not secret.strip() or "." in kid:
            raise ConfigError(f"{name} 格式应为 kid:secret[,kid:secret]，kid 中不能有点号")
        ring[kid.strip()] = secret.strip().encode()
    if not ring:
        raise ConfigError(f"{name} 不能为空")
    return ring


def database_url(env: dict[str, str], instance_path: str) -> str:
    url = env.get("DATABASE_URL") or f"sqlite:///{Path(instance_path) / 'voucher.db'}"
    # psycopg 3 is the driver; accept the common spellings of a PostgreSQL URL.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default)).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} 应为正整数，而不是 {text!r}")
    return int(text)


def load(instance_path: str, overrides: dict | None = None) -> dict:
    env = dict(os.environ)
    # The embedded SQLite default is for trying the app; a PostgreSQL database without an explicit
    # VOUCHER_ENV is taken as production, so a forgotten variable fails closed, not open.
    default_environment = "production" if database_url(env, instance_path).startswith("postgresql") else "development"
    environment = env.get("VOUCHER_ENV", default_environment).strip().lower()
    if environment not in ("development", "testing", "production"):
        raise ConfigError(f"VOUCHER_ENV 应为 development、testing 或 production，而不是 {environment!r}")
    qr_keys_text = env.get("QR_SIGNING_KEYS", DEV_QR_KEYS)
    keys = parse_key_ring(qr_keys_text)
    config = {
        "ENV_NAME": environment,
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url(env, instance_path),
        # No ping on every checkout (a round trip per request): a connection found dropped invalidates
        # the whole pool, so a database restart costs each process one failed request.
        # In production an SQL error's message leaves out the bound values (phone hashes, codes), so
        # no personal data reaches the logs through a traceback.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False, "hide_parameters": environment == "production"},
        "QR_SIGNING_KEYS": keys,
        "QR_ACTIVE_KEY_ID": env.get("QR_ACTIVE_KEY_ID", next(iter(keys))),
        "IDENTITY_HASH_KEY": env.get("IDENTITY_HASH_KEY", DEV_IDENTITY_HASH_KEY).encode(),
        # Audit records and their sealed chain carry an HMAC under these keys (voucher/core/audit_chain.py):
        # whoever can write the database but not read this key cannot forge a record or a seal.
        "AUDIT_MAC_KEYS": parse_key_ring(env.get("AUDIT_MAC_KEYS", DEV_AUDIT_MAC_KEYS), "AUDIT_MAC_KEYS"),
        "AUDIT_MAC_ACTIVE_KEY_ID": env.get("AUDIT_MAC_ACTIVE_KEY_ID", "").strip() or None,
        # Shows the citizen's one-time code on the page instead of sending an SMS (no gateway yet).
        "OTP_DEV_DISPLAY": env.get("OTP_DEV_DISPLAY", "1" if environment != "production" else "0") == "1",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": environment == "production",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": environment == "production",
        "WTF_CSRF_TIME_LIMIT": None,
        # An upload request larger than this is answered 413 (a Chinese page) before its body is parsed;
        # each importer then bounds the file itself (voucher/core/uploads.py).
        "MAX_CONTENT_LENGTH": MAX_REQUEST_BYTES,
        "PASSWORD_HASH_METHOD": "scrypt",
        # Staff sessions (voucher/accounts/sessions.py): ended after this long without a request, and
        # this long after the sign-in however busy; checked on every request.
        "STAFF_SESSION_IDLE_MINUTES": _positive_int(env, "STAFF_SESSION_IDLE_MINUTES", 30),
        "STAFF_SESSION_LIFETIME_HOURS": _positive_int(env, "STAFF_SESSION_LIFETIME_HOURS", 12),
        # Wrong passwords in a row before a staff account is locked, and for how long.
        "LOGIN_MAX_FAILURES": _positive_int(env, "LOGIN_MAX_FAILURES", 5),
        "LOGIN_LOCKOUT_MINUTES": _positive_int(env, "LOGIN_LOCKOUT_MINUTES", 15),
        # A cashier may undo a mistaken redemption for this long, at the same store.
        "REVERSAL_WINDOW_MINUTES": int(env.get("REVERSAL_WINDOW_MINUTES", "30")),
        # Channel partners' signing secrets are derived from this key; requests older than the
        # window, or with a nonce seen before, are refused.
        "PARTNER_MASTER_KEY": env.get("PARTNER_MASTER_KEY", DEV_PARTNER_MASTER_KEY).encode(),
        "PARTNER_REPLAY_WINDOW_SECONDS": 300,
        # Run the scheduled jobs' clock in this process. Any number of processes may: each schedule
        # slot still runs once (voucher/jobs). Off by default, and in tests.
        "SCHEDULER_ENABLED": env.get("SCHEDULER_ENABLED", "0") == "1",
        # Production plumbing (voucher/ops). X-Forwarded-* is trusted from this many proxies in front.
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        "LOG_FORMAT": env.get("LOG_FORMAT", "json" if environment == "production" else "text"),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "ACCESS_LOG": env.get("ACCESS_LOG", "1") == "1",
        "METRICS_ENABLED": env.get("METRICS_ENABLED", "1") == "1",
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        "METRICS_ALLOWED_NETWORKS": parse_networks(env.get("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")),
        "HSTS_MAX_AGE": int(env.get("HSTS_MAX_AGE", "31536000")),
        **rate_limits_from_env(env),
    }
    if overrides:
        config.update(overrides)
    if config["QR_ACTIVE_KEY_ID"] not in config["QR_SIGNING_KEYS"]:
        raise ConfigError("QR_ACTIVE_KEY_ID 不在 QR_SIGNING_KEYS 中")
    config["AUDIT_MAC_ACTIVE_KEY_ID"] = config["AUDIT_MAC_ACTIVE_KEY_ID"] or next(iter(config["AUDIT_MAC_KEYS"]))
    if config["AUDIT_MAC_ACTIVE_KEY_ID"] not in config["AUDIT_MAC_KEYS"]:
        raise ConfigError("AUDIT_MAC_ACTIVE_KEY_ID 不在 AUDIT_MAC_KEYS 中")
    if config["ENV_NAME"] == "production":
        _refuse_dev_defaults(config, qr_keys_text)
    if config["LOG_FORMAT"] not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT 应为 json 或 text，而不是 {config['LOG_FORMAT']!r}")
    return config


def _refuse_dev_defaults(config: dict, qr_keys_text: str) -> None:
    insecure = []
    # A development default, or a secret too short to be one, is refused.
    if config["SECRET_KEY"] == DEV_SECRET_KEY or len(config["SECRET_KEY"]) < 16:
        insecure.append("SECRET_KEY")
    if qr_keys_text == DEV_QR_KEYS or any(
        k.startswith(b"dev-only") or len(k) < 16 for k in config["QR_SIGNING_KEYS"].values()
    ):
        insecure.append("QR_SIGNING_KEYS")
    if config["IDENTITY_HASH_KEY"] == DEV_IDENTITY_HASH_KEY.encode() or len(config["IDENTITY_HASH_KEY"]) < 16:
        insecure.append("IDENTITY_HASH_KEY")
    if config["PARTNER_MASTER_KEY"] == DEV_PARTNER_MASTER_KEY.encode() or len(config["PARTNER_MASTER_KEY"]) < 16:
        insecure.append("PARTNER_MASTER_KEY")
    if any(k.startswith(b"dev-only") or len(k) < 16 for k in config["AUDIT_MAC_KEYS"].values()):
        insecure.append("AUDIT_MAC_KEYS")
    if config["OTP_DEV_DISPLAY"]:
        insecure.append("OTP_DEV_DISPLAY")
    if config["METRICS_TOKEN"] and len(config["METRICS_TOKEN"]) < 16:
        insecure.append("METRICS_TOKEN")
    if insecure:
        raise ConfigError(
            f"生产环境不能使用开发默认值或过短的密钥（至少 16 个字符）：{', '.join(insecure)}。请通过环境变量设置。"
        )
