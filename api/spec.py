"""Route declarations shared by Flask and the OpenAPI document, so the two cannot drift.

`route(bp, "/api/ess/operating-sites/{site}/", ...)` registers the view on the blueprint
(with and without the trailing slash, ids as integers) and records its parameters and
responses; `make_openapi()` renders every recorded route as OpenAPI 3.1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint

from services.tokens import SCOPES

PATH_INT_PARAMS = {"site", "bank", "rack"}


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    location: str = "query"


@dataclass(frozen=True)
class RouteSpec:
    path: str
    summary: str
    tag: str
    params: tuple[Param, ...]
    responses: dict[str, str]
    content_type: str = "application/json"
    operation_id: str = ""
    scope: str | None = None  # the token scope required (None: open even with ESS_AUTH=on)


ROUTES: list[RouteSpec] = []

# --- reusable parameters -------------------------------------------------------------
P_DATE = Param("date", "A whole local day YYYY-MM-DD (instead of start-time/end-time).", {"type": "string",
               "format": "date"})
P_START = Param("start-time", "Range start, ISO 8601; without offset the site's local time. Inclusive.",
                {"type": "string"})
P_END = Param("end-time", "Range end, ISO 8601; without offset the site's local time. Exclusive.", {"type": "string"})
P_FIELDS = Param("fields", "Comma list of fields to return (case-insensitive).")
P_OMIT = Param("omit", "Comma list of fields to leave out.")
P_PAGE = Param("page", "1-based page number (compatibility; prefer the `next` link).", {"type": "integer",
               "minimum": 1})
P_PAGE_SIZE = Param("page_size", "Rows per page, 1 to 10000 (default 1000).", {"type": "integer", "minimum": 1,
                    "maximum": 10000})
P_CURSOR = Param("cursor", "Opaque keyset token from a `next` link.")
P_NO_PAGE = Param("no_page", "Present: the whole range as a bare array (at most 100,000 rows).")
RANGE_PARAMS = (P_DATE, P_START, P_END)
LIST_PARAMS = (*RANGE_PARAMS, P_FIELDS, P_OMIT, P_PAGE, P_PAGE_SIZE, P_CURSOR, P_NO_PAGE)

# The scope a route needs unless it says otherwise (README: Access control): `deidentified` reads
# de-identified rows, statistics, analytics and events; `raw` adds raw operating data and raw
# downloads; `admin` adds the admin routes. None = open (health, the API description).
TAG_SCOPES: dict[str, str | None] = {
    "health": None, "description": None, "discovery": "deidentified", "statistics": "deidentified",
    "de-identified data": "deidentified", "protection map": "deidentified", "analytics": "deidentified",
    "operating data": "raw", "downloads": "raw", "admin": "admin",
}
DEFAULT = object()  # `scope=` not given: the tag's scope
AUTH_ERRORS = {"401": "Missing or invalid Bearer token (problem+json; ESS_AUTH=on)",
               "403": "The token's scope does not allow this route (problem+json)"}

ERRORS = {"400": "Invalid parameter (problem+json)", "404": "Unknown site, bank, rack or page (problem+json)",
          "413": "Request body over 1 MiB (problem+json; api/limits.py)",
          "414": "Query string over 16 KiB or path over 2 KiB (problem+json; api/limits.py)",
          "503": "Site database unreachable (problem+json)"}


def flask_rule(path: str) -> str:
    """`/a/{site}/` → `/a/<int:site>/`."""
    return re.sub(r"\{(\w+)\}", lambda m: f"<int:{m.group(1)}>" if m.group(1) in PATH_INT_PARAMS
                  else f"<{m.group(1)}>", path)


def route(bp: Blueprint, path: str, *, summary: str, tag: str, params: tuple[Param, ...] = (),
          responses: dict[str, str] | None = None, content_type: str = "application/json",
          scope: Any = DEFAULT) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a GET view for `path` (answering with and without the trailing slash)
    and record it for the OpenAPI document. `scope` is the token scope it requires when
    ESS_AUTH=on (default: the tag's, TAG_SCOPES; None = open)."""
    if scope is DEFAULT:
        if tag not in TAG_SCOPES:
            raise ValueError(f"route {path}: tag {tag!r} has no default scope; pass scope=")
        scope = TAG_SCOPES[tag]
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"route {path}: unknown scope {scope!r}")

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        endpoint = f"{view.__name__}_{len(ROUTES)}"
        bp.add_url_rule(flask_rule(path), endpoint=endpoint, view_func=view, methods=["GET"], strict_slashes=False)
        path_params = tuple(Param(n, f"{n} id" if n in PATH_INT_PARAMS else n,
                                  {"type": "integer"} if n in PATH_INT_PARAMS else {"type": "string"},
                                  required=True, location="path") for n in re.findall(r"\{(\w+)\}", path))
        ROUTES.append(RouteSpec(path, summary, tag, path_params + params,
                                {"200": "OK", **ERRORS, **(AUTH_ERRORS if scope else {}), **(responses or {})},
                                content_type, endpoint, scope))
        return view

    return decorator


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance", "code"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "code": {"type": "string"},
        "invalid_params": {"type": "array", "items": {"type": "object", "required": ["name", "reason"],
                           "properties": {"name": {"type": "string"}, "reason": {"type": "string"}}}},
    },
}


def make_openapi(auth: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every recorded route. `auth` False (ESS_AUTH=off)
    leaves the security requirements out, since nothing is enforced; `x-required-scope`
    still says what a route would need."""
    paths: dict[str, Any] = {}
    for r in ROUTES:
        responses: dict[str, Any] = {}
        if r.path.startswith("/api/") and r.content_type == "application/json":  # api/caching.py validators
            responses["304"] = {"description": "Not modified: the response still matches `If-None-Match` (ETag)"}
        for status, text in r.responses.items():
            if status.startswith(("4", "5")):
                responses[status] = {"description": text, "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}}
            else:
                responses[status] = {"description": text, "content": {r.content_type: {"schema": {}}}}
        paths.setdefault(r.path, {})["get"] = {
            "summary": r.summary, "tags": [r.tag], "operationId": r.operation_id,
            "parameters": [{"name": p.name, "in": p.location, "required": p.required,
                            "description": p.description, "schema": p.schema} for p in r.params],
            "responses": responses,
            # open routes say so explicitly; protected ones name the scheme and the scope
            "security": [{"bearer": []}] if r.scope and auth else [],
            "x-required-scope": r.scope,
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ESS operating-data portal API", "version": "1.0.0",
                 "description": "Operating data, statistics, downloads and analytics of ESS sites. "
                                "Errors are application/problem+json (RFC 9457). With ESS_AUTH=on every "
                                "operation with a `security` requirement needs `Authorization: Bearer <token>` "
                                "whose scope includes `x-required-scope` (deidentified < raw < admin); "
                                "tokens are never accepted in a query string."},
        "paths": paths,
        "components": {"schemas": {"Problem": PROBLEM_SCHEMA},
                       "securitySchemes": {"bearer": {
                           "type": "http", "scheme": "bearer", "bearerFormat": "ess_ token",
                           "description": "An access token made with `flask --app app ess token create`; "
                                          "scopes deidentified < raw < admin."}}},
    }
