"""Stored analytics as the API serves them: one function per route family, reading only
what the job stored (nothing is fitted or recomputed from raw data here). Rows are
ordered by time, then bank, then rack; times are ISO 8601 in the site's offset; ranges
are half-open; every list is capped (InvalidQuery names the cap and what to do)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.analytics import exsos as exsos_mod
from services.analytics import forecast as fc
from services.analytics import tables as st
from services.analytics.bookkeeping import get_state
from services.analytics.sos import FACTOR_NAMES, INPUT_NAMES, LEVELS, SosParameters, sos_parameters
from services.core.errors import InvalidQuery, NotFound
from services.core.registry import Site
from services.protection.maps import load_protection_map
from services.storage.dialect import to_epoch
from services.telemetry.timerange import Bounds

MAX_ROWS = 100_000
MAX_SOS_SAMPLES = 1_000_000  # stored 10-s rows one SoS request may aggregate
SOS_BASE_S = 10
TARGET_1D = f"{fc.TARGET_1D}_1d"
ACCURACY_TARGETS = (*fc.TARGETS, TARGET_1D)


@dataclass(frozen=True)
class Scope:
    """Which ids a route selects: a bank (or every bank) and a rack (or every rack)."""

    site: Site
    bank_id: int | None = None
    rack_id: int | None = None

    def check(self) -> Scope:
        if self.bank_id is not None:
            self.site.get_bank(self.bank_id)
            if self.rack_id is not None:
                self.site.check_rack(self.bank_id, self.rack_id)
        return self

    def where(self, table: sa.Table) -> list[Any]:
        conds: list[Any] = [table.c.site_id == self.site.id]
        if self.bank_id is not None:
            conds.append(table.c.bank_id == self.bank_id)
        if self.rack_id is not None:
            conds.append(table.c.rack_id == self.rack_id)
        return conds


@dataclass(frozen=True)
class Window:
    """Optional half-open [start, end) in epoch seconds (None: unbounded)."""

    start: int | None = None
    end: int | None = None

    @classmethod
    def of(cls, bounds: Bounds) -> Window:
        """The epoch window of parsed bounds (an open side stays open)."""
        return cls(None if bounds.start is None else to_epoch(bounds.start),
                   None if bounds.end is None else to_epoch(bounds.end))

    def where(self, column: sa.ColumnElement[Any]) -> list[Any]:
        conds = []
        if self.start is not None:
            conds.append(column >= self.start)
        if self.end is not None:
            conds.append(column < self.end)
        return conds


def iso(epoch_s: int | float, site: Site) -> str:
    return datetime.fromtimestamp(int(epoch_s), site.tz).isoformat()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _rows(engine: Engine, stmt: sa.Select[Any], cap: int = MAX_ROWS, what: str = "rows") -> list[Any]:
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(cap + 1)).all()
    if len(rows) > cap:
        raise InvalidQuery(f"more than {cap:,} {what} match; narrow the range (start-time/end-time) or pick one rack",
                           code="too_many_rows", invalid_params=[{"name": "end-time", "reason": f"over {cap} rows"}])
    return list(rows)


def _version(engine: Engine, site: Site, task: str, part: int = 0) -> str | None:
    saved = get_state(engine, site.id, task)
    return None if saved is None else saved[1].split(";")[part]


# ----- SoH and SoL -----------------------------------------------------------------------

def list_soh(engine: Engine, scope: Scope, racks: bool, start: date | None, end: date | None
             ) -> list[dict[str, Any]]:
    """Daily mean SoH: of banks (racks=False) or of racks; dates in [start, end)."""
    t = st.soh
    conds = [*scope.where(t), t.c.rack_id > 0 if racks else t.c.rack_id == 0]
    conds += [t.c.date >= start] if start else []
    conds += [t.c.date < end] if end else []
    stmt = sa.select(t.c.bank_id, t.c.rack_id, t.c.date, t.c.value).where(*conds).order_by(
        t.c.date, t.c.bank_id, t.c.rack_id)
    out = []
    for bank_id, rack_id, day, value in _rows(engine, stmt):
        row: dict[str, Any] = {"operating_site": scope.site.id, "bank_id": bank_id}
        if racks:
            row["rack_id"] = rack_id
        row.update({"date": _date(day).isoformat(), "value": value})
        out.append(row)
    return out


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def list_sol(engine: Engine, scope: Scope, start: date | None, end: date | None) -> list[dict[str, Any]]:
    """Observed and forecast SoL per bank; dates in [start, end)."""
    t = st.sol
    conds = [t.c.site_id == scope.site.id] + ([t.c.bank_id == scope.bank_id] if scope.bank_id is not None else [])
    conds += [t.c.date >= start] if start else []
    conds += [t.c.date < end] if end else []
    stmt = sa.select(t.c.bank_id, t.c.date, t.c.value, t.c.top_limit_value, t.c.bottom_limit_value,
                     t.c.observed).where(*conds).order_by(t.c.date, t.c.bank_id)
    return [{"operating_site": scope.site.id, "bank_id": b, "date": _date(d).isoformat(), "value": v,
             "top_limit_value": top, "bottom_limit_value": bottom, "observed": bool(obs)}
            for b, d, v, top, bottom, obs in _rows(engine, stmt)]


def get_sol_summary(engine: Engine, scope: Scope) -> dict[str, Any]:
    """How the bank's SoL forecast was made: days fitted on, end-of-life date, trend."""
    t = st.sol_fit
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.site_id == scope.site.id, t.c.bank_id == scope.bank_id)).first()
    if row is None:
        raise NotFound(f"no SoL forecast for site {scope.site.id} bank {scope.bank_id} yet "
                       "(run `flask --app app ess analyze`)", code="no_analytics")
    m = row._mapping
    return {"operating_site": scope.site.id, "bank_id": m["bank_id"], "model": m["model"],
            "fitted_days": m["fitted_days"], "first_date": _date(m["first_date"]).isoformat(),
            "last_date": _date(m["last_date"]).isoformat(),
            "end_of_life_date": None if m["end_of_life_date"] is None else _date(m["end_of_life_date"]).isoformat(),
            "trend_sol_per_year": m["trend_sol_per_year"], "note": m["note"], "version": m["version"]}


# ----- SoS -------------------------------------------------------------------------------

def get_sos_parameters(site: Site) -> SosParameters:
    return sos_parameters(load_protection_map(site))


def list_sos(engine: Engine, scope: Scope, window: Window, resolution_s: int, origin_s: int
             ) -> list[dict[str, Any]]:
    """The worst moment per (rack, bucket of `resolution_s` seconds aligned to origin_s),
    from the stored 10-second worst moments (the minimum of minima is the minimum)."""
    if resolution_s % SOS_BASE_S:
        raise InvalidQuery(f"resolution must be a multiple of {SOS_BASE_S} s (SoS is stored as the worst sample "
                           f"of each {SOS_BASE_S}-second bucket)", code="invalid_parameter",
                           invalid_params=[{"name": "resolution", "reason": f"not a multiple of {SOS_BASE_S} s"}])
    t = st.sos
    cols = [t.c.bank_id, t.c.rack_id, t.c.time, t.c.sample_time, *(t.c[n] for n in FACTOR_NAMES), t.c.sos_score,
            t.c.level, *(t.c[f"in_{n}"] for n in INPUT_NAMES)]
    stmt = sa.select(*cols).where(*scope.where(t), *window.where(t.c.time)).order_by(t.c.time, t.c.bank_id,
                                                                                     t.c.rack_id)
    rows = _rows(engine, stmt, MAX_SOS_SAMPLES, "stored 10-second SoS rows")
    names = ["bank_id", "rack_id", "time", "sample_time", *FACTOR_NAMES, "sos_score", "level",
             *(f"in_{n}" for n in INPUT_NAMES)]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=names)
    if resolution_s != SOS_BASE_S and len(frame):
        frame["time"] = origin_s + (frame["time"] - origin_s) // resolution_s * resolution_s
        frame = frame.sort_values(["time", "bank_id", "rack_id", "sos_score", "sample_time"], kind="mergesort")
        frame = frame.drop_duplicates(["time", "bank_id", "rack_id"], keep="first")
    if len(frame) > MAX_ROWS:
        raise InvalidQuery(f"{len(frame):,} buckets; at most {MAX_ROWS:,}: use a coarser resolution or a shorter "
                           "range", code="too_many_buckets",
                           invalid_params=[{"name": "resolution", "reason": f"over {MAX_ROWS} buckets"}])
    version = _version(engine, scope.site, "sos", 0)
    site = scope.site
    out = []
    for r in frame.itertuples(index=False):
        rec = r._asdict()
        row: dict[str, Any] = {"time": iso(rec["time"], site), "operating_site": site.id,
                               "bank_id": int(rec["bank_id"]), "rack_id": int(rec["rack_id"])}
        row.update({n: _f(rec[n]) for n in FACTOR_NAMES})
        row["sos_score"] = _f(rec["sos_score"])
        row["level"] = LEVELS[int(rec["level"])]
        row["sample_time"] = iso(rec["sample_time"], site)
        row["inputs"] = {n: _f(rec[f"in_{n}"]) for n in INPUT_NAMES}
        row["version"] = version
        out.append(row)
    return out


def _f(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return None if np.isnan(f) else f


# ----- ExSoS -----------------------------------------------------------------------------

def list_exsos(engine: Engine, scope: Scope, mode: int, window: Window) -> list[dict[str, Any]]:
    t = st.exsos
    stmt = (sa.select(t.c.time, t.c.mode, t.c.bank_id, t.c.rack_id, t.c.integrated_safety, t.c.membership_degree,
                      t.c.membership_degree_detail, t.c.version)
            .where(*scope.where(t), t.c.mode == mode, *window.where(t.c.time))
            .order_by(t.c.time, t.c.bank_id, t.c.rack_id))
    site = scope.site
    return [{"time": iso(tm, site), "mode": md, "operating_site": site.id, "bank_id": b, "rack_id": r,
             "integrated_safety": s, "membership_degree": _json(deg), "membership_degree_detail": _json(detail),
             "version": v} for tm, md, b, r, s, deg, detail, v in _rows(engine, stmt)]


def static_chart_data(params: SosParameters, name: str | None, chart_type: str | None) -> dict[str, Any]:
    """The ExSoS membership curves in the original's paged shape, filtered exactly."""
    curves = exsos_mod.chart_data(params)
    if chart_type is not None:
        curves = [c for c in curves if c["chart_type"] == chart_type]
    if name is not None:
        curves = [c for c in curves if c["name"] == name]
    return {"count": len(curves), "next": None, "previous": None, "results": curves}


# ----- SoCP ------------------------------------------------------------------------------

def list_socp(engine: Engine, scope: Scope, window: Window, period: int | None, charge_status: int | None,
              soc_range: int | None) -> list[dict[str, Any]]:
    t = st.socp
    conds = [*scope.where(t), *window.where(t.c.time)]
    conds += [t.c.period == period] if period is not None else []
    conds += [t.c.charge_status == charge_status] if charge_status is not None else []
    conds += [t.c.soc_range == soc_range] if soc_range is not None else []
    stmt = (sa.select(t.c.time, t.c.bank_id, t.c.rack_id, t.c.period, t.c.charge_status, t.c.soc_range, t.c.value,
                      t.c.samples, t.c.entropy, t.c.bound, t.c.flagged, t.c.version)
            .where(*conds).order_by(t.c.time, t.c.bank_id, t.c.rack_id, t.c.period, t.c.charge_status,
                                    t.c.soc_range))
    site = scope.site
    return [{"time": iso(tm, site), "operating_site": site.id, "bank_id": b, "rack_id": r, "period": p,
             "charge_status": cs, "soc_range": band, "value": _json(value), "samples": n, "entropy": e,
             "binomial_bound": bound, "flagged_cells": _json(flagged), "version": v}
            for tm, b, r, p, cs, band, value, n, e, bound, flagged, v in _rows(engine, stmt)]


# ----- forecasts -------------------------------------------------------------------------

def list_forecasts(engine: Engine, scope: Scope, target: str, window: Window) -> list[dict[str, Any]]:
    """10-minute forecasts issued in the window: `values` {observed, one key per model},
    `intervals` {model: [low, high]}, the default model and the version."""
    t = st.forecast
    stmt = (sa.select(t.c.time, t.c.target_time, t.c.bank_id, t.c.rack_id, t.c.observed, t.c["values"],
                      t.c.intervals, t.c.default_model, t.c.version)
            .where(*scope.where(t), t.c.target == target, *window.where(t.c.time))
            .order_by(t.c.time, t.c.bank_id, t.c.rack_id))
    site = scope.site
    out = []
    for tm, tt, b, r, obs, values, intervals, default, v in _rows(engine, stmt):
        out.append({"time": iso(tm, site), "target_time": iso(tt, site), "operating_site": site.id,
                    "bank_id": b, "rack_id": r, "target": target,
                    "values": {"observed": obs, **_json(values)}, "intervals": _json(intervals),
                    "default_model": default, "version": v})
    return out


def list_forecasts_1d(engine: Engine, scope: Scope, window: Window) -> list[dict[str, Any]]:
    """1-day forecasts issued in the window (one row per rack and local day)."""
    t = st.forecast_day
    stmt = (sa.select(t.c.time, t.c.bank_id, t.c.rack_id, t.c["values"], t.c.observed, t.c.lower, t.c.upper,
                      t.c.default_model, t.c.version)
            .where(*scope.where(t), t.c.target == fc.TARGET_1D, *window.where(t.c.time))
            .order_by(t.c.time, t.c.bank_id, t.c.rack_id))
    site = scope.site
    out = []
    for tm, b, r, values, observed, lower, upper, default, v in _rows(engine, stmt):
        vals = _json(values)
        times = [iso(s, site) for s in vals.pop("time")]
        out.append({"time": iso(tm, site), "operating_site": site.id, "bank_id": b, "rack_id": r,
                    "values": {"time": times, "observed": _json(observed), **vals, "lower": _json(lower),
                               "upper": _json(upper)},
                    "default_model": default, "version": v})
    return out


def forecast_accuracy(engine: Engine, scope: Scope, targets: Sequence[str], window: Window
                      ) -> list[dict[str, Any]]:
    """Backtest metrics of the stored forecasts issued in the window, per rack, target and
    model: count, MAE, RMSE, MASE (MAE relative to persistence on the same origins) and the
    MAE relative to seasonal-naive; `default` marks the model with the best MASE."""
    out: list[dict[str, Any]] = []
    for target in targets:
        if target == TARGET_1D:
            by_rack = _series_1d(engine, scope, window)
            models: tuple[str, ...] = fc.MODELS_1D
        else:
            by_rack = _series_10m(engine, scope, target, window)
            models = fc.MODELS
        for (bank_id, rack_id), (observed, values) in sorted(by_rack.items()):
            rows = fc.accuracy(observed, values)
            best = fc.best_model(rows, models)
            for r in rows:
                out.append({"operating_site": scope.site.id, "bank_id": bank_id, "rack_id": rack_id,
                            "target": target, **r, "default": r["model"] == best})
    return out


def _series_10m(engine: Engine, scope: Scope, target: str, window: Window
                ) -> dict[tuple[int, int], tuple[np.ndarray, dict[str, np.ndarray]]]:
    t = st.forecast
    stmt = (sa.select(t.c.bank_id, t.c.rack_id, t.c.observed, t.c["values"])
            .where(*scope.where(t), t.c.target == target, *window.where(t.c.time))
            .order_by(t.c.bank_id, t.c.rack_id, t.c.time))
    acc: dict[tuple[int, int], tuple[list[float], dict[str, list[float]]]] = {}
    for b, r, obs, values in _rows(engine, stmt, 10 * MAX_ROWS, "forecasts"):
        o, v = acc.setdefault((b, r), ([], {m: [] for m in fc.MODELS}))
        o.append(np.nan if obs is None else obs)
        vals = _json(values)
        for m in fc.MODELS:
            v[m].append(np.nan if vals.get(m) is None else vals[m])
    return {k: (np.array(o, dtype=float), {m: np.array(x, dtype=float) for m, x in v.items()})
            for k, (o, v) in acc.items()}


def _series_1d(engine: Engine, scope: Scope, window: Window
               ) -> dict[tuple[int, int], tuple[np.ndarray, dict[str, np.ndarray]]]:
    t = st.forecast_day
    stmt = (sa.select(t.c.bank_id, t.c.rack_id, t.c.observed, t.c["values"])
            .where(*scope.where(t), t.c.target == fc.TARGET_1D, *window.where(t.c.time))
            .order_by(t.c.bank_id, t.c.rack_id, t.c.time))
    acc: dict[tuple[int, int], tuple[list[Any], dict[str, list[Any]]]] = {}
    for b, r, obs, values in _rows(engine, stmt):
        o, v = acc.setdefault((b, r), ([], {m: [] for m in fc.MODELS_1D}))
        o += _json(obs)
        vals = _json(values)
        for m in fc.MODELS_1D:
            v[m] += vals.get(m) or [None] * fc.STEPS_1D
    return {k: (_arr(o), {m: _arr(x) for m, x in v.items()}) for k, (o, v) in acc.items()}


def _arr(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in values], dtype=float)

