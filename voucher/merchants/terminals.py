"""Store terminals' API tokens: made here, shown once, and only their SHA-256 kept (the API looks a
request's token up by it: api/auth.py)."""
from __future__ import annotations

import hashlib
import secrets

from voucher.core.db import db
from voucher.merchants.models import StoreTerminal


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_terminal_token(store_id: int, label: str, created_by_id: int) -> tuple[StoreTerminal, str]:
    """Create a terminal and return it with its token; the token is shown once and only its hash kept."""
    token = "st_" + secrets.token_urlsafe(32)
    terminal = StoreTerminal(store_id=store_id, label=label, token_hash=hash_token(token), token_prefix=token[:10],
                             created_by_id=created_by_id)
    db.session.add(terminal)
    db.session.flush()  # the caller shows the new terminal's id
    return terminal, token
