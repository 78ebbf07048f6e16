"""Request limits: bodies, URLs and query strings have caps, and going over one is a 413 or
414 problem (under /api) before any view or database work; asset paths a library refuses
are a 404, not a 500.

The same caps hold behind gunicorn (whose own request-line limit is 4094 bytes by default,
see gunicorn.conf.py) and in the development server and tests, which have none.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge, RequestURITooLarge

MAX_BODY_BYTES = 1024 * 1024  # the API takes no bodies; the UI's callbacks and the login form are small
MAX_QUERY_BYTES = 16 * 1024  # `fields` naming every column of the widest table is under 8 KiB
MAX_PATH_BYTES = 2048


def install_limits(app: Flask) -> None:
    """Cap request bodies (413), paths and query strings (414) for every route."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.before_request
    def _check_sizes() -> None:
        query = request.environ.get("QUERY_STRING", "")
        if len(query) > MAX_QUERY_BYTES:
            raise RequestURITooLarge(f"the query string has {len(query):,} bytes; at most {MAX_QUERY_BYTES:,}")
        if len(request.path) > MAX_PATH_BYTES:
            raise RequestURITooLarge(f"the path has {len(request.path):,} characters; at most {MAX_PATH_BYTES:,}")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise RequestEntityTooLarge(f"the body has {request.content_length:,} bytes; at most {MAX_BODY_BYTES:,}")

    try:
        from dash.exceptions import DependencyException
    except ImportError:  # pragma: no cover - Dash is a requirement
        return

    @app.errorhandler(DependencyException)
    def _unknown_asset(exc: Exception) -> Any:
        # Dash refuses a component-suite path it did not register (`../../app.py`, an
        # unknown package): that is a missing file, rendered like any other 404.
        return app.handle_http_exception(NotFound("no such asset"))
