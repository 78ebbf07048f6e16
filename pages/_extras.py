"""The pages' one door to the protection-map events (services/protection.py, issue 4)
and the stored analytics (services/analytics/results.py, issue 5), which other modules
compute. Each function returns the results, or None when that service is not installed
or has not run for the site yet: the pages then show a "not computed yet" alert, never an
empty chart. Only the reads the pages need; the shapes are the API's."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from datetime import date
from types import ModuleType
from typing import Any

from components.sites import SafetySummary
from components.urlstate import ViewState, get_time_range
from services.portal import Portal
from services.registry import Site
from services.series import choose_width
from services.timeparse import TimeRange, local_midnight_epoch

MAX_CHART_POINTS = 1500
MAX_COUNT_BARS = 120
SOCP_LOOKBACK_S = 31 * 86400


def _module(name: str) -> ModuleType | None:
    """The service module if it is installed (ImportError: not yet)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@dataclass(frozen=True)
class _Ctx:
    site: Site
    tr: TimeRange | None
    start: int | None
    end: int | None


def _ctx(portal: Portal, state: ViewState) -> _Ctx:
    site = portal.registry.get_site(state.site or 0)
    tr = get_time_range(state, site)
    return _Ctx(site, tr, None if tr is None else int(tr.start.timestamp()), None if tr is None else int(
        tr.end.timestamp()))


# ----- analytics (issue 5) -----------------------------------------------------------------

def _analytics(portal: Portal, site_id: int, task: str) -> ModuleType | None:
    """services.analytics.results when installed and `task` has run for the site."""
    results, store = _module("services.analytics.results"), _module("services.analytics.store")
    if results is None or store is None or store.get_state(portal.app_db, site_id, task) is None:
        return None
    return results


def get_lowest_sos(portal: Portal, site_id: int) -> SafetySummary | None:
    """The lowest SoS over the site's racks in the newest 10 minutes analysed."""
    results = _analytics(portal, site_id, "sos")
    if results is None:
        return None
    store = importlib.import_module("services.analytics.store")
    watermark, _ = store.get_state(portal.app_db, site_id, "sos")
    site = portal.registry.get_site(site_id)
    start = watermark // 600 * 600 - 600
    rows = results.list_sos(portal.app_db, results.Scope(site), results.Window(start, start + 600), 600, start)
    scored = [r for r in rows if r.get("sos_score") is not None]
    if not scored:
        return None
    worst = min(scored, key=lambda r: r["sos_score"])
    return SafetySummary(worst["sos_score"], worst["level"], worst["bank_id"], worst["rack_id"])


def get_sos(portal: Portal, state: ViewState) -> list[dict[str, Any]] | None:
    """SoS rows (worst moment per bucket, seven factors) of the rack, at most ~1500."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "sos")
    if results is None or c.tr is None:
        return None
    resolution = max(10, math.ceil(choose_width(c.tr.seconds, MAX_CHART_POINTS) / 10) * 10)
    scope = results.Scope(c.site, state.bank, state.rack).check()
    return list(results.list_sos(portal.app_db, scope, results.Window(c.start, c.end), resolution,
                                 local_midnight_epoch(c.tr, c.site.tz)))


def get_rack_sos(portal: Portal, state: ViewState) -> dict[int, float | None] | None:
    """The lowest SoS of each rack of the state's bank in the last 10 minutes analysed
    before the end of the range (one gauge per rack)."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "sos")
    if results is None or c.end is None:
        return None
    store = importlib.import_module("services.analytics.store")
    watermark, _ = store.get_state(portal.app_db, c.site.id, "sos")
    end = min(c.end, watermark) // 600 * 600
    scope = results.Scope(c.site, state.bank).check()
    rows = results.list_sos(portal.app_db, scope, results.Window(end - 600, end), 600, end - 600)
    out: dict[int, float | None] = dict.fromkeys(c.site.get_bank(state.bank or 0).racks)
    for r in rows:
        out[int(r["rack_id"])] = r.get("sos_score")
    return out


def get_exsos(portal: Portal, state: ViewState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """ExSoS rows of the rack (mode 2) and the membership curves of the site's map."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "sos")
    if results is None or c.tr is None:
        return None
    scope = results.Scope(c.site, state.bank, state.rack).check()
    rows = results.list_exsos(portal.app_db, scope, 2, results.Window(c.start, c.end))
    curves = results.static_chart_data(results.get_sos_parameters(c.site), None, "ExSoS")["results"]
    return rows, curves


def get_sol(portal: Portal, state: ViewState) -> tuple[list[dict[str, Any]], date | None, date | None] | None:
    """SoL rows of the bank (observed and forecast), the last observed day, end of life."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "sol")
    if results is None:
        return None
    scope = results.Scope(c.site, state.bank).check()
    rows = results.list_sol(portal.app_db, scope, None, None)
    if not rows:
        return rows, None, None
    summary = results.get_sol_summary(portal.app_db, scope)
    observed = [r["date"] for r in rows if r.get("observed")]
    eol = summary.get("end_of_life_date")
    return (rows, date.fromisoformat(observed[-1]) if observed else None,
            date.fromisoformat(eol) if eol else None)


def get_socp(portal: Portal, state: ViewState) -> tuple[dict[int, dict[int, int]], int, list[int], str | None] | None:
    """SoCP of the newest complete day up to the end of the range (looking back at most
    SOCP_LOOKBACK_S) for the state's period and charge status: counts (band index ->
    cell -> n), cells per rack, flagged cells, the day."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "daily")
    if results is None:
        return None
    period = int(state.get("period", "1") or 1)
    status = int(state.get("status", "0") or 0)
    scope = results.Scope(c.site, state.bank, state.rack).check()
    end = c.end if c.end is not None else None
    window = results.Window(None if end is None else end - SOCP_LOOKBACK_S, end)  # the newest complete day
    rows = results.list_socp(portal.app_db, scope, window, period, status, None)
    if not rows:
        return {}, c.site.cells_per_rack, [], None
    newest = max(r["time"] for r in rows)
    counts: dict[int, dict[int, int]] = {}
    flagged: set[int] = set()
    for r in rows:
        if r["time"] != newest:
            continue
        cells = r["value"] or {}
        counts[int(r["soc_range"]) // 10] = {int(cell): int(v.get("count", 0)) for cell, v in cells.items()}
        flagged.update(int(x) for x in r.get("flagged_cells") or [])
    return counts, c.site.cells_per_rack, sorted(flagged), newest[:10]


def get_forecasts(portal: Portal, state: ViewState, target: str) -> dict[str, Any] | None:
    """10-minute forecasts of one target of the rack issued in the range, each model's
    backtest MAE/RMSE over the same issues, and the best model."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "forecast")
    if results is None or c.tr is None:
        return None
    scope = results.Scope(c.site, state.bank, state.rack).check()
    window = results.Window(c.start, c.end)
    rows = results.list_forecasts(portal.app_db, scope, target, window)
    metrics = results.forecast_accuracy(portal.app_db, scope, [target], window)
    accuracy = {m["model"]: m for m in metrics}
    best = next((m["model"] for m in metrics if m.get("default")), None)
    return {"rows": rows, "accuracy": accuracy, "best": best}


def get_day_ahead(portal: Portal, state: ViewState) -> dict[str, Any] | None:
    """The newest 1-day max-cell-voltage forecast issued in the range."""
    c = _ctx(portal, state)
    results = _analytics(portal, c.site.id, "forecast_1d")
    if results is None or c.tr is None:
        return None
    scope = results.Scope(c.site, state.bank, state.rack).check()
    rows = results.list_forecasts_1d(portal.app_db, scope, results.Window(c.start - 86400 if c.start else None,
                                                                          c.end))
    return {"row": rows[-1] if rows else None}


# ----- protection-map events (issue 4) ----------------------------------------------------

def _protection(portal: Portal, site_id: int, refresh: bool = True) -> ModuleType | None:
    """services.protection when installed and the site has been evaluated; a small
    backlog (live rows) is evaluated first, as the API routes do."""
    protection = _module("services.protection")
    if protection is None:
        return None
    if refresh:
        protection.refresh_site(portal, site_id)
    with portal.app_db.connect() as conn:
        if all(protection.get_watermark(conn, site_id, comp) is None for comp in ("rack", "bank")):
            return None
    return protection


def _event_filter(protection: ModuleType, state: ViewState, c: _Ctx) -> Any:
    code = state.get("code")
    level = state.get("level")
    f = protection.EventFilter(site_ids=(c.site.id,), start=c.start, end=c.end, level=int(level) if level else None,
                               error_code=int(code) if code.isdigit() else None, bank_id=state.bank,
                               rack_id=state.rack, message=state.get("text") or None)
    protection.check_filter_values(f.level, f.error_code, None, f.message)
    return f


def _tz_of(portal: Portal) -> Any:
    return lambda site_id: portal.registry.get_site(site_id).tz


def get_open_episodes(portal: Portal, site_id: int) -> int | None:
    """Alarm episodes of the site that may still go on."""
    protection = _protection(portal, site_id, refresh=False)
    if protection is None:
        return None
    page = protection.list_episodes(portal.app_db, protection.EventFilter(site_ids=(site_id,)), _tz_of(portal),
                                    is_open=True, page_size=1)
    return int(page.count)


def get_recent_events(portal: Portal, site_id: int, limit: int = 10) -> list[dict[str, Any]] | None:
    """The newest protection-map events of a site, newest first."""
    protection = _protection(portal, site_id)
    if protection is None:
        return None
    page = protection.list_events(portal.app_db, protection.EventFilter(site_ids=(site_id,)), _tz_of(portal),
                                  page_size=limit)
    return list(page.rows)


def get_events(portal: Portal, state: ViewState, page: int, page_size: int) -> tuple[list[dict[str, Any]], int] | None:
    """One page of events (newest first) matching the state's filters, and the total."""
    c = _ctx(portal, state)
    protection = _protection(portal, c.site.id)
    if protection is None:
        return None
    result = protection.list_events(portal.app_db, _event_filter(protection, state, c), _tz_of(portal),
                                    page_size=page_size, page=page)
    return list(result.rows), int(result.count)


def get_event_counts(portal: Portal, state: ViewState) -> list[dict[str, Any]] | None:
    """Events per bucket and level over the range (at most ~120 round buckets)."""
    c = _ctx(portal, state)
    protection = _protection(portal, c.site.id, refresh=False)
    if protection is None or c.tr is None:
        return None
    width = choose_width(c.tr.seconds, MAX_COUNT_BARS)
    return list(protection.count_levels(portal.app_db, c.site.id, c.start, c.end, width,
                                        local_midnight_epoch(c.tr, c.site.tz), c.site.tz,
                                        f=_event_filter(protection, state, c)))


def get_episodes(portal: Portal, state: ViewState, limit: int = 500) -> list[dict[str, Any]] | None:
    """Episodes overlapping the range and matching the filters, newest first."""
    c = _ctx(portal, state)
    protection = _protection(portal, c.site.id, refresh=False)
    if protection is None:
        return None
    page = protection.list_episodes(portal.app_db, _event_filter(protection, state, c), _tz_of(portal),
                                    page_size=limit)
    return list(page.rows)
