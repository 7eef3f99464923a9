"""Request bodies and fields, read the way the OpenAPI description says.

A body is refused before it is parsed when it is larger than MAX_BODY_BYTES (413, by werkzeug as it
reads: the partner signature check reads the body too) or nested deeper than MAX_DEPTH (422): Python's
json module recurses once per level, and 5000 '[' ended in a RecursionError, a 500.

Each field is declared once, as a `Text` or an `Integer`: its `schema()` goes into the description and its
`read()` checks a request against the same bounds, so what the schema allows is what a handler accepts.
Patterns are full matches written with explicit ASCII or Unicode classes (no \\d, \\s, \\w), which read
the same in Python's `re` and in the ECMA-262 regexes of JSON Schema.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from flask import request

from voucher.core.errors import InvalidInput

MAX_BODY_BYTES = 16 * 1024
MAX_DEPTH = 16

_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")

#: the characters Python's str.strip() removes (str.isspace), as one class: a text must hold one other
BLANK = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
#: [\s\S] is every character in both regex dialects, however each reads \s
NOT_BLANK = f"[\\s\\S]*[^{BLANK}][\\s\\S]*"


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text opens more than `limit` arrays or objects inside one another. A scan with a
    counter, never recursion; brackets inside strings are text. Bytes of UTF-8 multi-byte characters are
    all >= 0x80, so they are never taken for brackets or quotes."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # it cannot nest deeper than it has brackets: every ordinary body stops here
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSERS:
            depth -= 1
    return False


def limit_body() -> None:
    """For the API blueprint's before_request: werkzeug answers 413 once a body passes the limit."""
    request.max_content_length = MAX_BODY_BYTES


def json_object() -> dict:
    """The request's JSON object, or InvalidInput (422). Size is limited by limit_body (413)."""
    raw = request.get_data(cache=True)
    if not request.is_json:
        raise InvalidInput("请求体应为 JSON 对象（Content-Type: application/json）")
    if too_deep(raw):
        raise InvalidInput(f"请求体 JSON 嵌套超过 {MAX_DEPTH} 层")
    try:
        body = json.loads(raw)
    except ValueError:  # not JSON, not UTF-8, or an integer of more than 4300 digits
        raise InvalidInput("请求体不是有效的 JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("请求体应为 JSON 对象")
    return body


@dataclass(frozen=True)
class Integer:
    label: str
    minimum: int
    maximum: int
    description: str = ""

    def schema(self) -> dict:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.description:
            schema["description"] = self.description
        return schema

    def read(self, container: dict, key: str) -> int:
        value = container.get(key)
        # JSON Schema counts 150.0 as an integer; Python's json reads it as a float.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is not int or not self.minimum <= value <= self.maximum:  # noqa: E721 - bool is refused
            raise InvalidInput(f"{self.label}（{key}）应为 {self.minimum} 到 {self.maximum} 之间的整数")
        return value


@dataclass(frozen=True)
class Text:
    label: str
    max_length: int
    min_length: int = 1
    #: a full match; None: any text of the right length
    pattern: str | None = None
    #: the Chinese explanation given when the pattern is not matched
    pattern_message: str = ""
    description: str = ""

    def schema(self) -> dict:
        schema: dict[str, Any] = {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}
        if self.pattern is not None:
            schema["pattern"] = f"^(?:{self.pattern})$"
        if self.description:
            schema["description"] = self.description
        return schema

    def check(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not self.min_length <= len(value) <= self.max_length:
            raise InvalidInput(f"请提供{self.label}（{key}），长度 {self.min_length} 到 {self.max_length} 个字符")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise InvalidInput(self.pattern_message or f"{self.label}（{key}）格式不正确")
        return value

    def read(self, container: dict, key: str) -> str:
        return self.check(container.get(key), key)
