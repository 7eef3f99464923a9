"""Configuration from the environment. Development defaults are marked, and refused in production."""
from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from limits import parse_many

from voucher.core.field_crypto import KEY_BYTES, FieldKey
from voucher.core.keyed_mac import ALGORITHMS as MAC_ALGORITHMS
from voucher.core.keyed_mac import HMAC_SHA256, MacKey
from voucher.core.permissions import Role
from voucher.core.uploads import MAX_REQUEST_BYTES

# Development-only defaults. create_app() refuses to start in production while any is in use.
DEV_SECRET_KEY = "dev-only-insecure-secret-key"
DEV_QR_KEYS = "dev1:dev-only-insecure-qr-signing-key"
DEV_IDENTITY_HASH_KEY = "dev-only-insecure-identity-hash-key"
DEV_AUDIT_MAC_KEYS = "dev1:dev-only-insecure-audit-mac-key"
DEV_PARTNER_MASTER_KEY = "dev-only-insecure-partner-master-key"
#: base64 of the 32 bytes "dev-only-insecure-field-enc-key!"
DEV_FIELD_ENCRYPTION_KEYS = "dev1:aes-256-gcm:ZGV2LW9ubHktaW5zZWN1cmUtZmllbGQtZW5jLWtleSE="
#: the key id of a ring made from the single IDENTITY_HASH_KEY. Stored hashes do not name their key
#: (citizens.py looks a phone up under every key of the ring), so the name is free to change.
SINGLE_IDENTITY_KEY_ID = "default"


class ConfigError(RuntimeError):
    pass


# -- the production plumbing's settings (voucher/ops): rate limits, networks -------------------------

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
    # the application's status page, per address: only lookups that find nothing count (guessing a phone)
    "RATELIMIT_MERCHANT_STATUS": "10 per minute;30 per hour",
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
    settings: dict[str, Any] = {name: env.get(name, default) for name, default in RATE_LIMITS.items()}
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


def parse_key_ring(text: str, name: str = "QR_SIGNING_KEYS") -> dict[str, MacKey]:
    """`kid1:secret1,kid2:hmac-sm3:secret2` -> {kid: MacKey}. The active key is QR_ACTIVE_KEY_ID (default:
    the first).

    A key id may name its algorithm between key id and secret: `hmac-sha256` or `hmac-sm3`. Without one
    it is HMAC-SHA256, as every key was before. A secret may itself contain a colon, so a middle part is
    read as an algorithm only when it starts with `hmac-`, and an unknown `hmac-...` is refused rather
    than taken for part of the secret."""
    ring: dict[str, MacKey] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kid, sep, rest = item.partition(":")
        algorithm, secret = _algorithm_and_secret(rest, name)
        if not sep or not kid.strip() or not secret.strip() or "." in kid:
            raise ConfigError(f"{name} 格式应为 kid:secret 或 kid:算法:secret（多个用逗号分隔），kid 中不能有点号")
        ring[kid.strip()] = MacKey(secret.strip().encode(), algorithm)
    if not ring:
        raise ConfigError(f"{name} 不能为空")
    return ring


def _algorithm_and_secret(rest: str, name: str) -> tuple[str, str]:
    head, sep, tail = rest.partition(":")
    algorithm = head.strip().lower()
    if not sep or not algorithm.startswith("hmac-"):
        return HMAC_SHA256, rest
    if algorithm not in MAC_ALGORITHMS:
        raise ConfigError(f"{name} 中的算法 {head.strip()!r} 不受支持，可用：{'、'.join(MAC_ALGORITHMS)}")
    return algorithm, tail


def _identity_key_ring(env: dict[str, str]) -> dict[str, MacKey]:
    """IDENTITY_HASH_KEYS (a ring), or the older single IDENTITY_HASH_KEY as a ring of one HMAC-SHA256 key."""
    if "IDENTITY_HASH_KEYS" in env:
        if "IDENTITY_HASH_KEY" in env:
            raise ConfigError("IDENTITY_HASH_KEY 与 IDENTITY_HASH_KEYS 只能设置其一：请把原密钥列入 "
                              "IDENTITY_HASH_KEYS，再删去 IDENTITY_HASH_KEY")
        return parse_key_ring(env["IDENTITY_HASH_KEYS"], "IDENTITY_HASH_KEYS")
    return {SINGLE_IDENTITY_KEY_ID: MacKey(env.get("IDENTITY_HASH_KEY", DEV_IDENTITY_HASH_KEY).encode())}


_FIELD_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def parse_field_keys(text: str, name: str = "FIELD_ENCRYPTION_KEYS") -> dict[str, FieldKey]:
    """`kid:aes-256-gcm:<base64 of 32 bytes>,kid2:sm4-gcm:<base64 of 16 bytes>` -> {kid: FieldKey}."""
    ring: dict[str, FieldKey] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = [part.strip() for part in item.split(":")]
        if len(parts) != 3 or not _FIELD_KEY_ID.match(parts[0]):
            raise ConfigError(f"{name} 格式应为 kid:算法:base64密钥（多个用逗号分隔），kid 为 1 到 16 位字母、数字、_ 或 -")
        kid, algorithm, encoded = parts[0], parts[1].lower(), parts[2]
        if algorithm not in KEY_BYTES:
            raise ConfigError(f"{name} 中密钥 {kid} 的算法 {parts[1]!r} 不受支持，可用：{'、'.join(KEY_BYTES)}")
        try:
            # URL-safe base64 is accepted too: the two differ only in "-_" against "+/".
            secret = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
        except binascii.Error:
            raise ConfigError(f"{name} 中密钥 {kid} 不是有效的 base64") from None
        if len(secret) != KEY_BYTES[algorithm]:
            raise ConfigError(f"{name} 中密钥 {kid} 应为 {KEY_BYTES[algorithm]} 字节（{algorithm}），"
                              f"而不是 {len(secret)} 字节")
        ring[kid] = FieldKey(algorithm, secret)
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


#: DATABASE_POOLER: what sits between the app and PostgreSQL. "pgbouncer" (transaction pooling) hands each
#: transaction to whichever server connection is free, so nothing may outlive a transaction on a connection.
POOLERS = ("", "none", "pgbouncer")


def engine_options(env: dict[str, str], url: str, environment: str) -> dict[str, Any]:
    """SQLAlchemy's engine options. No ping on every checkout (a round trip per request): a connection found
    dropped invalidates the whole pool, so a database restart costs each process one failed request. In
    production an SQL error's message leaves out the bound values (phone hashes, codes), so no personal data
    reaches the logs through a traceback.

    Behind PgBouncer in transaction mode, psycopg 3 must not prepare statements on the server
    (prepare_threshold=None): after five runs of a statement it would PREPARE it on one server connection and
    EXECUTE it later on another, which does not know it ("prepared statement _pg3_0 does not exist"). The
    app's own SQL keeps no other state beyond a transaction: advisory locks are transaction-level
    (core.db.serialize), settings are SET LOCAL, isolation and read-only go in BEGIN, and nothing LISTENs."""
    options: dict[str, Any] = {"pool_pre_ping": False, "hide_parameters": environment == "production"}
    pooler = env.get("DATABASE_POOLER", "").strip().lower()
    if pooler not in POOLERS:
        raise ConfigError(f"DATABASE_POOLER 应为空或 pgbouncer，而不是 {pooler!r}")
    if pooler == "pgbouncer":
        if not url.startswith("postgresql"):
            raise ConfigError("DATABASE_POOLER=pgbouncer 只适用于 PostgreSQL 的 DATABASE_URL")
        options["connect_args"] = {"prepare_threshold": None}
    return options


def reports_database_url(env: dict[str, str]) -> str | None:
    """REPORTS_DATABASE_URL: a PostgreSQL streaming standby for the report pages' reads (core.db.report_reads),
    or None (empty, the default): every report reads the primary."""
    url = env.get("REPORTS_DATABASE_URL", "").strip()
    if not url:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith("postgresql+psycopg://"):
        raise ConfigError("REPORTS_DATABASE_URL 应为 PostgreSQL 备库的地址（postgresql://…）或留空")
    return url


def reports_engine_options(env: dict[str, str], url: str | None, primary: dict[str, Any]) -> dict[str, Any]:
    """The standby's engine: the primary's driver settings (a PgBouncer in front of it too needs
    prepare_threshold=None), and a short connect timeout, so a standby gone away costs a report page
    seconds before it falls back to the primary, not the kernel's minutes."""
    if url is None:
        return {}
    connect_args = {**primary.get("connect_args", {}),
                    "connect_timeout": _positive_int(env, "REPORTS_CONNECT_TIMEOUT", 3)}
    return {"hide_parameters": primary.get("hide_parameters", False), "connect_args": connect_args}


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip() or str(default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise ConfigError(f"{name} 应为不小于 0 的秒数，而不是 {text!r}")
    return value


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default)).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} 应为正整数，而不是 {text!r}")
    return int(text)


def _roles(text: str) -> frozenset[str]:
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = names - {role.value for role in Role}
    if unknown:
        raise ConfigError(f"TWO_FACTOR_REQUIRED_ROLES 中有未知角色：{', '.join(sorted(unknown))}")
    return frozenset(names)


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
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(env, database_url(env, instance_path), environment),
        # The report pages' reads on a streaming standby (core.db.report_reads), used while it lags the primary by
        # at most REPORTS_MAX_LAG_SECONDS; None: the primary, as for everything else.
        "REPORTS_DATABASE_URL": reports_database_url(env),
        "REPORTS_MAX_LAG_SECONDS": _seconds(env, "REPORTS_MAX_LAG_SECONDS", 30),
        "REPORTS_ENGINE_OPTIONS": reports_engine_options(
            env, reports_database_url(env), engine_options(env, database_url(env, instance_path), environment)),
        "QR_SIGNING_KEYS": keys,
        "QR_ACTIVE_KEY_ID": env.get("QR_ACTIVE_KEY_ID", next(iter(keys))),
        # A citizen is found under any key of this ring; new citizens get the active key (vouchers/citizens.py).
        "IDENTITY_HASH_KEYS": _identity_key_ring(env),
        "IDENTITY_HASH_ACTIVE_KEY_ID": env.get("IDENTITY_HASH_ACTIVE_KEY_ID", "").strip() or None,
        # Columns encrypted at rest (voucher/core/field_crypto.py): the settlement bank account numbers.
        "FIELD_ENCRYPTION_KEYS": parse_field_keys(env.get("FIELD_ENCRYPTION_KEYS", DEV_FIELD_ENCRYPTION_KEYS)),
        "FIELD_ENCRYPTION_ACTIVE_KEY_ID": env.get("FIELD_ENCRYPTION_ACTIVE_KEY_ID", "").strip() or None,
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
        # A temporary password (an administrator's or a manager's reset) signs in only this long after it was
        # set: one never used, written on a note or sent in a message, must not stay a way in.
        "TEMPORARY_PASSWORD_HOURS": _positive_int(env, "TEMPORARY_PASSWORD_HOURS", 72),
        # Roles that must sign in with a second factor (voucher/accounts/two_factor.py): in production
        # those who approve money, pay it or manage accounts; elsewhere nobody, so the demo signs in
        # with a password alone. Anyone may switch it on for themselves.
        "TWO_FACTOR_REQUIRED_ROLES": _roles(env.get(
            "TWO_FACTOR_REQUIRED_ROLES", "bureau_approver,finance,admin" if environment == "production" else "")),
        "TWO_FACTOR_ISSUER": env.get("TWO_FACTOR_ISSUER", "消费券管理系统"),
        # A cashier may undo a mistaken redemption for this long, at the same store.
        "REVERSAL_WINDOW_MINUTES": int(env.get("REVERSAL_WINDOW_MINUTES", "30")),
        # Channel partners' signing secrets are derived from this key; requests older than the
        # window, or with a nonce seen before, are refused.
        "PARTNER_MASTER_KEY": env.get("PARTNER_MASTER_KEY", DEV_PARTNER_MASTER_KEY).encode(),
        "PARTNER_REPLAY_WINDOW_SECONDS": 300,
        # Run the scheduled jobs' clock in this process. Any number of processes may: each schedule
        # slot still runs once (voucher/jobs). Off by default, and in tests.
        "SCHEDULER_ENABLED": env.get("SCHEDULER_ENABLED", "0") == "1",
        # A release of at least this many vouchers, or a lottery of at least this many entries, opens or
        # draws as a background job (voucher/jobs/background.py); smaller ones within the request.
        "BACKGROUND_ROUND_THRESHOLD": _positive_int(env, "BACKGROUND_ROUND_THRESHOLD", 20_000),
        # Vouchers a background opening mints and commits per step (its progress moves by this much).
        "BACKGROUND_MINT_CHUNK": _positive_int(env, "BACKGROUND_MINT_CHUNK", 50_000),
        # Production plumbing (voucher/ops). X-Forwarded-* is trusted from this many proxies in front.
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        "LOG_FORMAT": env.get("LOG_FORMAT", "json" if environment == "production" else "text"),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "ACCESS_LOG": env.get("ACCESS_LOG", "1") == "1",
        "METRICS_ENABLED": env.get("METRICS_ENABLED", "1") == "1",
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        "METRICS_ALLOWED_NETWORKS": parse_networks(env.get("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")),
        "HSTS_MAX_AGE": int(env.get("HSTS_MAX_AGE", "31536000")),
        # The admission gate for first-come releases (voucher/vouchers/admission.py): redis://host:port/db,
        # or empty for none (every claim goes to the database, as on the embedded default).
        "ADMISSION_REDIS_URL": env.get("ADMISSION_REDIS_URL", "").strip() or None,
        "ADMISSION_KEY_PREFIX": env.get("ADMISSION_KEY_PREFIX", "voucher"),
        # The waiting room: claims let through to the database per second and release, in order of
        # arrival (0: no waiting room); the burst is how many may pass at once (default: one second's).
        "ADMISSION_RATE": int(env.get("ADMISSION_RATE", "0")),
        "ADMISSION_BURST": int(env.get("ADMISSION_BURST", "0") or 0) or int(env.get("ADMISSION_RATE", "0")),
        # How long each process remembers a gate it found sold out, answering the late arrivals without
        # Redis (0: ask Redis every time); a place given back meanwhile waits at most this long.
        "ADMISSION_SOLD_OUT_MEMO_SECONDS": _seconds(env, "ADMISSION_SOLD_OUT_MEMO_SECONDS", 1.0),
        **rate_limits_from_env(env),
    }
    if overrides:
        config.update(overrides)
    if config["QR_ACTIVE_KEY_ID"] not in config["QR_SIGNING_KEYS"]:
        raise ConfigError("QR_ACTIVE_KEY_ID 不在 QR_SIGNING_KEYS 中")
    config["AUDIT_MAC_ACTIVE_KEY_ID"] = config["AUDIT_MAC_ACTIVE_KEY_ID"] or next(iter(config["AUDIT_MAC_KEYS"]))
    if config["AUDIT_MAC_ACTIVE_KEY_ID"] not in config["AUDIT_MAC_KEYS"]:
        raise ConfigError("AUDIT_MAC_ACTIVE_KEY_ID 不在 AUDIT_MAC_KEYS 中")
    for ring, active in (("IDENTITY_HASH_KEYS", "IDENTITY_HASH_ACTIVE_KEY_ID"),
                         ("FIELD_ENCRYPTION_KEYS", "FIELD_ENCRYPTION_ACTIVE_KEY_ID")):
        config[active] = config[active] or next(iter(config[ring]))
        if config[active] not in config[ring]:
            raise ConfigError(f"{active} 不在 {ring} 中")
    if config["ENV_NAME"] == "production":
        _refuse_dev_defaults(config, qr_keys_text, "IDENTITY_HASH_KEYS" if "IDENTITY_HASH_KEYS" in env
                             else "IDENTITY_HASH_KEY")
    if config["LOG_FORMAT"] not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT 应为 json 或 text，而不是 {config['LOG_FORMAT']!r}")
    return config


def _refuse_dev_defaults(config: dict, qr_keys_text: str, identity_variable: str) -> None:
    insecure = []
    # A development default, or a secret too short to be one, is refused.
    if config["SECRET_KEY"] == DEV_SECRET_KEY or len(config["SECRET_KEY"]) < 16:
        insecure.append("SECRET_KEY")
    if qr_keys_text == DEV_QR_KEYS or any(
        k.startswith(b"dev-only") or len(k) < 16 for k in config["QR_SIGNING_KEYS"].values()
    ):
        insecure.append("QR_SIGNING_KEYS")
    if any(k == DEV_IDENTITY_HASH_KEY.encode() or k.startswith(b"dev-only") or len(k) < 16
           for k in config["IDENTITY_HASH_KEYS"].values()):
        insecure.append(identity_variable)
    if config["PARTNER_MASTER_KEY"] == DEV_PARTNER_MASTER_KEY.encode() or len(config["PARTNER_MASTER_KEY"]) < 16:
        insecure.append("PARTNER_MASTER_KEY")
    if any(k.startswith(b"dev-only") or len(k) < 16 for k in config["AUDIT_MAC_KEYS"].values()):
        insecure.append("AUDIT_MAC_KEYS")
    # Field keys have their algorithm's exact length (checked when parsed); the development one is marked.
    if any(k.secret.startswith(b"dev-only") for k in config["FIELD_ENCRYPTION_KEYS"].values()):
        insecure.append("FIELD_ENCRYPTION_KEYS")
    if config["OTP_DEV_DISPLAY"]:
        insecure.append("OTP_DEV_DISPLAY")
    if config["METRICS_TOKEN"] and len(config["METRICS_TOKEN"]) < 16:
        insecure.append("METRICS_TOKEN")
    if insecure:
        raise ConfigError(
            f"生产环境不能使用开发默认值或过短的密钥（至少 16 个字符）：{', '.join(insecure)}。请通过环境变量设置。"
        )
