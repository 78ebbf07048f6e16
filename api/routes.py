"""API routes: health and discovery (the operating-data routes come with issue #3)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from services.portal import Portal
from services.sites import describe_site, list_sites

bp = Blueprint("ess_api", __name__)


def get_portal() -> Portal:
    portal: Portal = current_app.extensions["ess"]
    return portal


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """Every configured database reachable, or 503 naming which is not."""
    portal = get_portal()
    failures: list[dict[str, Any]] = []
    targets = [("app", portal.app_db)] + [(f"site{s.id}", portal.store(s.id).engine) for s in portal.registry.sites]
    for name, engine in targets:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            failures.append({"database": name, "reason": type(exc).__name__})
    if failures:
        body = {"type": "https://ess-portal.invalid/problems/database_unavailable", "title": "Not ready",
                "status": 503, "detail": "unreachable: " + ", ".join(f["database"] for f in failures),
                "instance": "/readyz", "code": "database_unavailable", "databases": failures}
        return current_app.response_class(current_app.json.dumps(body), status=503,
                                          mimetype="application/problem+json")
    return jsonify({"status": "ready", "databases": [n for n, _ in targets]})


@bp.get("/api/ess/operating-sites/", strict_slashes=False)
def operating_sites() -> Response:
    return jsonify(list_sites(get_portal()))


@bp.get("/api/ess/operating-sites/<int:site>/", strict_slashes=False)
def operating_site(site: int) -> Response:
    portal = get_portal()
    return jsonify(describe_site(portal, portal.registry.get_site(site), with_fields=True))
