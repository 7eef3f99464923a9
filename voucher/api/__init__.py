"""The JSON API under /api/v1: one response shape, stable error codes, an OpenAPI description."""
