"""Analytics routes under /api/ess/stats/: thin adapters that parse
the query, call services.analytics.results and render bare arrays ordered by time.
Nothing is computed from raw data or fitted here; the `ess analyze` job stores it all."""

from __future__ import annotations

from datetime import date, datetime, time

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.engine import Engine

from api.caching import note_range
from api.params import get_int
from api.routes import get_portal
from api.spec import Param, route
from services.analytics import results
from services.analytics.exsos import CHARGE, DISCHARGE, REST
from services.analytics.results import ACCURACY_TARGETS, Scope, Window
from services.analytics.socp import PERIODS
from services.core.errors import InvalidQuery
from services.core.registry import Site
from services.telemetry.timerange import TimeRange, local_day, parse_bounds, parse_bucket_width, parse_date

bp = Blueprint("ess_analytics", __name__)
S = "/api/ess/stats"
TAG = "analytics"

P_START_TIME = Param("start-time", "Range start (inclusive), ISO 8601; without offset the site's local time. "
                     "Optional: without it the range is open.")
P_END_TIME = Param("end-time", "Range end (exclusive), ISO 8601. Optional: without it the range is open.")
P_DATE = Param("date", "A whole local day YYYY-MM-DD instead of start-time/end-time.",
               {"type": "string", "format": "date"})
TIME_PARAMS = (P_START_TIME, P_END_TIME, P_DATE)
DATE_PARAMS = (Param("start-date", "First day (inclusive), YYYY-MM-DD.", {"type": "string", "format": "date"}),
               Param("end-date", "Last day (exclusive), YYYY-MM-DD.", {"type": "string", "format": "date"}))
P_RESOLUTION = Param("resolution", "Bucket width for the worst moment per bucket: seconds (10) or 1min, 1hour, "
                     "PT15M...; a multiple of 10 s. Default 10 s.", {"type": "string"})
P_MODE = Param("mode", "1 = bank (its worst rack), 2 = rack.", {"type": "integer", "enum": [1, 2]})
P_PERIOD = Param("period", "Look-back in days: 1, 7 or 30.", {"type": "integer", "enum": list(PERIODS)})
P_STATUS = Param("charge_status", "0 charge, 1 discharge, 2 rest.", {"type": "integer",
                 "enum": [CHARGE, DISCHARGE, REST]})
P_SOC_RANGE = Param("soc_range", "Lower bound of the 10 % SoC band: 0, 10, ..., 90.",
                    {"type": "integer", "enum": list(range(0, 100, 10))})
P_TARGET = Param("target", "Comma list of targets (default: all): " + ", ".join(ACCURACY_TARGETS) + ".")
P_NAME = Param("name", "Curve name, e.g. over_voltage_safety (exact).")
P_CHART_TYPE = Param("chart_type", "Chart type (exact): ExSoS.")
P_SITE_Q = Param("operating_site", "Site whose protection map places the curves (default: the first site).",
                 {"type": "integer"})


# ----- query parsing ---------------------------------------------------------------------

def _engine() -> Engine:
    return get_portal().app_db


def _site(site_id: int) -> Site:
    return get_portal().registry.get_site(site_id)


def _window(site: Site) -> Window:
    """`date`, or optional `start-time`/`end-time` (an open side is unbounded)."""
    bounds = parse_bounds(request.args, site.tz)
    if bounds.end is not None:
        note_range(TimeRange(bounds.start or bounds.end, bounds.end))
    return Window.of(bounds)


def _dates(site: Site) -> tuple[date | None, date | None]:
    args = request.args
    start = parse_date(args["start-date"], "start-date") if "start-date" in args else None
    end = parse_date(args["end-date"], "end-date") if "end-date" in args else None
    if start is not None and end is not None and start >= end:
        raise InvalidQuery("end-date must be later than start-date", code="invalid_parameter",
                           invalid_params=[{"name": "end-date", "reason": "must be later than start-date"}])
    if end is not None:
        last = local_day(end, site.tz).start
        note_range(TimeRange(last, last))
    return start, end


def _choice(name: str, allowed: tuple[int, ...] | list[int], default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value not in allowed:
        valid = ", ".join(str(a) for a in allowed)
        raise InvalidQuery(f"{name}={raw!r}; valid: {valid}", code="invalid_parameter",
                           invalid_params=[{"name": name, "reason": f"must be one of {valid}"}])
    return value


def _targets() -> list[str]:
    raw = request.args.get("target")
    if not raw:
        return list(ACCURACY_TARGETS)
    names = [t.strip().lower().replace("-", "_") for t in raw.split(",") if t.strip()]
    bad = [t for t in names if t not in ACCURACY_TARGETS]
    if bad or not names:
        raise InvalidQuery(f"unknown target(s) {', '.join(bad) or '(none)'}; valid: {', '.join(ACCURACY_TARGETS)}",
                           code="invalid_parameter", invalid_params=[{"name": "target", "reason": f"unknown {b!r}"}
                                                                     for b in bad or ["(empty)"]])
    return names


def _resolution() -> int:
    raw = request.args.get("resolution")
    if raw is None or raw == "":
        return results.SOS_BASE_S
    text = raw.strip()  # bare seconds ("10") get the same 1 s to 31 days check as "10s"
    return parse_bucket_width(text + "s" if text.isascii() and text.isdigit() else text, "resolution")


def _origin(site: Site, window: Window) -> int:
    """Buckets start at local midnight (of the range start, else of 2000-01-01)."""
    if window.start is not None:
        day = datetime.fromtimestamp(window.start, site.tz).date()
    else:
        day = date(2000, 1, 1)
    return int(datetime.combine(day, time(0), tzinfo=site.tz).timestamp())


def _scope(site: int, bank: int | None = None, rack: int | None = None) -> Scope:
    return Scope(_site(site), bank, rack).check()


# ----- SoH and SoL -----------------------------------------------------------------------

SOH = S + "/avg-soh/operating-sites/{site}/banks"


@route(bp, SOH + "/", summary="Daily mean SoH of every bank.", tag=TAG, params=DATE_PARAMS)
def avg_soh_banks(site: int) -> Response:
    scope = _scope(site)
    return jsonify(results.list_soh(_engine(), scope, False, *_dates(scope.site)))


@route(bp, SOH + "/{bank}/", summary="Daily mean SoH of one bank.", tag=TAG, params=DATE_PARAMS)
def avg_soh_bank(site: int, bank: int) -> Response:
    scope = _scope(site, bank)
    return jsonify(results.list_soh(_engine(), scope, False, *_dates(scope.site)))


@route(bp, SOH + "/{bank}/racks/", summary="Daily mean SoH of every rack of a bank.", tag=TAG, params=DATE_PARAMS)
def avg_soh_racks(site: int, bank: int) -> Response:
    scope = _scope(site, bank)
    return jsonify(results.list_soh(_engine(), scope, True, *_dates(scope.site)))


@route(bp, SOH + "/{bank}/racks/{rack}/", summary="Daily mean SoH of one rack.", tag=TAG, params=DATE_PARAMS)
def avg_soh_rack(site: int, bank: int, rack: int) -> Response:
    scope = _scope(site, bank, rack)
    return jsonify(results.list_soh(_engine(), scope, True, *_dates(scope.site)))


SOL = S + "/forecasting-sol/operating-sites/{site}/banks"


@route(bp, SOL + "/", summary="Observed and forecast SoL = 5 (SoH - 80) of every bank, with the interval.",
       tag=TAG, params=DATE_PARAMS)
def sol_banks(site: int) -> Response:
    scope = _scope(site)
    return jsonify(results.list_sol(_engine(), scope, *_dates(scope.site)))


@route(bp, SOL + "/{bank}/", summary="Observed and forecast SoL of one bank (observed flag, interval).", tag=TAG,
       params=DATE_PARAMS)
def sol_bank(site: int, bank: int) -> Response:
    scope = _scope(site, bank)
    return jsonify(results.list_sol(_engine(), scope, *_dates(scope.site)))


@route(bp, SOL + "/{bank}/summary/", summary="How the SoL forecast was made: days fitted on, end-of-life date.",
       tag=TAG)
def sol_summary(site: int, bank: int) -> Response:
    return jsonify(results.get_sol_summary(_engine(), _scope(site, bank)))


# ----- forecasts -------------------------------------------------------------------------

RACKS = "/operating-sites/{site}/banks/{bank}/racks"
FORECAST_ROUTES = {
    "forecasting-max-cell-voltage": "max_cell_voltage",
    "forecasting-min-cell-voltage": "min_cell_voltage",
    "forecasting-max-cell-temperature": "max_cell_temperature",
    "forecasting-min-cell-temperature": "min_cell_temperature",
    "forecasting-rack-sos": "sos",
}


def _forecast_views(name: str, target: str) -> None:
    text = target.replace("_", " ")

    def list_view(site: int, bank: int) -> Response:
        return jsonify(results.list_forecasts(_engine(), _scope(site, bank), target, _window(_site(site))))

    def detail_view(site: int, bank: int, rack: int) -> Response:
        return jsonify(results.list_forecasts(_engine(), _scope(site, bank, rack), target, _window(_site(site))))

    list_view.__name__ = f"{target}_forecasts_racks"
    detail_view.__name__ = f"{target}_forecasts_rack"
    route(bp, f"{S}/{name}{RACKS}/", summary=f"10-minute {text} forecasts of every rack of a bank, every model.",
          tag=TAG, params=TIME_PARAMS)(list_view)
    route(bp, f"{S}/{name}{RACKS}/{{rack}}/", summary=f"10-minute {text} forecasts of one rack, every model "
          "with observed value, intervals and the default model.", tag=TAG, params=TIME_PARAMS)(detail_view)


for _name, _target in FORECAST_ROUTES.items():
    _forecast_views(_name, _target)

MULTI = S + "/multi-step-forecasting-max-cell-voltage" + RACKS


@route(bp, MULTI + "/", summary="1-day max cell voltage forecasts (10-minute steps) of every rack of a bank.",
       tag=TAG, params=TIME_PARAMS)
def multi_step_racks(site: int, bank: int) -> Response:
    return jsonify(results.list_forecasts_1d(_engine(), _scope(site, bank), _window(_site(site))))


@route(bp, MULTI + "/{rack}/", summary="1-day max cell voltage forecasts of one rack.", tag=TAG, params=TIME_PARAMS)
def multi_step_rack(site: int, bank: int, rack: int) -> Response:
    return jsonify(results.list_forecasts_1d(_engine(), _scope(site, bank, rack), _window(_site(site))))


ACC = S + "/forecast-accuracy" + RACKS


@route(bp, ACC + "/", summary="Backtest MAE, RMSE and MASE of every model, target and rack of a bank.", tag=TAG,
       params=(P_TARGET, *TIME_PARAMS))
def accuracy_racks(site: int, bank: int) -> Response:
    return jsonify(results.forecast_accuracy(_engine(), _scope(site, bank), _targets(), _window(_site(site))))


@route(bp, ACC + "/{rack}/", summary="Backtest MAE, RMSE and MASE against persistence of every model of one rack; "
       "`default` marks the best.", tag=TAG, params=(P_TARGET, *TIME_PARAMS))
def accuracy_rack(site: int, bank: int, rack: int) -> Response:
    return jsonify(results.forecast_accuracy(_engine(), _scope(site, bank, rack), _targets(), _window(_site(site))))


# ----- SoS, ExSoS, SoCP ------------------------------------------------------------------

SOS = S + "/sos" + RACKS


def _sos(scope: Scope) -> Response:
    window = _window(scope.site)
    return jsonify(results.list_sos(_engine(), scope, window, _resolution(), _origin(scope.site, window)))


@route(bp, SOS + "/", summary="SoS (worst moment per bucket) with its seven factors, every rack of a bank.",
       tag=TAG, params=(*TIME_PARAMS, P_RESOLUTION))
def sos_racks(site: int, bank: int) -> Response:
    return _sos(_scope(site, bank))


@route(bp, SOS + "/{rack}/", summary="SoS of one rack: the seven factors, score and level of the worst moment "
       "of each bucket.", tag=TAG, params=(*TIME_PARAMS, P_RESOLUTION))
def sos_rack(site: int, bank: int, rack: int) -> Response:
    return _sos(_scope(site, bank, rack))


@route(bp, S + "/sos/operating-sites/{site}/parameters/", summary="The SoS parameters of a site (from its "
       "protection map) and the formula version.", tag=TAG)
def sos_parameters(site: int) -> Response:
    return jsonify(results.get_sos_parameters(_site(site)).as_dict())


EX = S + "/ex-sos/operating-sites/{site}/banks"


def _exsos(scope: Scope, default_mode: int, allowed: tuple[int, ...]) -> Response:
    mode = _choice("mode", allowed, default_mode)
    assert mode is not None
    return jsonify(results.list_exsos(_engine(), scope, mode, _window(scope.site)))


@route(bp, EX + "/", summary="ExSoS of every bank (mode 1: the worst rack), or of every rack with mode=2.",
       tag=TAG, params=(P_MODE, *TIME_PARAMS))
def exsos_banks(site: int) -> Response:
    return _exsos(_scope(site), 1, (1, 2))


@route(bp, EX + "/{bank}/", summary="ExSoS of one bank (mode 1), or of its racks with mode=2.", tag=TAG,
       params=(P_MODE, *TIME_PARAMS))
def exsos_bank(site: int, bank: int) -> Response:
    return _exsos(_scope(site, bank), 1, (1, 2))


@route(bp, EX + "/{bank}/racks/", summary="ExSoS (mode 2) of every rack of a bank.", tag=TAG,
       params=(P_MODE, *TIME_PARAMS))
def exsos_racks(site: int, bank: int) -> Response:
    return _exsos(_scope(site, bank), 2, (2,))


@route(bp, EX + "/{bank}/racks/{rack}/", summary="ExSoS (mode 2) of one rack: integrated safety, class degrees, "
       "state and inputs.", tag=TAG, params=(P_MODE, *TIME_PARAMS))
def exsos_rack(site: int, bank: int, rack: int) -> Response:
    return _exsos(_scope(site, bank, rack), 2, (2,))


SOCP = S + "/socp" + RACKS
SOCP_PARAMS = (P_PERIOD, P_STATUS, P_SOC_RANGE, *TIME_PARAMS)


def _socp(scope: Scope) -> Response:
    return jsonify(results.list_socp(_engine(), scope, _window(scope.site), _choice("period", PERIODS),
                                     _choice("charge_status", (CHARGE, DISCHARGE, REST)),
                                     _choice("soc_range", tuple(range(0, 100, 10)))))


@route(bp, SOCP + "/", summary="SoCP of every rack of a bank: extreme-cell counts per state and SoC band.",
       tag=TAG, params=SOCP_PARAMS)
def socp_racks(site: int, bank: int) -> Response:
    return _socp(_scope(site, bank))


@route(bp, SOCP + "/{rack}/", summary="SoCP of one rack, with normalised entropy and flagged cells.", tag=TAG,
       params=SOCP_PARAMS)
def socp_rack(site: int, bank: int, rack: int) -> Response:
    return _socp(_scope(site, bank, rack))


@route(bp, S + "/static-chart-data/", summary="The ExSoS membership curves (original's paged shape).", tag=TAG,
       params=(P_NAME, P_CHART_TYPE, P_SITE_Q))
def static_chart_data() -> Response:
    portal = get_portal()
    site_id = get_int(request.args, "operating_site", 0, 1)
    site = portal.registry.get_site(site_id) if site_id else portal.registry.sites[0]
    params = results.get_sos_parameters(site)
    return jsonify(results.static_chart_data(params, request.args.get("name"), request.args.get("chart_type")))

