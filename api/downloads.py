"""CSV downloads: streamed, constant memory, validated before the first byte."""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.params import get_int
from api.routes import get_portal
from api.spec import P_DATE, P_END, P_FIELDS, P_START, Param, route
from services.errors import InvalidQuery, NotFound
from services.export import csv_filename, open_csv_stream
from services.registry import COMPONENTS
from services.telemetry import make_selector, resolve_columns
from services.timeparse import resolve_range

bp = Blueprint("ess_downloads", __name__)

DOWNLOAD_PARAMS = (P_DATE, P_START, P_END, P_FIELDS, Param("bank-id", "Only this bank.", {"type": "integer"}),
                   Param("rack-id", "Only this rack (with bank-id).", {"type": "integer"}))


@route(bp, "/api/ess/download/operating-sites/{site}/{data_type}/", summary="Streamed CSV of a component.",
       tag="downloads", params=DOWNLOAD_PARAMS, content_type="text/csv")
def download(site: int, data_type: str) -> Response:
    if data_type not in COMPONENTS:
        raise NotFound(f"unknown data type {data_type!r}; use one of {', '.join(COMPONENTS)}",
                       code="unknown_data_type")
    args = request.args
    store = get_portal().store(site)
    bank = get_int(args, "bank-id", 0, 1) or None
    rack = get_int(args, "rack-id", 0, 1) or None
    if rack is not None and bank is None:
        if len(store.site.banks) > 1:
            raise InvalidQuery("rack-id needs bank-id on a site with several banks", code="missing_parameter",
                               invalid_params=[{"name": "bank-id", "reason": "required with rack-id"}])
        bank = store.site.bank_ids[0]
    sel = make_selector(store, data_type, bank, rack)
    tr = resolve_range(args, sel.site.tz)
    assert tr is not None
    columns = resolve_columns(sel, args.get("fields"), None)
    body = open_csv_stream(sel, tr, columns)
    filename = csv_filename(sel.site, data_type, tr)
    return Response(body, mimetype="text/csv", content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "X-Accel-Buffering": "no"})
