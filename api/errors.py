"""One renderer for errors under /api: application/problem+json (RFC 9457).

A database that cannot be reached (connection refused, terminated, timed out, or a
connection the pool found dead) is a 503 `database_unavailable` naming the site, or
`app_database_unavailable` for the app database, with `Retry-After`; the next request
tries again (the pool has dropped the dead connections), so the app recovers by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, json, request
from werkzeug.exceptions import HTTPException

from services.core.errors import EssError, site_unavailable
from services.storage.engines import database_url_of

try:
    import psycopg2

    DRIVER_UNAVAILABLE: tuple[type[BaseException], ...] = (psycopg2.OperationalError, psycopg2.InterfaceError)
except ImportError:  # pragma: no cover
    DRIVER_UNAVAILABLE = ()

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://ess-portal.invalid/problems/"
RETRY_AFTER_S = 5  # what a 503 asks clients to wait before trying again
OUTAGE_LOG_EVERY_S = 10.0  # an outage logs one line per database per this many seconds, not one per request

_outage_lock = threading.Lock()
_outage_log: dict[str, tuple[float, int]] = {}  # database -> (last logged, requests failed since)


def log_outage(database: str, message: str, *args: Any) -> None:
    """Log a database outage at most once per OUTAGE_LOG_EVERY_S per database, with the
    number of requests that failed in between (a 10 s outage under load is thousands)."""
    now = time.monotonic()
    with _outage_lock:
        last, suppressed = _outage_log.get(database, (-OUTAGE_LOG_EVERY_S, 0))
        if now - last < OUTAGE_LOG_EVERY_S:
            _outage_log[database] = (last, suppressed + 1)
            return
        _outage_log[database] = (now, 0)
    log.error(message + (f" (and {suppressed} more failed requests since the last report)" if suppressed else ""),
              *args)


def problem_response(status: int, title: str, detail: str, code: str,
                     invalid_params: list[dict[str, str]] | None = None) -> Response:
    """A problem+json response; `type` names the stable `code`."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail,
        "instance": request.path, "code": code,
    }
    if invalid_params:
        body["invalid_params"] = invalid_params
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 503:
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
    return resp


def is_unavailable(exc: BaseException) -> bool:
    """True for errors meaning "the database cannot be reached" (not a bad query)."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, *DRIVER_UNAVAILABLE)):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


def unavailable_problem(exc: BaseException) -> Response:
    """503 naming the database that failed: the app database, the site of the route, or
    the sites stored at the failing URL."""
    url = database_url_of(exc)
    portal = current_app.extensions.get("ess")
    site = (request.view_args or {}).get("site")
    if url is not None and portal is not None and url == portal.settings.app_db_url:
        log_outage("app", "app database unreachable on %s: %s", request.path, _first_line(exc))
        return problem_response(503, "Service unavailable", "the app database is unreachable",
                                "app_database_unavailable")
    if site is None and url is not None and portal is not None and portal.has_registry():
        ids = [s.id for s in portal.registry.sites if s.database_url == url]
        site = ids[0] if len(ids) == 1 else site
    log_outage(f"site {site}", "database of site %s unreachable on %s: %s", site if site is not None else "?",
               request.path, _first_line(exc))
    detail = site_unavailable(site).detail if site is not None else "a site database is unreachable"
    return problem_response(503, "Service unavailable", detail, "database_unavailable")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _wants_problem() -> bool:
    return request.path.startswith("/api") or request.path in ("/healthz", "/readyz")


def register_error_handlers(app: Flask) -> None:
    """Render EssError and HTTP errors as problem+json on API paths."""

    @app.errorhandler(EssError)
    def _ess_error(exc: EssError) -> Response:
        if exc.status == 503:
            log_outage(exc.code, "%s: %s", exc.code, exc.detail)
        elif exc.status >= 500:
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
        if is_unavailable(exc):
            return unavailable_problem(exc)
        log.exception("unhandled error on %s", request.path)
        return problem_response(500, "Internal error", "an unexpected error occurred; it has been logged",
                                "internal_error")
