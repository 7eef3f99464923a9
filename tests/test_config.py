"""Configuration from the environment: production refuses the development defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

from voucher import config
from voucher.config import ConfigError, load, parse_key_ring

ENV_VARS = (
    "VOUCHER_ENV", "SECRET_KEY", "QR_SIGNING_KEYS", "QR_ACTIVE_KEY_ID", "IDENTITY_HASH_KEY",
    "OTP_DEV_DISPLAY", "DATABASE_URL", "PARTNER_MASTER_KEY", "REVERSAL_WINDOW_MINUTES", "AUDIT_MAC_KEYS",
    "AUDIT_MAC_ACTIVE_KEY_ID", "IDENTITY_HASH_KEYS", "IDENTITY_HASH_ACTIVE_KEY_ID", "FIELD_ENCRYPTION_KEYS",
    "FIELD_ENCRYPTION_ACTIVE_KEY_ID", "DATABASE_POOLER", "REPORTS_DATABASE_URL", "REPORTS_MAX_LAG_SECONDS",
    "REPORTS_CONNECT_TIMEOUT", "ADMISSION_SOLD_OUT_MEMO_SECONDS",
)
#: production-shaped field keys for the tests: 32 and 16 bytes, base64
PROD_AES_KEY = "q7B0m3kQ2a9Vx1yZr8TfLw5nHc4uJd6sPe0gKi2oMb8="
PROD_SM4_KEY = "Zm9vYmFyYmF6cXV4MTIzNA=="


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _production(monkeypatch):
    monkeypatch.setenv("VOUCHER_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "prod-secret-4f1c0e9a7b")
    monkeypatch.setenv("QR_SIGNING_KEYS", "p1:prod-qr-key-aaaa,p2:prod-qr-key-bbbb")
    monkeypatch.setenv("IDENTITY_HASH_KEY", "prod-identity-key-77")
    monkeypatch.setenv("PARTNER_MASTER_KEY", "prod-partner-master-key-99")
    monkeypatch.setenv("AUDIT_MAC_KEYS", "a1:prod-audit-mac-key-31")
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", f"f1:aes-256-gcm:{PROD_AES_KEY}")


def test_production_without_secrets_names_each_missing_one(clean_env, tmp_path):
    clean_env.setenv("VOUCHER_ENV", "production")
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    message = str(info.value)
    for name in ("SECRET_KEY", "QR_SIGNING_KEYS", "IDENTITY_HASH_KEY", "PARTNER_MASTER_KEY", "AUDIT_MAC_KEYS",
                 "FIELD_ENCRYPTION_KEYS"):
        assert name in message
    assert "OTP_DEV_DISPLAY" not in message  # off by default in production


@pytest.mark.parametrize("missing", ["SECRET_KEY", "QR_SIGNING_KEYS", "IDENTITY_HASH_KEY", "PARTNER_MASTER_KEY",
                                     "AUDIT_MAC_KEYS", "FIELD_ENCRYPTION_KEYS"])
def test_production_with_one_secret_missing_names_only_that_one(clean_env, tmp_path, missing):
    _production(clean_env)
    clean_env.delenv(missing)
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    message = str(info.value)
    assert missing in message
    for other in {"SECRET_KEY", "QR_SIGNING_KEYS", "IDENTITY_HASH_KEY", "PARTNER_MASTER_KEY", "AUDIT_MAC_KEYS",
                  "FIELD_ENCRYPTION_KEYS"} - {missing}:
        assert other not in message


def test_production_with_secrets_loads(clean_env, tmp_path):
    _production(clean_env)
    loaded = load(str(tmp_path))
    assert loaded["ENV_NAME"] == "production"
    assert loaded["SECRET_KEY"] == "prod-secret-4f1c0e9a7b"
    assert loaded["QR_SIGNING_KEYS"] == {"p1": b"prod-qr-key-aaaa", "p2": b"prod-qr-key-bbbb"}
    assert loaded["QR_ACTIVE_KEY_ID"] == "p1"  # the first key by default
    assert loaded["IDENTITY_HASH_KEYS"] == {"default": b"prod-identity-key-77"}  # the single key as a ring
    assert loaded["IDENTITY_HASH_ACTIVE_KEY_ID"] == "default"
    assert loaded["FIELD_ENCRYPTION_ACTIVE_KEY_ID"] == "f1"
    assert loaded["OTP_DEV_DISPLAY"] is False
    assert loaded["SESSION_COOKIE_SECURE"] is True
    assert loaded["SESSION_COOKIE_HTTPONLY"] is True


def test_production_active_key_id(clean_env, tmp_path):
    _production(clean_env)
    clean_env.setenv("QR_ACTIVE_KEY_ID", "p2")
    assert load(str(tmp_path))["QR_ACTIVE_KEY_ID"] == "p2"
    clean_env.setenv("QR_ACTIVE_KEY_ID", "p3")
    with pytest.raises(ConfigError):
        load(str(tmp_path))


def test_production_refuses_otp_display(clean_env, tmp_path):
    _production(clean_env)
    clean_env.setenv("OTP_DEV_DISPLAY", "1")
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    assert "OTP_DEV_DISPLAY" in str(info.value)


def test_production_refuses_a_dev_qr_key_hidden_in_a_ring(clean_env, tmp_path):
    _production(clean_env)
    clean_env.setenv("QR_SIGNING_KEYS", "p1:prod-qr-key-aaaa,dev1:dev-only-insecure-qr-signing-key")
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    assert "QR_SIGNING_KEYS" in str(info.value)


def test_development_uses_the_marked_defaults(clean_env, tmp_path):
    loaded = load(str(tmp_path))
    assert loaded["ENV_NAME"] == "development"
    assert loaded["SECRET_KEY"] == config.DEV_SECRET_KEY
    assert loaded["QR_SIGNING_KEYS"] == parse_key_ring(config.DEV_QR_KEYS)
    assert loaded["OTP_DEV_DISPLAY"] is True
    assert loaded["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////var/lib/voucher.db", "sqlite:////var/lib/voucher.db"),
    ],
)
def test_database_url_spellings(clean_env, tmp_path, given, expected):
    clean_env.setenv("VOUCHER_ENV", "development")
    clean_env.setenv("DATABASE_URL", given)
    assert load(str(tmp_path))["SQLALCHEMY_DATABASE_URI"] == expected


def test_postgresql_without_an_environment_is_production(clean_env, tmp_path):
    """A forgotten VOUCHER_ENV on a real database fails closed: the development secrets are refused."""
    clean_env.setenv("DATABASE_URL", "postgresql://u@h/db")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load(str(tmp_path))
    _production(clean_env)
    clean_env.delenv("VOUCHER_ENV")
    assert load(str(tmp_path))["ENV_NAME"] == "production"


def test_default_database_is_sqlite_in_the_instance_path(clean_env, tmp_path):
    url = load(str(tmp_path))["SQLALCHEMY_DATABASE_URI"]
    assert url.startswith("sqlite:///")
    path = Path(url[len("sqlite:///") :])
    assert path.parent == tmp_path
    assert path.suffix == ".db"


def test_overrides_win(clean_env, tmp_path):
    loaded = load(str(tmp_path), {"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True})
    assert loaded["SQLALCHEMY_DATABASE_URI"] == "sqlite://"
    assert loaded["TESTING"] is True


def test_parse_key_ring_good_input():
    assert parse_key_ring("k1:secret1") == {"k1": b"secret1"}
    ring = parse_key_ring(" k1 : s1 , k2:s2 ,")
    assert ring == {"k1": b"s1", "k2": b"s2"}
    assert list(ring) == ["k1", "k2"]  # order kept: the first is the default active key
    assert parse_key_ring("k1:a:b") == {"k1": b"a:b"}  # a secret may contain a colon


@pytest.mark.parametrize("text", ["", ",", " , ", "k1", "k1:", ":secret", " :secret", "k1: ", "k.1:secret", "k1:s1,bad"])
def test_parse_key_ring_refuses_bad_input(text):
    with pytest.raises(ConfigError):
        parse_key_ring(text)


def test_bad_key_ring_in_environment_is_refused(clean_env, tmp_path):
    clean_env.setenv("QR_SIGNING_KEYS", "no-separator")
    with pytest.raises(ConfigError):
        load(str(tmp_path))


def test_production_refuses_empty_or_short_secrets(clean_env, tmp_path):
    clean_env.setenv("VOUCHER_ENV", "production")
    clean_env.setenv("SECRET_KEY", "")
    clean_env.setenv("QR_SIGNING_KEYS", "p1:short")
    clean_env.setenv("IDENTITY_HASH_KEY", "prod-identity-key-77")
    with pytest.raises(ConfigError) as error:
        load(str(tmp_path))
    assert "SECRET_KEY" in str(error.value) and "QR_SIGNING_KEYS" in str(error.value)
    assert "IDENTITY_HASH_KEY" not in str(error.value)


def test_environment_name_is_case_insensitive_and_must_be_known(clean_env, tmp_path):
    clean_env.setenv("VOUCHER_ENV", "Production")
    with pytest.raises(ConfigError):
        load(str(tmp_path))  # production rules apply: dev defaults refused
    clean_env.setenv("VOUCHER_ENV", "prod")
    with pytest.raises(ConfigError, match="VOUCHER_ENV"):
        load(str(tmp_path))


# The 商用密码 option: an algorithm per key id, the identity hash as a ring, field encryption keys.

def test_parse_key_ring_names_an_algorithm_per_key_id():
    from voucher.core.keyed_mac import HMAC_SHA256, HMAC_SM3, MacKey

    ring = parse_key_ring("k1:secret1,k2:hmac-sm3:secret2,k3:HMAC-SHA256:secret3")
    assert [ring[kid].algorithm for kid in ("k1", "k2", "k3")] == [HMAC_SHA256, HMAC_SM3, HMAC_SHA256]
    assert ring["k2"] == MacKey(b"secret2", HMAC_SM3)
    assert ring["k2"] != b"secret2"  # a plain key means HMAC-SHA256
    assert parse_key_ring("k1:hmac-sm3:a:b")["k1"] == MacKey(b"a:b", HMAC_SM3)
    assert parse_key_ring("k1:hmacsecret:b") == {"k1": b"hmacsecret:b"}  # not an algorithm: part of the secret
    assert "secret2" not in repr(ring)  # a config dump does not show the secrets


@pytest.mark.parametrize("text", ["k1:hmac-md5:secret", "k1:hmac-sm4:secret", "k1:hmac-sm3:", "k1:hmac-sm3: "])
def test_parse_key_ring_refuses_an_unknown_algorithm_or_a_missing_secret(text):
    with pytest.raises(ConfigError) as info:
        parse_key_ring(text)
    assert "QR_SIGNING_KEYS" in str(info.value)


def test_unknown_algorithm_message_is_chinese_and_lists_the_known_ones():
    with pytest.raises(ConfigError, match="不受支持.*hmac-sha256、hmac-sm3"):
        parse_key_ring("a1:hmac-md5:prod-audit-mac-key-31", "AUDIT_MAC_KEYS")


def test_identity_hash_key_ring_from_the_environment(clean_env, tmp_path):
    _production(clean_env)
    clean_env.delenv("IDENTITY_HASH_KEY")
    clean_env.setenv("IDENTITY_HASH_KEYS", "i1:prod-identity-key-77,i2:hmac-sm3:prod-identity-key-88")
    clean_env.setenv("IDENTITY_HASH_ACTIVE_KEY_ID", "i2")
    loaded = load(str(tmp_path))
    assert loaded["IDENTITY_HASH_ACTIVE_KEY_ID"] == "i2"
    assert loaded["IDENTITY_HASH_KEYS"]["i2"].algorithm == "hmac-sm3"
    clean_env.setenv("IDENTITY_HASH_ACTIVE_KEY_ID", "i3")
    with pytest.raises(ConfigError, match="IDENTITY_HASH_ACTIVE_KEY_ID"):
        load(str(tmp_path))


def test_identity_hash_key_and_ring_together_are_refused(clean_env, tmp_path):
    clean_env.setenv("IDENTITY_HASH_KEY", "prod-identity-key-77")
    clean_env.setenv("IDENTITY_HASH_KEYS", "i1:prod-identity-key-77")
    with pytest.raises(ConfigError, match="只能设置其一"):
        load(str(tmp_path))


@pytest.mark.parametrize("ring", ["i1:prod-identity-key-77,i2:short", "i1:prod-identity-key-77,i2:hmac-sm3:short",
                                  f"i1:prod-identity-key-77,dev:{config.DEV_IDENTITY_HASH_KEY}"])
def test_production_refuses_a_dev_or_short_identity_key_in_the_ring(clean_env, tmp_path, ring):
    _production(clean_env)
    clean_env.delenv("IDENTITY_HASH_KEY")
    clean_env.setenv("IDENTITY_HASH_KEYS", ring)
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    assert "IDENTITY_HASH_KEYS" in str(info.value)


def test_parse_field_keys():
    ring = config.parse_field_keys(f"f1:aes-256-gcm:{PROD_AES_KEY}, f2:SM4-GCM:{PROD_SM4_KEY}")
    assert [(kid, key.algorithm, len(key.secret)) for kid, key in ring.items()] == [
        ("f1", "aes-256-gcm", 32), ("f2", "sm4-gcm", 16)]
    assert PROD_SM4_KEY not in repr(ring) and "foobar" not in repr(ring)


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "不能为空"),
    (f"f1:{PROD_AES_KEY}", "格式"),
    (f"f.1:aes-256-gcm:{PROD_AES_KEY}", "格式"),
    (f"f1:aes-128-gcm:{PROD_AES_KEY}", "不受支持"),
    (f"f1:aes-256-gcm:{PROD_SM4_KEY}", "应为 32 字节"),
    (f"f1:sm4-gcm:{PROD_AES_KEY}", "应为 16 字节"),
    ("f1:aes-256-gcm:not base64!", "base64"),
])
def test_parse_field_keys_refuses_bad_input(text, complaint):
    with pytest.raises(ConfigError, match=complaint):
        config.parse_field_keys(text)


def test_production_refuses_the_development_field_key(clean_env, tmp_path):
    _production(clean_env)
    clean_env.setenv("FIELD_ENCRYPTION_KEYS", f"f1:aes-256-gcm:{PROD_AES_KEY},{config.DEV_FIELD_ENCRYPTION_KEYS}")
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path))
    assert "FIELD_ENCRYPTION_KEYS" in str(info.value)
    clean_env.setenv("FIELD_ENCRYPTION_KEYS", f"f1:aes-256-gcm:{PROD_AES_KEY},f2:sm4-gcm:{PROD_SM4_KEY}")
    clean_env.setenv("FIELD_ENCRYPTION_ACTIVE_KEY_ID", "f2")
    assert load(str(tmp_path))["FIELD_ENCRYPTION_ACTIVE_KEY_ID"] == "f2"
    clean_env.setenv("FIELD_ENCRYPTION_ACTIVE_KEY_ID", "f3")
    with pytest.raises(ConfigError, match="FIELD_ENCRYPTION_ACTIVE_KEY_ID"):
        load(str(tmp_path))


# -- DATABASE_POOLER: PgBouncer in transaction mode ----------------------------------------------------------


def test_the_default_engine_prepares_statements_as_before(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", "postgresql://voucher@db:5432/voucher")
    clean_env.setenv("VOUCHER_ENV", "testing")
    options = load(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options == {"pool_pre_ping": False, "hide_parameters": False}  # no connect_args: psycopg's default


def test_pgbouncer_switches_server_side_prepared_statements_off(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", "postgresql://voucher@pgbouncer:6432/voucher")
    clean_env.setenv("VOUCHER_ENV", "testing")
    clean_env.setenv("DATABASE_POOLER", "PgBouncer ")
    options = load(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"] == {"prepare_threshold": None}
    assert options["pool_pre_ping"] is False


@pytest.mark.parametrize("value", ["", "none"])
def test_no_pooler_named_keeps_the_default(clean_env, tmp_path, value):
    clean_env.setenv("DATABASE_URL", "postgresql://voucher@db:5432/voucher")
    clean_env.setenv("VOUCHER_ENV", "testing")
    clean_env.setenv("DATABASE_POOLER", value)
    assert "connect_args" not in load(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]


def test_an_unknown_pooler_or_one_without_postgresql_is_refused(clean_env, tmp_path):
    clean_env.setenv("DATABASE_POOLER", "pgpool")
    with pytest.raises(ConfigError, match="DATABASE_POOLER"):
        load(str(tmp_path))
    clean_env.setenv("DATABASE_POOLER", "pgbouncer")  # on the embedded SQLite default
    with pytest.raises(ConfigError, match="PostgreSQL"):
        load(str(tmp_path))


# -- REPORTS_DATABASE_URL: the report pages' reads on a streaming standby ------------------------------------------


def test_no_reports_database_by_default(clean_env, tmp_path):
    loaded = load(str(tmp_path))
    assert loaded["REPORTS_DATABASE_URL"] is None and loaded["REPORTS_ENGINE_OPTIONS"] == {}
    assert loaded["REPORTS_MAX_LAG_SECONDS"] == 30


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_reports_database_is_none(clean_env, tmp_path, blank):
    clean_env.setenv("REPORTS_DATABASE_URL", blank)
    assert load(str(tmp_path))["REPORTS_DATABASE_URL"] is None


@pytest.mark.parametrize("given", ["postgres://reader@replica:5432/voucher", "postgresql://reader@replica:5432/voucher",
                                   " postgresql+psycopg://reader@replica:5432/voucher "])
def test_reports_database_url_spellings(clean_env, tmp_path, given):
    clean_env.setenv("REPORTS_DATABASE_URL", given)
    clean_env.setenv("REPORTS_MAX_LAG_SECONDS", "2.5")
    loaded = load(str(tmp_path))
    assert loaded["REPORTS_DATABASE_URL"] == "postgresql+psycopg://reader@replica:5432/voucher"
    assert loaded["REPORTS_MAX_LAG_SECONDS"] == 2.5
    assert loaded["REPORTS_ENGINE_OPTIONS"] == {"hide_parameters": False, "connect_args": {"connect_timeout": 3}}


def test_the_reports_engine_follows_the_pooler_and_production(clean_env, tmp_path):
    _production(clean_env)
    clean_env.setenv("DATABASE_URL", "postgresql://voucher@pgbouncer:6432/voucher")
    clean_env.setenv("DATABASE_POOLER", "pgbouncer")
    clean_env.setenv("REPORTS_DATABASE_URL", "postgresql://reader@replica-bouncer:6432/voucher")
    clean_env.setenv("REPORTS_CONNECT_TIMEOUT", "1")
    options = load(str(tmp_path))["REPORTS_ENGINE_OPTIONS"]
    assert options == {"hide_parameters": True, "connect_args": {"prepare_threshold": None, "connect_timeout": 1}}


@pytest.mark.parametrize(("name", "value", "complaint"), [
    ("REPORTS_DATABASE_URL", "sqlite:///reports.db", "PostgreSQL"),
    ("REPORTS_DATABASE_URL", "mysql://reader@replica/voucher", "PostgreSQL"),
    ("REPORTS_MAX_LAG_SECONDS", "-1", "REPORTS_MAX_LAG_SECONDS"),
    ("REPORTS_MAX_LAG_SECONDS", "soon", "REPORTS_MAX_LAG_SECONDS"),
    ("REPORTS_MAX_LAG_SECONDS", "nan", "REPORTS_MAX_LAG_SECONDS"),
    ("REPORTS_MAX_LAG_SECONDS", "inf", "REPORTS_MAX_LAG_SECONDS"),
])
def test_a_bad_reports_setting_is_refused(clean_env, tmp_path, name, value, complaint):
    clean_env.setenv("REPORTS_DATABASE_URL", "postgresql://reader@replica:5432/voucher")
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=complaint):
        load(str(tmp_path))


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_bad_sold_out_memo_is_refused_at_start(clean_env, tmp_path, value):
    clean_env.setenv("ADMISSION_SOLD_OUT_MEMO_SECONDS", value)
    with pytest.raises(ConfigError, match="ADMISSION_SOLD_OUT_MEMO_SECONDS"):
        load(str(tmp_path))


def test_the_sold_out_memo_defaults_to_a_second_and_zero_turns_it_off(clean_env, tmp_path):
    assert load(str(tmp_path))["ADMISSION_SOLD_OUT_MEMO_SECONDS"] == 1.0
    clean_env.setenv("ADMISSION_SOLD_OUT_MEMO_SECONDS", "0")
    assert load(str(tmp_path))["ADMISSION_SOLD_OUT_MEMO_SECONDS"] == 0


def test_a_zero_lag_limit_is_allowed(clean_env, tmp_path):
    clean_env.setenv("REPORTS_MAX_LAG_SECONDS", "0")
    assert load(str(tmp_path))["REPORTS_MAX_LAG_SECONDS"] == 0
