"""Batched opening of a first-come release: citizens are split into `batches` groups by the last hex
digit of their identity hash (a keyed hash, so nobody chooses their group), and group k may claim from
opens_at + k x batch_minutes. A flash crowd arrives as several smaller crowds, and nobody can tell in
advance which group a phone number falls in. One batch (the default) is today's opening for everyone."""
from __future__ import annotations

from datetime import datetime, timedelta

MAX_BATCHES = 10


def batch_of(identity_hash: str, batches: int) -> int:
    """0 .. batches-1, from the hash's last hex digit (0-15), spread as evenly as 16 allows."""
    if batches <= 1:
        return 0
    try:
        digit = int(identity_hash[-1], 16)
    except (ValueError, IndexError):
        digit = 0
    return digit * batches // 16


def opens_for(opens_at: datetime, identity_hash: str, batches: int, batch_minutes: int) -> datetime:
    return opens_at + timedelta(minutes=batch_of(identity_hash, batches) * batch_minutes)
