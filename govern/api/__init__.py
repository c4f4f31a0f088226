"""The public JSON API at /api/v1: token authentication, problem details, cursors, the OpenAPI description."""
