"""The OpenAPI 3 description, built from the endpoints as they are declared in code."""
from __future__ import annotations

import re
from typing import Any, Callable

_ENDPOINTS: list[dict[str, Any]] = []

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
    """Record an endpoint's contract next to its handler; /api/v1/openapi.json is assembled from these."""

    def decorator(view: Callable) -> Callable:
        operation: dict[str, Any] = {
            "operationId": view.__name__,
            "summary": summary,
            "security": [{security: []}] if security else [],
            "responses": {
                str(status): {
                    "description": description,
                    "content": {"application/json": {"schema": envelope(schema) if status < 400 else ERROR}},
                }
                for status, (description, schema) in responses.items()
            },
        }
        path_parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if path_parameters or parameters:
            operation["parameters"] = path_parameters + (parameters or [])
        if request is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
        _ENDPOINTS.append({"method": method.lower(), "path": path, "operation": operation})
        return view

    return decorator


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
            "Money is integer fen.",
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
