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

ERRORS = {"400": "Invalid parameter (problem+json)", "404": "Unknown site, bank, rack or page (problem+json)",
          "503": "Site database unreachable (problem+json)"}


def flask_rule(path: str) -> str:
    """`/a/{site}/` → `/a/<int:site>/`."""
    return re.sub(r"\{(\w+)\}", lambda m: f"<int:{m.group(1)}>" if m.group(1) in PATH_INT_PARAMS
                  else f"<{m.group(1)}>", path)


def route(bp: Blueprint, path: str, *, summary: str, tag: str, params: tuple[Param, ...] = (),
          responses: dict[str, str] | None = None, content_type: str = "application/json"
          ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a GET view for `path` (answering with and without the trailing slash)
    and record it for the OpenAPI document."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        endpoint = f"{view.__name__}_{len(ROUTES)}"
        bp.add_url_rule(flask_rule(path), endpoint=endpoint, view_func=view, methods=["GET"], strict_slashes=False)
        path_params = tuple(Param(n, f"{n} id" if n in PATH_INT_PARAMS else n,
                                  {"type": "integer"} if n in PATH_INT_PARAMS else {"type": "string"},
                                  required=True, location="path") for n in re.findall(r"\{(\w+)\}", path))
        ROUTES.append(RouteSpec(path, summary, tag, path_params + params,
                                {"200": "OK", **ERRORS, **(responses or {})}, content_type, endpoint))
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


def make_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every recorded route."""
    paths: dict[str, Any] = {}
    for r in ROUTES:
        responses: dict[str, Any] = {}
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
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ESS operating-data portal API", "version": "1.0.0",
                 "description": "Operating data, statistics, downloads and analytics of ESS sites. "
                                "Errors are application/problem+json (RFC 9457)."},
        "paths": paths,
        "components": {"schemas": {"Problem": PROBLEM_SCHEMA}},
    }
