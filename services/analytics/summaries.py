"""The stored analytics the pages show for one selection (site, optionally bank and rack,
and a range), in the API's shapes. A task that has not run for the site raises
NotComputed (what: sos, exsos, sol, socp, forecasts), which the pages render once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.analytics import results
from services.analytics import tables as st
from services.analytics.bookkeeping import get_state
from services.analytics.results import Scope, Window
from services.analytics.sos import LEVELS, level_codes
from services.core.errors import NotComputed, NotFound
from services.core.registry import Site
from services.storage.dialect import to_epoch
from services.telemetry.series import choose_width
from services.telemetry.timerange import TimeRange, local_midnight_epoch

MAX_CHART_POINTS = 1500
SOCP_LOOKBACK_S = 31 * 86400
SOS_SUMMARY_S = 600  # the gauges and the overview show the newest 10 minutes analysed
WORST_WINDOW_S = 86400  # the overview's worst SoS looks back 24 h from the newest analysed time


@dataclass(frozen=True)
class SafetySummary:
    """The lowest rack SoS of a site in a window: its value, level, rack and the minute it
    happened (site-local ISO; None for the newest-10-minutes summary)."""

    value: float
    level: str  # safe / warning / unsafe
    bank: int
    rack: int
    time: str | None = None


@dataclass(frozen=True)
class SafetyOverview:
    """A site's SoS now (newest 10 minutes analysed) and the worst of the 24 h up to then."""

    now: SafetySummary | None
    worst: SafetySummary | None
    until: str  # end of both windows: the newest analysed time, site-local ISO


def sos_level_of(value: float) -> str:
    """safe / warning / unsafe, with the index's own thresholds."""
    return str(LEVELS[int(level_codes(np.array([value]))[0])])


def _watermark(engine: Engine, site: Site, task: str, what: str) -> int:
    """The task's watermark for the site (epoch s); NotComputed when it has not run."""
    state = get_state(engine, site.id, task)
    if state is None:
        raise NotComputed(f"{what} of site {site.id} has not been computed yet (task {task!r} has not run)",
                          what=what)
    return state[0]


def _window(tr: TimeRange | None, site: Site, what: str) -> Window:
    """The range as an epoch window; NotComputed without a range (nothing to show)."""
    if tr is None:
        raise NotComputed(f"{what} of site {site.id}: no range selected", what=what)
    return Window(to_epoch(tr.start), to_epoch(tr.end))


def get_lowest_sos(engine: Engine, site: Site) -> SafetySummary | None:
    """The lowest SoS over the site's racks in the newest 10 minutes analysed; None when
    not computed or nothing was scored."""
    state = get_state(engine, site.id, "sos")
    if state is None:
        return None
    start = state[0] // SOS_SUMMARY_S * SOS_SUMMARY_S - SOS_SUMMARY_S
    rows = results.list_sos(engine, Scope(site), Window(start, start + SOS_SUMMARY_S), SOS_SUMMARY_S, start)
    scored = [r for r in rows if r.get("sos_score") is not None]
    if not scored:
        return None
    worst = min(scored, key=lambda r: r["sos_score"])
    return SafetySummary(worst["sos_score"], worst["level"], worst["bank_id"], worst["rack_id"])


def get_safety_overview(engine: Engine, site: Site, lookback_s: int = WORST_WINDOW_S) -> SafetyOverview | None:
    """The site's SoS now and the worst rack SoS of the `lookback_s` up to the newest
    analysed time, from the per-minute minima (the minimum of minima is the minimum, so
    a 5-minute fault the day before still shows); None when SoS has not been computed."""
    state = get_state(engine, site.id, "sos")
    if state is None:
        return None
    end = int(state[0])
    t = st.sos_minute
    stmt = (sa.select(t.c.bank_id, t.c.rack_id, t.c.time, t.c.sos_min)
            .where(t.c.site_id == site.id, t.c.time >= end - lookback_s, t.c.time < end, t.c.sos_min.is_not(None))
            .order_by(t.c.sos_min, t.c.time.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    worst = None if row is None else SafetySummary(float(row.sos_min), sos_level_of(float(row.sos_min)),
                                                   int(row.bank_id), int(row.rack_id), results.iso(row.time, site))
    return SafetyOverview(get_lowest_sos(engine, site), worst, results.iso(end, site))


def get_rack_lowest_sos(engine: Engine, site: Site, bank: int | None, tr: TimeRange | None) -> dict[int, float]:
    """The lowest SoS of each rack of the bank over the range (per-minute minima): the
    gauges mark it beside the newest value."""
    _watermark(engine, site, "sos", "sos")
    window = _window(tr, site, "sos")
    t = st.sos_minute
    stmt = (sa.select(t.c.rack_id, sa.func.min(t.c.sos_min))
            .where(*Scope(site, bank).check().where(t), *window.where(t.c.time)).group_by(t.c.rack_id))
    with engine.connect() as conn:
        return {int(rack): float(low) for rack, low in conn.execute(stmt).all() if low is not None}


def get_lowest_sos_during(engine: Engine, site: Site, bank: int, rack: int, start: int, end: int) -> float | None:
    """The lowest SoS of one rack in [start, end] (epoch s, whole minutes touched): the
    overview shows it beside each recent alarm episode; None when not computed there."""
    t = st.sos_minute
    stmt = sa.select(sa.func.min(t.c.sos_min)).where(
        t.c.site_id == site.id, t.c.bank_id == bank, t.c.rack_id == rack, t.c.time >= start // 60 * 60,
        t.c.time <= end)
    with engine.connect() as conn:
        low = conn.execute(stmt).scalar()
    return None if low is None else float(low)


def get_sos(engine: Engine, site: Site, bank: int | None, rack: int | None, tr: TimeRange | None
            ) -> list[dict[str, Any]]:
    """SoS rows (worst moment per bucket, seven factors) of the rack, at most ~1500."""
    _watermark(engine, site, "sos", "sos")
    window = _window(tr, site, "sos")
    assert tr is not None
    resolution = max(10, math.ceil(choose_width(tr.seconds, MAX_CHART_POINTS) / 10) * 10)
    return list(results.list_sos(engine, Scope(site, bank, rack).check(), window, resolution,
                                 local_midnight_epoch(tr, site.tz)))


def get_rack_sos(engine: Engine, site: Site, bank: int | None, tr: TimeRange | None) -> dict[int, float | None]:
    """The lowest SoS of each rack of the bank in the last 10 minutes analysed before the
    end of the range (one gauge per rack)."""
    watermark = _watermark(engine, site, "sos", "sos")
    window = _window(tr, site, "sos")
    assert window.end is not None
    end = min(window.end, watermark) // SOS_SUMMARY_S * SOS_SUMMARY_S
    rows = results.list_sos(engine, Scope(site, bank).check(), Window(end - SOS_SUMMARY_S, end), SOS_SUMMARY_S,
                            end - SOS_SUMMARY_S)
    out: dict[int, float | None] = dict.fromkeys(site.get_bank(bank or 0).racks)
    for r in rows:
        out[int(r["rack_id"])] = r.get("sos_score")
    return out


def get_exsos(engine: Engine, site: Site, bank: int | None, rack: int | None, tr: TimeRange | None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ExSoS rows of the rack (mode 2) and the membership curves of the site's map."""
    _watermark(engine, site, "sos", "exsos")
    window = _window(tr, site, "exsos")
    rows = results.list_exsos(engine, Scope(site, bank, rack).check(), 2, window)
    curves = results.static_chart_data(results.get_sos_parameters(site), None, "ExSoS")["results"]
    return rows, curves


def get_sol(engine: Engine, site: Site, bank: int | None) -> tuple[list[dict[str, Any]], date | None, date | None]:
    """SoL rows of the bank (observed and forecast), the last observed day, end of life."""
    _watermark(engine, site, "sol", "sol")
    scope = Scope(site, bank).check()
    rows = results.list_sol(engine, scope, None, None)
    if not rows:
        return rows, None, None
    summary = results.get_sol_summary(engine, scope)
    observed = [r["date"] for r in rows if r.get("observed")]
    eol = summary.get("end_of_life_date")
    return (rows, date.fromisoformat(observed[-1]) if observed else None,
            date.fromisoformat(eol) if eol else None)


MIN_SOL_DAYS = 30  # fewer days of SoH identify no trend (issue 17): the page draws no forecast line


def get_sol_fit(engine: Engine, site: Site, bank: int | None) -> dict[str, Any]:
    """How the bank's SoL forecast was made (days fitted on, note, and `reason` when the
    analytics say why there is no forecast); {} when no fit is stored."""
    try:
        return results.get_sol_summary(engine, Scope(site, bank).check())
    except NotFound:
        return {}


def sol_withheld(fit: dict[str, Any], forecast_rows: int) -> tuple[str, dict[str, Any]] | None:
    """Why the page shows no SoL forecast line, as a message key and its values: the
    analytics' own `reason` ("sol_reason_api"), or too few fitted days ("sol_reason_short",
    fewer than MIN_SOL_DAYS) when they give none; None when the line is shown."""
    if fit.get("reason"):
        return "sol_reason_api", {"reason": str(fit["reason"])}
    days = fit.get("fitted_days")
    if isinstance(days, int) and days < MIN_SOL_DAYS and forecast_rows:
        return "sol_reason_short", {"days": days, "needed": MIN_SOL_DAYS}
    return None


def get_socp(engine: Engine, site: Site, bank: int | None, rack: int | None, tr: TimeRange | None, period: int,
             status: int) -> tuple[dict[int, dict[int, int]], int, list[int], str | None]:
    """SoCP of the newest complete day up to the end of the range (looking back at most
    SOCP_LOOKBACK_S) for a period and charge status: counts (band index -> cell -> n),
    cells per rack, flagged cells, the day."""
    _watermark(engine, site, "daily", "socp")
    end = None if tr is None else to_epoch(tr.end)
    window = Window(None if end is None else end - SOCP_LOOKBACK_S, end)  # the newest complete day
    rows = results.list_socp(engine, Scope(site, bank, rack).check(), window, period, status, None)
    if not rows:
        return {}, site.cells_per_rack, [], None
    newest = max(r["time"] for r in rows)
    counts: dict[int, dict[int, int]] = {}
    flagged: set[int] = set()
    for r in rows:
        if r["time"] != newest:
            continue
        cells = r["value"] or {}
        counts[int(r["soc_range"]) // 10] = {int(cell): int(v.get("count", 0)) for cell, v in cells.items()}
        flagged.update(int(x) for x in r.get("flagged_cells") or [])
    return counts, site.cells_per_rack, sorted(flagged), newest[:10]


def get_forecasts(engine: Engine, site: Site, bank: int | None, rack: int | None, tr: TimeRange | None,
                  target: str) -> dict[str, Any]:
    """10-minute forecasts of one target of the rack issued in the range, each model's
    backtest MAE/RMSE over the same issues, and the best model."""
    _watermark(engine, site, "forecast", "forecasts")
    window = _window(tr, site, "forecasts")
    scope = Scope(site, bank, rack).check()
    rows = results.list_forecasts(engine, scope, target, window)
    metrics = results.forecast_accuracy(engine, scope, [target], window)
    accuracy = {m["model"]: m for m in metrics}
    best = next((m["model"] for m in metrics if m.get("default")), None)
    return {"rows": rows, "accuracy": accuracy, "best": best}


def get_day_ahead(engine: Engine, site: Site, bank: int | None, rack: int | None, tr: TimeRange | None
                  ) -> dict[str, Any]:
    """The newest 1-day max-cell-voltage forecast issued in the range (or the day before)."""
    _watermark(engine, site, "forecast_1d", "forecasts")
    window = _window(tr, site, "forecasts")
    assert window.start is not None
    rows = results.list_forecasts_1d(engine, Scope(site, bank, rack).check(), Window(window.start - 86400,
                                                                                      window.end))
    return {"row": rows[-1] if rows else None}
