"""Statistics routes: the original's five avg-* routes (bare arrays) and the general
`.../stats/?fields=&agg=&time-bucket-width=` form."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.caching import note_range
from api.routes import get_portal
from api.spec import P_END, P_START, Param, route
from services.core.errors import InvalidQuery
from services.telemetry.rows import Selector, make_selector, resolve_columns
from services.telemetry.stats import StatsQuery, bucket_stats, parse_aggs
from services.telemetry.timerange import parse_bucket_width, parse_range

bp = Blueprint("ess_stats_routes", __name__)
BASE = "/api/ess/operating-sites/{site}"

P_WIDTH = Param("time-bucket-width", "Bucket width: 1hour, 1 hour, 10min, 1days or ISO 8601 (PT1H); "
                "1 second to 31 days; buckets start at local midnight.", required=True)
AVG_PARAMS = (P_WIDTH, Param(P_START.name, P_START.description, required=True),
              Param(P_END.name, P_END.description, required=True))
GENERAL_PARAMS = (P_WIDTH, P_START, P_END, Param("date", "A whole local day instead of start/end."),
                  Param("fields", "Comma list of numeric fields.", required=True),
                  Param("agg", "Comma list of avg, min, max, count, sum, first, last (default avg)."))


def _width() -> int:
    if "time-bucket-width" not in request.args:
        raise InvalidQuery("time-bucket-width is required (e.g. 1hour)", code="missing_parameter",
                           invalid_params=[{"name": "time-bucket-width", "reason": "required"}])
    return parse_bucket_width(request.args["time-bucket-width"])


def _stats(sel: Selector, fields: str, aggs: str, allow_date: bool) -> list[dict[str, object]]:
    width = _width()
    tr = parse_range(request.args, sel.site.tz, date=allow_date)
    assert tr is not None
    note_range(tr)
    columns = tuple(resolve_columns(sel, fields))
    return bucket_stats(StatsQuery(sel, tr, width, columns, parse_aggs(aggs)))


def _avg(sel: Selector, field: str, key: str) -> Response:
    rows = _stats(sel, field, "avg", allow_date=False)
    return jsonify([{"time": r["time"], key: r[f"avg_{field}"]} for r in rows])


def _sel(site: int, component: str, bank: int | None = None, rack: int | None = None) -> Selector:
    return make_selector(get_portal().store(site), component, bank, rack)


@route(bp, BASE + "/banks/{bank}/stats/avg-bank-soc/", summary="Bucketed mean bank SoC.", tag="statistics",
       params=AVG_PARAMS)
def avg_bank_soc(site: int, bank: int) -> Response:
    return _avg(_sel(site, "bank", bank), "bank_soc", "avg_bank_soc")


@route(bp, BASE + "/banks/{bank}/stats/avg-bank-soh/", summary="Bucketed mean bank SoH.", tag="statistics",
       params=AVG_PARAMS)
def avg_bank_soh(site: int, bank: int) -> Response:
    return _avg(_sel(site, "bank", bank), "bank_soh", "avg_bank_soh")


@route(bp, BASE + "/banks/{bank}/stats/avg-bank-power/", summary="Bucketed mean bank power (kW).",
       tag="statistics", params=AVG_PARAMS)
def avg_bank_power(site: int, bank: int) -> Response:
    return _avg(_sel(site, "bank", bank), "bank_power", "avg_bank_power")


@route(bp, BASE + "/banks/{bank}/racks/{rack}/stats/avg-rack-soc/", summary="Bucketed mean rack SoC.",
       tag="statistics", params=AVG_PARAMS)
def avg_rack_soc(site: int, bank: int, rack: int) -> Response:
    return _avg(_sel(site, "rack", bank, rack), "rack_soc", "avg_rack_soc")


@route(bp, BASE + "/banks/{bank}/racks/{rack}/stats/avg-rack-soh/", summary="Bucketed mean rack SoH.",
       tag="statistics", params=AVG_PARAMS)
def avg_rack_soh(site: int, bank: int, rack: int) -> Response:
    return _avg(_sel(site, "rack", bank, rack), "rack_soh", "avg_rack_soh")


def _general(sel: Selector) -> Response:
    fields = request.args.get("fields")
    if not fields:
        raise InvalidQuery("fields is required (comma list of numeric fields)", code="missing_parameter",
                           invalid_params=[{"name": "fields", "reason": "required"}])
    return jsonify(_stats(sel, fields, request.args.get("agg", "avg"), allow_date=True))


@route(bp, BASE + "/banks/{bank}/stats/", summary="Bucketed aggregates of bank fields.", tag="statistics",
       params=GENERAL_PARAMS)
def bank_stats(site: int, bank: int) -> Response:
    return _general(_sel(site, "bank", bank))


@route(bp, BASE + "/banks/{bank}/racks/stats/", summary="Bucketed aggregates over every rack of a bank.",
       tag="statistics", params=GENERAL_PARAMS)
def bank_racks_stats(site: int, bank: int) -> Response:
    return _general(_sel(site, "rack", bank))


@route(bp, BASE + "/banks/{bank}/racks/{rack}/stats/", summary="Bucketed aggregates of rack fields.",
       tag="statistics", params=GENERAL_PARAMS)
def rack_stats(site: int, bank: int, rack: int) -> Response:
    return _general(_sel(site, "rack", bank, rack))


@route(bp, BASE + "/pcs/stats/", summary="Bucketed aggregates of PCS fields.", tag="statistics",
       params=GENERAL_PARAMS)
def pcs_stats(site: int) -> Response:
    return _general(_sel(site, "pcs"))


@route(bp, BASE + "/etc/stats/", summary="Bucketed aggregates of auxiliary fields.", tag="statistics",
       params=GENERAL_PARAMS)
def etc_stats(site: int) -> Response:
    return _general(_sel(site, "etc"))
