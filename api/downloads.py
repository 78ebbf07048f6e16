"""CSV downloads: streamed, constant memory, validated before the first byte."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from api.params import get_int
from api.routes import get_portal
from api.spec import P_DATE, P_END, P_FIELDS, P_START, Param, route
from services.core.errors import InvalidQuery, NotFound
from services.core.registry import COMPONENTS
from services.telemetry.export import csv_filename, open_csv_stream
from services.telemetry.rows import Selector, make_selector, resolve_columns
from services.telemetry.timerange import parse_range

bp = Blueprint("ess_downloads", __name__)

DOWNLOAD_PARAMS = (P_DATE, P_START, P_END, P_FIELDS, Param("bank-id", "Only this bank.", {"type": "integer"}),
                   Param("rack-id", "Only this rack (with bank-id).", {"type": "integer"}))


@route(bp, "/api/ess/download/operating-sites/{site}/{data_type}/", summary="Streamed CSV of a component.",
       tag="downloads", params=DOWNLOAD_PARAMS, content_type="text/csv")
def download(site: int, data_type: str) -> Response:
    sel = download_selector(site, data_type)
    tr = parse_range(request.args, sel.site.tz)
    assert tr is not None
    columns = resolve_columns(sel, request.args.get("fields"), None)
    return csv_response(open_csv_stream(sel, tr, columns),
                        csv_filename(sel.site, data_type, tr, bank=sel.bank_id, rack=sel.rack_id))


def download_selector(site: int, data_type: str) -> Selector:
    """The selection of a download (raw or de-identified): the component and the optional
    bank-id/rack-id (rack-id alone is enough on a one-bank site)."""
    if data_type not in COMPONENTS:
        raise NotFound(f"unknown data type {data_type!r}; use one of {', '.join(COMPONENTS)}",
                       code="unknown_data_type")
    store = get_portal().store(site)
    bank = get_int(request.args, "bank-id", 0, 1) or None
    rack = get_int(request.args, "rack-id", 0, 1) or None
    if rack is not None and bank is None:
        if len(store.site.banks) > 1:
            raise InvalidQuery("rack-id needs bank-id on a site with several banks", code="missing_parameter",
                               invalid_params=[{"name": "bank-id", "reason": "required with rack-id"}])
        bank = store.site.bank_ids[0]
    return make_selector(store, data_type, bank, rack)


def csv_response(body: Any, filename: str) -> Response:
    """A streamed CSV attachment that proxies must not buffer."""
    return Response(body, mimetype="text/csv", content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "X-Accel-Buffering": "no"})
