"""QR images of signed tokens."""
from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.pil import PilImage


def png(token: str, *, box_size: int = 8) -> bytes:
    # PilImage is qrcode's default when Pillow is installed (qrcode[pil]); named, it types save(format=...)
    image = qrcode.make(token, error_correction=ERROR_CORRECT_M, box_size=box_size, border=4, image_factory=PilImage)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
