"""The OpenAPI 3 description, built from the endpoints as they are declared in code.

The description is a contract, checked by tests/test_api_schemathesis.py: every status an operation can
answer is declared, and every input the schema allows is one the handler accepts (bounds, lengths and
patterns here are the ones the handlers check)."""
from __future__ import annotations

import re
from typing import Any, Callable

from voucher.core.permissions import checks_itself

_ENDPOINTS: list[dict[str, Any]] = []

#: whom each security scheme lets in: recorded on the view as its access (voucher/core/permissions.py)
CALLERS = {"storeTerminal": "terminal", "partnerSignature": "partner"}

#: ids are PostgreSQL integers; a larger one in a URL does not match the route (voucher/__init__.py)
MAX_ID = 2**31 - 1

ERROR = {
    "type": "object",
    "required": ["success", "errors"],
    "properties": {
        "success": {"const": False},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "stable machine-readable code"},
                    "message": {"type": "string", "description": "Chinese message for people"},
                },
            },
        },
    },
}


def envelope(data_schema: dict) -> dict:
    return {"type": "object", "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": data_schema}}


def documented(
    method: str,
    path: str,
    *,
    summary: str,
    security: str,
    request: dict | None = None,
    responses: dict[int, tuple[str, dict | None]],
    parameters: list[dict] | None = None,
) -> Callable:
    """Record an endpoint's contract next to its handler; /api/v1/openapi.json is assembled from these.

    The plumbing's answers are added here, so that no endpoint forgets them: 401 for a secured one, 413
    and 422 for one that takes a body (voucher/api/views.py: _json_body)."""
    responses = dict(responses)
    if security:
        responses.setdefault(401, ("missing or invalid credentials (unauthenticated)", None))
    if request is not None:
        responses.setdefault(413, ("body larger than the API accepts (payload_too_large)", None))
        responses.setdefault(422, ("body not a JSON object, nested too deep, or a field outside its schema "
                                   "(invalid_input)", None))

    def decorator(view: Callable) -> Callable:
        operation: dict[str, Any] = {
            "operationId": view.__name__,
            "summary": summary,
            "security": [{security: []}] if security else [],
            "responses": {
                str(status): _response(status, description, schema)
                for status, (description, schema) in sorted(responses.items())
            },
        }
        path_parameters = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if path_parameters or parameters:
            operation["parameters"] = path_parameters + (parameters or [])
        if request is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
        _ENDPOINTS.append({"method": method.lower(), "path": path, "operation": operation})
        return checks_itself(CALLERS[security])(view) if security else view

    return decorator


def _response(status: int, description: str, schema: dict | None) -> dict:
    body = ERROR
    if status < 400:
        assert schema is not None  # a success documents what it answers; only errors share ERROR
        body = envelope(schema)
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": body}},
    }
    if status == 429:
        response["headers"] = {"Retry-After": {
            "description": "seconds until the window reopens (when the limiter can tell)", "required": False,
            "schema": {"type": "integer", "minimum": 1}}}
    return response


def openapi() -> dict:
    paths: dict[str, dict] = {}
    for endpoint in _ENDPOINTS:
        paths.setdefault(endpoint["path"], {})[endpoint["method"]] = endpoint["operation"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "消费券与补贴活动管理系统 API",
            "version": "1",
            "description": "Every response is {success, data} or {success: false, errors: [{code, message}]}. "
            "Money is integer fen. Request bodies are JSON objects of at most 16 KiB and 16 levels of nesting; "
            "a method a path does not support is answered 405 with an Allow header.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "storeTerminal": {"type": "http", "scheme": "bearer",
                                  "description": "A store terminal's API token, issued per store"},
                "partnerSignature": {
                    "type": "apiKey", "in": "header", "name": "X-Signature",
                    "description": "hex HMAC-SHA256 with the partner's secret over "
                    "METHOD\\nPATH\\nX-Timestamp\\nX-Nonce\\nSHA-256(body) (hex); with X-Partner-Key, "
                    "X-Timestamp (Unix seconds, within 300 s) and X-Nonce (used once)",
                },
            }
        },
    }
