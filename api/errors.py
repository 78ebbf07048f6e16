"""One renderer for errors under /api: application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from services.errors import EssError

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://ess-portal.invalid/problems/"


def problem_response(status: int, title: str, detail: str, code: str,
                     invalid_params: list[dict[str, str]] | None = None) -> Response:
    """A problem+json response; `type` names the stable `code`."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail,
        "instance": request.path, "code": code,
    }
    if invalid_params:
        body["invalid_params"] = invalid_params
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def _wants_problem() -> bool:
    return request.path.startswith("/api") or request.path in ("/healthz", "/readyz")


def register_error_handlers(app: Flask) -> None:
    """Render EssError and HTTP errors as problem+json on API paths."""

    @app.errorhandler(EssError)
    def _ess_error(exc: EssError) -> Response:
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.detail)
        return problem_response(exc.status, exc.title, exc.detail, exc.code, exc.invalid_params)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not _wants_problem():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return problem_response(exc.code or 500, exc.name or "Error", exc.description or "", code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s", request.path)
        return problem_response(500, "Internal error", "an unexpected error occurred; it has been logged",
                                "internal_error")
