"""Operating-data routes: rows of a bank, racks, one rack, PCS and ETC; `latest`;
the site snapshot. Thin adapters over services.telemetry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request

from api.caching import note_range
from api.paging import envelope, get_paging
from api.routes import get_portal
from api.spec import LIST_PARAMS, P_FIELDS, P_OMIT, route
from services.telemetry.rows import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Selector,
    fetch_all,
    fetch_latest,
    fetch_page,
    make_selector,
    resolve_columns,
)
from services.telemetry.snapshot import get_snapshot
from services.telemetry.timerange import parse_range

bp = Blueprint("ess_telemetry", __name__)
BASE = "/api/ess/operating-sites/{site}"


ColumnResolver = Callable[[Selector, str | None, str | None], list[sa.Column[Any]]]
RowRenamer = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def list_rows(sel: Selector, resolve: ColumnResolver = resolve_columns, rename: RowRenamer | None = None) -> Response:
    """The paged (or `no_page`) rows of a selection, as the original's envelope.

    `resolve` maps `fields`/`omit` to columns and `rename` re-keys the rendered rows: the
    de-identified routes publish other column names through the same query and paging."""
    args = request.args
    columns = resolve(sel, args.get("fields"), args.get("omit"))
    tr = parse_range(args, sel.site.tz)
    assert tr is not None
    note_range(tr)
    if "no_page" in args:
        rows = fetch_all(sel, tr, columns)
        return jsonify(rename(rows) if rename else rows)
    page = fetch_page(sel, tr, columns, **get_paging(args, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
    return envelope(page, rename(page.rows) if rename else None)


def latest_row(sel: Selector) -> Response:
    columns = resolve_columns(sel, request.args.get("fields"), request.args.get("omit"))
    return jsonify(fetch_latest(sel, columns))


def _selector(site: int, component: str, bank: int | None = None, rack: int | None = None) -> Selector:
    return make_selector(get_portal().store(site), component, bank, rack)


@route(bp, BASE + "/banks/{bank}/", summary="Rows of one bank.", tag="operating data", params=LIST_PARAMS)
def bank_rows(site: int, bank: int) -> Response:
    return list_rows(_selector(site, "bank", bank))


@route(bp, BASE + "/banks/{bank}/racks/", summary="Rows of every rack of a bank.", tag="operating data",
       params=LIST_PARAMS)
def bank_rack_rows(site: int, bank: int) -> Response:
    return list_rows(_selector(site, "rack", bank))


@route(bp, BASE + "/banks/{bank}/racks/{rack}/", summary="Rows of one rack.", tag="operating data",
       params=LIST_PARAMS)
def rack_rows(site: int, bank: int, rack: int) -> Response:
    return list_rows(_selector(site, "rack", bank, rack))


@route(bp, BASE + "/pcs/", summary="PCS rows.", tag="operating data", params=LIST_PARAMS)
def pcs_rows(site: int) -> Response:
    return list_rows(_selector(site, "pcs"))


@route(bp, BASE + "/etc/", summary="Auxiliary sensor rows.", tag="operating data", params=LIST_PARAMS)
def etc_rows(site: int) -> Response:
    return list_rows(_selector(site, "etc"))


LATEST = (P_FIELDS, P_OMIT)


@route(bp, BASE + "/banks/{bank}/latest/", summary="Newest bank row.", tag="operating data", params=LATEST)
def bank_latest(site: int, bank: int) -> Response:
    return latest_row(_selector(site, "bank", bank))


@route(bp, BASE + "/banks/{bank}/racks/{rack}/latest/", summary="Newest row of a rack.", tag="operating data",
       params=LATEST)
def rack_latest(site: int, bank: int, rack: int) -> Response:
    return latest_row(_selector(site, "rack", bank, rack))


@route(bp, BASE + "/pcs/latest/", summary="Newest PCS row.", tag="operating data", params=LATEST)
def pcs_latest(site: int) -> Response:
    return latest_row(_selector(site, "pcs"))


@route(bp, BASE + "/etc/latest/", summary="Newest auxiliary row.", tag="operating data", params=LATEST)
def etc_latest(site: int) -> Response:
    return latest_row(_selector(site, "etc"))


@route(bp, BASE + "/snapshot/", summary="Newest bank, rack, PCS and ETC rows of a site in one response.",
       tag="operating data")
def snapshot(site: int) -> Any:
    return jsonify(get_snapshot(get_portal().store(site)))
