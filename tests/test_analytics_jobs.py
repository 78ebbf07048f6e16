"""The analytics job on both databases (site data and app database alike): every table
filled, incremental runs equal to one run, nothing redone without new data, Prophet
fitted once per rack, target and day."""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.analytics import forecast as fc
from services.analytics import tables as st
from services.analytics.bookkeeping import TaskReport
from services.analytics.jobs import analyze_site
from services.core.appschema import open_app_db
from services.core.registry import Bank, Site, demo_sites
from services.demo.writer import generate_day
from services.storage.rollups import catch_up
from services.storage.sitestore import SiteStore

ANCHOR = date(2022, 9, 1)
DAYS = 2


@dataclasses.dataclass
class Placed:
    site: Site
    store: SiteStore
    backend: str
    app_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def placed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Placed:
    """Two generated days of a one-rack site 1 (rack and bank tables) on each database."""
    base = dataclasses.replace(demo_sites()[0], banks=(Bank(1, (1,)),), demo_anchor=ANCHOR)
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("jobs")
        site = dataclasses.replace(base, database_url=f"sqlite:///{folder / 'site1.sqlite'}")
        app_url = f"sqlite:///{folder / 'app.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
        site = dataclasses.replace(base, database_url=url, schema=f"jobs{secrets.token_hex(3)}")
        app_url = url
    store = SiteStore(site)
    store.create_schema()
    for k in range(DAYS):
        frames = generate_day(site, ANCHOR + timedelta(days=k), seed=7, anchor=ANCHOR)
        for component in ("rack", "bank"):
            store.write_frame(component, frames[component])
    for component in ("rack", "bank"):
        if request.param == "postgresql":  # fresh statistics, as autovacuum would have them
            with store.engine.begin() as conn:
                conn.execute(sa.text(f'ANALYZE "{site.schema}"."{component}"'))
        catch_up(store, component, create=True)
    return Placed(site, store, request.param, app_url)


def new_app_db(placed: Placed, folder: Path) -> Engine:
    """An empty analytics store on the same kind of database as the site (PostgreSQL: a
    schema of its own, through search_path)."""
    if placed.backend == "sqlite":
        return open_app_db(f"sqlite:///{folder / f'app_{secrets.token_hex(3)}.sqlite'}")
    schema = f"app{secrets.token_hex(3)}"
    with sa.create_engine(placed.app_url).begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    return open_app_db(f"{placed.app_url}?options=-csearch_path%3D{schema}")


@pytest.fixture(scope="module")
def analyzed(placed: Placed, tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, list[list[TaskReport]]]:
    """The job run three times: up to 13:05 of the first day, then to the end, then again."""
    engine = new_app_db(placed, tmp_path_factory.mktemp("app"))
    runs = [analyze_site(engine, placed.store, end=local(0, 13, 5), with_prophet=False),
            analyze_site(engine, placed.store, with_prophet=False),
            analyze_site(engine, placed.store, with_prophet=False)]
    return engine, runs


def local(day_offset: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime.combine(ANCHOR + timedelta(days=day_offset), time(hh, mm), tzinfo=demo_sites()[0].tz)


def dump(engine: Engine, site_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the site, in key order, JSON decoded (the state table aside)."""
    out = {}
    with engine.connect() as conn:
        for table in st.SITE_TABLES:
            if table is st.state:
                continue
            key = [c for c in table.primary_key.columns]
            rows = conn.execute(sa.select(table).where(table.c.site_id == site_id).order_by(*key)).all()
            out[table.name] = [tuple(json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for v in r)
                               for r in rows]
    return out


def test_incremental_runs_store_the_same_as_one_run(placed: Placed, analyzed: tuple[Engine, Any]) -> None:
    app_db, (first, rest, again) = analyzed
    sid = placed.site.id
    assert {r.task for r in first} == {"sos", "daily", "sol", "forecast", "forecast_1d"}
    assert [r.units for r in again if r.task in ("sos", "daily")] == [0, 0]  # nothing new: nothing redone
    assert sum(r.rows for r in again) == 0
    assert sum(r.units for r in rest if r.task == "sos") == 12  # 3-hour chunks from 13:00 of day 1 to 24:00 of day 2
    incremental = dump(app_db, sid)
    analyze_site(app_db, placed.store, with_prophet=False, rebuild=True)
    assert dump(app_db, sid) == incremental
    rows = {name: len(v) for name, v in incremental.items()}
    # 10-s worst moments: 8640 buckets a day, less the one with the collection gap (03:00:00-03:00:09, day 0)
    assert rows["analytics_sos"] == DAYS * 8640 - 1
    assert rows["analytics_sos_1m"] == DAYS * 1440
    assert rows["analytics_exsos"] == DAYS * 144 * 2  # mode 2 (the rack) and mode 1 (its bank)
    assert rows["analytics_soh"] == DAYS * 2  # the rack and the bank, per day
    assert rows["analytics_sol"] == DAYS + 3653
    # issued every 10 minutes from 00:10 of the first day to 00:00 after the last, for 5 targets
    assert rows["analytics_forecast"] == 5 * DAYS * 144
    assert rows["analytics_forecast_1d"] == DAYS  # at midnight after each complete day
    assert rows["analytics_model_cache"] == 0  # Prophet off


def test_forecast_rows_hold_horizon_observed_intervals_and_default(placed: Placed,
                                                                  analyzed: tuple[Engine, Any]) -> None:
    app_db = analyzed[0]
    f = st.forecast
    with app_db.connect() as conn:
        rows = conn.execute(sa.select(f.c.time, f.c.target_time, f.c.observed, f.c["values"], f.c.intervals,
                                      f.c.default_model).where(f.c.site_id == placed.site.id,
                                                               f.c.target == "max_cell_voltage")
                            .order_by(f.c.time)).all()
    last = int(local(DAYS).timestamp())
    assert rows[0][0] == int(local(0, 0, 10).timestamp()) and rows[-1][0] == last
    assert all(tt - t == fc.HORIZON_S for t, tt, *_ in rows)
    assert all(b[0] - a[0] == fc.ISSUE_EVERY_S for a, b in itertools.pairwise(rows))
    assert rows[-1][2] is None and all(r[2] is not None for r in rows[:-1])  # the last target is not observed yet
    contained = 0
    for _t, _tt, _obs, values, intervals, default in rows:
        values, intervals = st_json(values), st_json(intervals)
        assert set(values) == set(fc.MODELS)
        assert default in fc.MODELS and values[default] is not None
        for model, (low, high) in intervals.items():
            assert low <= values[model] <= high
            contained += 1
    assert contained > 500
    day2 = [st_json(r[3]) for r in rows if r[0] >= int(local(1).timestamp())]
    assert all(v["ridge"] is not None and v["seasonal_naive"] is not None for v in day2)  # trained on day 1
    assert all(st_json(r[3])["ridge"] is None for r in rows if r[0] < int(local(1).timestamp()))

    d = st.forecast_day
    with app_db.connect() as conn:
        day_rows = conn.execute(sa.select(d.c.time, d.c["values"], d.c.observed).where(
            d.c.site_id == placed.site.id).order_by(d.c.time)).all()
    issue, values, observed = day_rows[0]
    assert issue == int(local(1).timestamp())
    values, observed = st_json(values), st_json(observed)
    assert values["time"] == [issue + 600 * k for k in range(144)]
    assert len(observed) == 144 and all(o is not None for o in observed)
    assert all(len(values[m]) == 144 for m in fc.MODELS_1D)
    assert st_json(day_rows[1][2]) == [None] * 144  # the day after the data: nothing observed yet


def st_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.slow
def test_prophet_is_fitted_once_per_rack_target_and_day(placed: Placed, tmp_path: Path) -> None:
    app_db = new_app_db(placed, tmp_path)
    analyze_site(app_db, placed.store, end=local(1, 12))
    m = st.model_cache
    with app_db.connect() as conn:
        cached = conn.execute(sa.select(m.c.target, m.c.day).where(m.c.site_id == placed.site.id)).all()
    assert sorted(cached) == sorted((t, int(local(1).timestamp())) for t in fc.TARGETS)
    analyze_site(app_db, placed.store)  # the rest of day 2 reuses day 2's fit; the next midnight fits again
    f = st.forecast
    with app_db.connect() as conn:
        cached = conn.execute(sa.select(m.c.day).where(m.c.site_id == placed.site.id)).all()
        rows = conn.execute(sa.select(f.c.time, f.c["values"]).where(
            f.c.site_id == placed.site.id, f.c.target == "max_cell_temperature")).all()
    assert sorted({c[0] for c in cached}) == [int(local(2).timestamp())]  # older days' fits are dropped
    day2 = [st_json(v)["prophet"] for t, v in rows if int(local(1).timestamp()) <= t < int(local(2).timestamp())]
    assert len(day2) == 144 and all(p is not None for p in day2)
    assert all(st_json(v)["prophet"] is None for t, v in rows if t < int(local(1).timestamp()))


def test_the_scheduler_evaluates_the_protection_map_then_analyses(tmp_path: Path, pg_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """ESS_JOBS_INTERVAL_S: each round judges every site's new rows against the protection
    map (real evaluation on both databases), then runs the analytics (recorded here, the
    analytics themselves are tested above), under the app-database lease, which it releases."""
    import threading

    from services import scheduler
    from services.core.portal import Portal
    from services.core.settings import load_settings
    from services.protection.evaluation import pending_samples
    from tests.small_env import build_small_env

    env = build_small_env(tmp_path, pg_url, minutes=3)
    portal = Portal(load_settings(env={}, ESS_DATA_DIR=str(tmp_path), ESS_REGISTRY=str(env.registry_path)))
    stores = [portal.store(sid) for sid in env.sites]
    before = [pending_samples(portal.app_db, s) for s in stores]
    assert all(n > 0 for n in before)
    rounds = threading.Event()
    monkeypatch.setattr(scheduler, "analyze", lambda p: rounds.set())
    stop = threading.Event()
    thread = scheduler.start_scheduler(portal, 1, stop)
    try:
        assert rounds.wait(60), "no scheduled round within 60 s"
    finally:
        stop.set()
        thread.join(30)
    assert [pending_samples(portal.app_db, s) for s in stores] == [0, 0]
    with portal.app_db.connect() as conn:
        lease = conn.execute(sa.select(st.state).where(st.state.c.site_id == 0,
                                                       st.state.c.task == scheduler.LEASE_TASK))
        assert lease.first() is None
