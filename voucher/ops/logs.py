"""Structured logs: one JSON object per line on stderr, for the app and for gunicorn alike.

Each line carries the time (UTC), level, logger, message and, inside a request, its request id. Log
lines never carry personal data: the access line names the route's rule (`/c/vouchers/<int:voucher_id>`),
never the path or the query string, and every other message is passed through `redact()`, which masks
anything shaped like a phone number, an identity number, a terminal token or a signed QR token, in case
an exception message quotes one.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

#: the current request's id; set by voucher.ops.hooks for the length of a request
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

ACCESS_LOGGER = "voucher.access"

_SECRETS = re.compile(
    r"(?<![0-9A-Za-z])(?:"
    r"1[3-9]\d{9}"  # mainland mobile number
    r"|\d{17}[\dXx]"  # resident identity number
    r")(?![0-9A-Za-z])"
    r"|LYGV1\.[\w.-]+"  # signed QR token (tokens.PREFIX)
    r"|st_[\w-]{16,}"  # store terminal token
    r"|(?i:bearer\s+)\S+"
    r"|(?i:(?:password|passwd|secret|token|phone|identity|id_number)=)[^&\s]+"
)


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., "request_id": ..., **fields}` per line.

    Structured fields travel in `extra={"fields": {...}}`; they are written as given (the caller
    chooses them, so they carry no personal data) and are not redacted. The message is."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage() if record.name == ACCESS_LOGGER else redact(record.getMessage()),
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a developer's terminal: the same redaction, on one readable line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        rid = request_id.get()
        return f"{line} request_id={rid}" if rid else line


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(log_format: str = "json", level: str = "INFO", stream=None) -> None:
    """One handler on the root logger. Called by create_app() (again per app: the last call wins) and
    from gunicorn.conf.py. Alembic's own logging setup (migrations/env.py) disables the loggers that
    exist when it runs; ours are switched back on here."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_voucher", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._voucher = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter_for(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("voucher", ACCESS_LOGGER, "flask_limiter", "flask-limiter"):
        logging.getLogger(name).disabled = False
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # /readyz reads the schema's revision on every probe; alembic would say "Context impl ..." each time.
    # (`flask db upgrade` still shows its steps: migrations/env.py resets alembic's loggers.)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    # A failed limiter storage is worth a warning, not each rejected request at INFO
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)


def gunicorn_logconfig(log_format: str = "json", level: str = "warning") -> dict:
    """gunicorn's own lines (worker starts, timeouts) in the same JSON shape: `logconfig_dict`."""
    formatter = "voucher.ops.logs.JsonFormatter" if log_format == "json" else "voucher.ops.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"voucher": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "voucher", "stream": "ext://sys.stderr"}},
        # The app's own handler goes on the root logger when the app is created (configure_logging).
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            # The app writes its own access line (with the route, not the raw path): gunicorn's is off.
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }
