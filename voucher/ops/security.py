"""Security headers on every response.

The content security policy allows scripts, styles and images from this site only: the templates
have no inline <script>, no `style=` attribute and no inline event handler (tests/ops check), the
charts are server-side SVG drawn with presentation attributes (`fill`, `font-size`), which the policy
does not govern, and the citizen's QR code is a PNG served by its own URL, not a data: URL. So no
'unsafe-inline' is needed for scripts or for styles.
"""
from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
])


def static_headers() -> tuple[tuple[str, str], ...]:
    """The headers every response carries, built once."""
    return (
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        # Page addresses (voucher ids, report filters) stay on this site.
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    )


def hsts_header(max_age: int) -> tuple[str, str] | None:
    """Sent only on HTTPS requests (as seen after ProxyFix): over plain HTTP the header is meaningless,
    and a development server on http://localhost must not be pinned to HTTPS."""
    return ("Strict-Transport-Security", f"max-age={max_age}") if max_age > 0 else None
