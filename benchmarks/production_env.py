"""What every benchmark on PostgreSQL sets up the same way: the environment of a production server with
fresh secrets (nothing here is a real key), and the schema and the policy's measures."""
from __future__ import annotations

import base64
import secrets


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url, "VOUCHER_ENV": "production",
        "SECRET_KEY": secrets.token_hex(24), "IDENTITY_HASH_KEY": secrets.token_hex(24),
        "QR_SIGNING_KEYS": f"b1:{secrets.token_hex(24)}", "PARTNER_MASTER_KEY": secrets.token_hex(24),
        "AUDIT_MAC_KEYS": f"a1:{secrets.token_hex(24)}",
        "FIELD_ENCRYPTION_KEYS": f"f1:aes-256-gcm:{base64.b64encode(secrets.token_bytes(32)).decode()}",
        **extra,
    }


def migrate_with_measures() -> None:
    """In an app context: the schema from the migrations, and the 20 measures, committed."""
    from flask_migrate import upgrade

    from voucher.campaigns.measures_seed import load_measures
    from voucher.cli import SEED_DIR
    from voucher.core.db import db

    upgrade()
    load_measures(SEED_DIR / "measures.toml")
    db.session.commit()
