"""De-identified operating data: the raw routes' query, paging and CSV streaming with
sensitive columns published under HMAC ids (services.telemetry.deid)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.downloads import DOWNLOAD_PARAMS, csv_response, download_selector
from api.routes import get_portal
from api.spec import LIST_PARAMS, Param, route
from api.telemetry import list_rows
from services.telemetry.deid import DeidNaming, make_naming
from services.telemetry.export import csv_filename, open_csv_stream
from services.telemetry.rows import Selector, make_selector
from services.telemetry.timerange import parse_range

bp = Blueprint("ess_deid", __name__)
BASE = "/api/ess/di/operating-sites/{site}"
DI_NOTE = " Sensitive columns are named <prefix>_<HMAC id>; `fields`/`omit` take those names."
DI_LIST_PARAMS = tuple(Param(p.name, p.description + (DI_NOTE if p.name in ("fields", "omit") else ""), p.schema)
                       for p in LIST_PARAMS)
DI_DOWNLOAD_PARAMS = tuple(Param(p.name, p.description + (DI_NOTE if p.name == "fields" else ""), p.schema)
                           for p in DOWNLOAD_PARAMS)


def _naming(sel: Selector) -> DeidNaming:
    return make_naming(sel, get_portal().secret("deid"))


def _rows(site: int, component: str, bank: int | None = None, rack: int | None = None) -> Response:
    sel = make_selector(get_portal().store(site), component, bank, rack)
    naming = _naming(sel)
    return list_rows(sel, resolve=naming.resolve, rename=naming.rename_rows)


@route(bp, BASE + "/banks/{bank}/", summary="De-identified rows of one bank.", tag="de-identified data",
       params=DI_LIST_PARAMS)
def di_bank_rows(site: int, bank: int) -> Response:
    return _rows(site, "bank", bank)


@route(bp, BASE + "/banks/{bank}/racks/", summary="De-identified rows of every rack of a bank.",
       tag="de-identified data", params=DI_LIST_PARAMS)
def di_bank_rack_rows(site: int, bank: int) -> Response:
    return _rows(site, "rack", bank)


@route(bp, BASE + "/banks/{bank}/racks/{rack}/", summary="De-identified rows of one rack.",
       tag="de-identified data", params=DI_LIST_PARAMS)
def di_rack_rows(site: int, bank: int, rack: int) -> Response:
    return _rows(site, "rack", bank, rack)


@route(bp, BASE + "/pcs/", summary="De-identified PCS rows.", tag="de-identified data", params=DI_LIST_PARAMS)
def di_pcs_rows(site: int) -> Response:
    return _rows(site, "pcs")


@route(bp, BASE + "/etc/", summary="De-identified auxiliary rows.", tag="de-identified data", params=DI_LIST_PARAMS)
def di_etc_rows(site: int) -> Response:
    return _rows(site, "etc")


@route(bp, "/api/ess/download/di/operating-sites/{site}/{data_type}/", summary="Streamed de-identified CSV.",
       tag="de-identified data", params=DI_DOWNLOAD_PARAMS, content_type="text/csv")
def di_download(site: int, data_type: str) -> Response:
    sel = download_selector(site, data_type)
    tr = parse_range(request.args, sel.site.tz)
    assert tr is not None
    naming = _naming(sel)
    columns = naming.resolve(sel, request.args.get("fields"), None)
    return csv_response(open_csv_stream(sel, tr, columns, names=naming.names(columns)),
                        csv_filename(sel.site, data_type, tr, prefix="di_", bank=sel.bank_id, rack=sel.rack_id))
