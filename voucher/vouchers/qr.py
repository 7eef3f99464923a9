"""QR images of signed tokens."""
from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M


def png(token: str, *, box_size: int = 8) -> bytes:
    image = qrcode.make(token, error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
