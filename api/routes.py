"""Health, readiness and discovery routes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from api.errors import problem_response
from api.spec import route
from services.core.access import may_read_raw
from services.core.errors import NotFound
from services.core.health import check_readiness
from services.core.portal import Portal
from services.telemetry.deid import deidentify_field
from services.telemetry.discovery import describe_site, list_sites

bp = Blueprint("ess_api", __name__)


def get_portal() -> Portal:
    portal: Portal = current_app.extensions["ess"]
    return portal


@route(bp, "/healthz", summary="The process is up.", tag="health")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@route(bp, "/readyz", summary="Every configured database is reachable (503 naming the one that is not).",
       tag="health")
def readyz() -> Any:
    readiness = check_readiness(get_portal())
    if not readiness.ready:
        failures = readiness.unreachable
        return problem_response(503, "Not ready", "unreachable: " + ", ".join(failures), "database_unavailable",
                                [{"name": f, "reason": "unreachable"} for f in failures])
    return jsonify({"status": "ready", "databases": readiness.databases})


@route(bp, "/api/ess/operating-sites/", summary="Sites with banks, racks and data freshness.", tag="discovery")
def operating_sites() -> Response:
    return jsonify(list_sites(get_portal()))


@route(bp, "/api/ess/operating-sites/{site}/", summary="One site with its field catalogue.", tag="discovery")
def operating_site(site: int) -> Response:
    portal = get_portal()
    described = describe_site(portal, portal.registry.get_site(site), with_fields=True)
    if not may_read_raw(get_portal()):  # a `deidentified` caller sees sensitive fields by their published names only
        secret = portal.secret("deid")
        for component, entry in described["components"].items():
            entry["fields"] = [deidentify_field(component, f, secret) for f in entry["fields"]]
    return jsonify(described)


@bp.get("/api/<path:rest>")
def unknown_api_path(rest: str) -> Response:
    """Anything else under /api is a 404 problem (not the UI's page-not-found)."""
    raise NotFound(f"no API route at /api/{rest}; see /api/openapi.json", code="no_route")
