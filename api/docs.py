"""The OpenAPI document and the interactive docs page (Swagger UI served locally)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, url_for

from api.spec import make_openapi, route

bp = Blueprint("ess_docs", __name__, static_folder="static", static_url_path="/api/static")

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ESS portal API</title>
<link rel="stylesheet" href="{css}"></head>
<body><div id="swagger-ui"></div>
<script src="{js}"></script>
<script>window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", deepLinking: true}});</script>
</body></html>"""


@route(bp, "/api/openapi.json", summary="This API's OpenAPI 3.1 document.", tag="description")
def openapi() -> Response:
    return jsonify(make_openapi(auth=current_app.extensions["ess"].settings.auth))


@route(bp, "/api/docs/", summary="Interactive API documentation (HTML).", tag="description",
       content_type="text/html")
def docs() -> Response:
    html = DOCS_HTML.format(css=url_for("ess_docs.static", filename="swagger/swagger-ui.css"),
                            js=url_for("ess_docs.static", filename="swagger/swagger-ui-bundle.js"),
                            spec="/api/openapi.json")
    return Response(html, mimetype="text/html")
