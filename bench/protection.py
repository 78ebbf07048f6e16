"""Protection-map benchmark. Prints:

(a) judging in memory: `judge_rack_rows` over a generated site-2 day (17 racks, ~1.47 M rack
    samples) against a plain vectorised pandas comparison of the same eight thresholds and
    21 BMS flags on the same frame (levels only, no event rows), in the same run; samples/s
    and the ratio;
(b) evaluation from the database: `evaluate_site` over the same day stored in SQLite (and in
    PostgreSQL with --pg), into a fresh app database, against the plain way of doing it
    (read every rack row's judged columns with pandas.read_sql, then the plain comparison);
    samples/s and the ratio;
(c) `log-level-count` latency over 30 days of stored events (--events, default 1 M) per
    sample and per episode, through `count_levels` and through the HTTP route.

    .venv/bin/python bench/protection.py [--hours 24] [--events 1000000] [--repeat 3]
                                         [--db-dir DIR] [--pg postgresql+psycopg2://...]

Writing the site-2 day into SQLite takes a few minutes; with --db-dir the file is kept and
reused by later runs. Timings are the best of --repeat runs (the machine may be busy).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from services.core.appdb import metadata  # noqa: E402
from services.core.errors import EssError  # noqa: E402
from services.core.registry import Site, demo_sites, format_registry  # noqa: E402
from services.demo.writer import generate_day, write_demo  # noqa: E402
from services.protection.candidates import rack_plan  # noqa: E402
from services.protection.codes import RACK_FLAGS  # noqa: E402
from services.protection.evaluation import add_counts, evaluate_site, sync_reference_tables  # noqa: E402
from services.protection.events import count_levels  # noqa: E402
from services.protection.judging import judge_rack_rows  # noqa: E402
from services.protection.maps import load_protection_map  # noqa: E402
from services.protection.tables import protection_episode, protection_event  # noqa: E402
from services.storage.engines import dispose_engines  # noqa: E402
from services.storage.sitestore import SiteStore  # noqa: E402

DAY = date(2022, 9, 1)
CHECKS = (("RACK_MAX_CELL_VOLTAGE", ">", 4.05, 4.10), ("RACK_MIN_CELL_VOLTAGE", "<", 3.20, 3.00),
          ("RACK_CELL_VOLTAGE_GAP", ">", 0.3, 0.5), ("RACK_MAX_CELL_TEMPERATURE", ">", 50.0, 55.0),
          ("RACK_MIN_CELL_TEMPERATURE", "<", 0.0, -10.0), ("RACK_CELL_TEMPERATURE_GAP", ">", 20.0, 25.0))


def best(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return min(times), result


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} samples/s" if seconds > 0 else "n/a"


def plain_levels(frame: pd.DataFrame) -> int:
    """The plain vectorised pandas comparison: a level per sample and check, and the flags."""
    hits = 0
    for column, op, warning, fault in CHECKS:
        x = frame[column]
        beyond = (x > fault, x > warning) if op == ">" else (x < fault, x < warning)
        hits += int((np.select(beyond, [2, 1], 0) > 0).sum())
    current = frame["RACK_CURRENT"]
    for sign in (1, -1):
        x = (current * sign).where(current * sign > 0)
        hits += int((np.select([x > 120.0, x > 100.0], [2, 1], 0) > 0).sum())
    for flag in RACK_FLAGS:
        hits += int((frame[flag] != 0).sum())
    return hits


def bench_memory(site: Site, rack: pd.DataFrame, repeat: int) -> None:
    limits = load_protection_map(site).limits["rack"]
    n = len(rack)
    ours_s, events = best(repeat, lambda: judge_rack_rows(rack, limits))
    base_s, hits = best(repeat, lambda: plain_levels(rack))
    print(f"(a) judging in memory, {n:,} rack samples of site {site.id} ({len(site.rack_keys)} racks):")
    print(f"    judge_rack_rows: {ours_s:.3f} s, {rate(n, ours_s)} ({len(events):,} events)")
    print(f"    plain pandas comparison: {base_s:.3f} s, {rate(n, base_s)} ({hits:,} hits)")
    print(f"    ratio judge / plain: {base_s / ours_s:.2f}x")


def fresh_app_db(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    metadata.drop_all(engine, tables=[metadata.tables[t] for t in metadata.tables if t.startswith("protection_")])
    metadata.create_all(engine)
    return engine


def stored_site(site: Site, hours: float) -> SiteStore:
    """The site with the generated window stored (kept and reused when already there)."""
    store = SiteStore(site)
    try:
        table = store.table("rack")
        with store.engine.connect() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                return store
    except EssError:  # no table yet: generate below
        pass
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=site.tz)
    t0 = time.perf_counter()
    write_demo(site, start, start + timedelta(hours=hours), anchor=DAY, progress=True)
    print(f"    (wrote the window in {time.perf_counter() - t0:.0f} s)")
    return SiteStore(site)


def plain_end_to_end(store: SiteStore) -> int:
    """Read every rack row's judged columns with pandas, then the plain comparison."""
    table = store.table("rack")
    wanted = {"RACK_CURRENT", *(c for c, *_ in CHECKS), *RACK_FLAGS}
    cols = [c for c in table.columns if c.name.upper() in wanted]
    with store.engine.connect() as conn:
        frame = pd.read_sql(sa.select(*cols), conn)
    return plain_levels(frame)


def filter_only(store: SiteStore) -> int:
    """SELECT count(*) WHERE <the evaluator's candidate filter>: the scan cost alone."""
    plan = rack_plan(store.table("rack"), load_protection_map(store.site), store.dialect)
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(plan.table).where(plan.candidate)).scalar()
                   or 0)


def bench_database(label: str, store: SiteStore, app_url: str, repeat: int) -> None:
    samples = 0

    def ours() -> None:
        nonlocal samples
        engine = fresh_app_db(app_url)
        summary = evaluate_site(engine, store)
        samples = sum(summary.samples.values())
        engine.dispose()

    ours_s, _ = best(repeat, ours)
    base_s, _ = best(repeat, lambda: plain_end_to_end(store))
    floor_s, _ = best(repeat, lambda: filter_only(store))
    print(f"(b) evaluation from {label}, {samples:,} samples (rack and bank rows):")
    print(f"    evaluate_site (filter in the database, numpy on candidates, events and episodes stored): "
          f"{ours_s:.2f} s, {rate(samples, ours_s)}")
    print(f"    plain: pandas.read_sql of the judged columns + plain comparison: {base_s:.2f} s, "
          f"{rate(samples, base_s)}")
    print(f"    ratio evaluate_site / plain: {base_s / ours_s:.2f}x")
    print(f"    the database's own scan with the candidate filter (count only, rack table): {floor_s:.2f} s, "
          f"{rate(samples, floor_s)} - the bound for any evaluator reading this database")


def fill_events(engine: sa.Engine, site_id: int, n_events: int, start: int, days: int = 30) -> None:
    """n_events over `days` days: bursts of one alarm per second (an episode each), random
    codes and levels; episodes written alongside."""
    rng = np.random.default_rng(7)
    sync_reference_tables(engine)
    burst = 120
    starts = np.sort(rng.integers(start, start + days * 86400 - burst, n_events // burst))
    codes, levels = rng.integers(1, 15, starts.size), rng.integers(1, 3, starts.size)
    racks = rng.integers(1, 10, starts.size)
    chunk = 100_000
    with engine.begin() as conn:
        rows = []
        for s, c, lv, r in zip(starts, codes, levels, racks, strict=True):
            for k in range(burst):
                rows.append({"timestamp": int(s) + k, "operating_site": site_id, "bank_id": 1, "rack_id": int(r),
                             "error_code": int(c), "level": int(lv), "source": "bms", "value": 4.1,
                             "description": "bench", "description_eng": "bench", "map_version": None})
            if len(rows) >= chunk:
                _insert(conn, site_id, rows)
                rows = []
        if rows:
            _insert(conn, site_id, rows)
        conn.execute(sa.insert(protection_episode), [
            {"operating_site": site_id, "bank_id": 1, "rack_id": int(r), "error_code": int(c), "level": int(lv),
             "source": "bms", "start_time": int(s), "end_time": int(s) + burst - 1, "peak_value": 4.1,
             "sample_count": burst, "is_open": False}
            for s, c, lv, r in zip(starts, codes, levels, racks, strict=True)])
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE protection_event"))
            conn.commit()


def _insert(conn: sa.Connection, site_id: int, rows: list[dict[str, Any]]) -> None:
    """Events and their per-minute counts, as the evaluator stores them."""
    conn.execute(sa.insert(protection_event), rows)
    add_counts(conn, site_id, pd.DataFrame(rows))


def bench_counts(label: str, site: Site, app_url: str, n_events: int, repeat: int, data_dir: Path | None) -> None:
    engine = fresh_app_db(app_url)
    start = int(datetime.combine(DAY, datetime.min.time(), tzinfo=site.tz).timestamp())
    t0 = time.perf_counter()
    fill_events(engine, site.id, n_events, start)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(protection_event)).scalar()
    print(f"(c) log-level-count over 30 days, {label} app database, {stored:,} events "
          f"(filled in {time.perf_counter() - t0:.0f} s):")
    end = start + 30 * 86400
    for width, per, rollup in ((86400, "samples", True), (3600, "samples", True), (86400, "episodes", True),
                               (86400, "samples", False)):
        times = []
        for _ in range(max(3, repeat)):
            t1 = time.perf_counter()
            rows = count_levels(engine, site.id, start, end, width, start, site.tz, per=per, rollup=rollup)
            times.append(time.perf_counter() - t1)
        how = "per-minute counts" if rollup and per == "samples" else "episodes" if per == "episodes" else \
            "counting the events (no per-minute counts)"
        print(f"    count_levels width {width} s per {per}, from {how}: median "
              f"{statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms ({len(rows)} rows)")
    if data_dir is not None:
        bench_route(site, engine, app_url, data_dir, repeat)
    engine.dispose()


def bench_route(site: Site, engine: sa.Engine, app_url: str, data_dir: Path, repeat: int) -> None:
    """The same through the HTTP route (Flask test client, no response cache hits)."""
    from app import create_app

    registry = data_dir / "bench_sites.toml"
    registry.write_text(format_registry([site]), encoding="utf-8")
    app = create_app(ESS_DATA_DIR=str(data_dir), ESS_REGISTRY=str(registry), ESS_APP_DB_URL=app_url,
                     ESS_LOG_LEVEL="WARNING")
    portal = app.extensions["ess"]
    evaluate_site(portal, portal.store(site.id))  # up to date: the route does not evaluate
    client = app.test_client()
    url = (f"/api/ess-feature/protectionmap/operating-sites/{site.id}/stats/log-level-count/"
           "?time-bucket-width=1days&start-time=2022-09-01&end-time=2022-10-01")
    times = []
    for i in range(max(5, repeat)):
        t0 = time.perf_counter()
        resp = client.get(f"{url}&level=1&_={i}" if i % 2 else f"{url}&_={i}")
        times.append(time.perf_counter() - t0)
        assert resp.status_code == 200, resp.get_data(as_text=True)
    print(f"    HTTP route (1days, per sample): median {statistics.median(times) * 1000:.0f} ms, "
          f"best {min(times) * 1000:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0, help="window from local midnight (default 24 = a day)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events over 30 days for (c) (default 1 M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is reported (default 3)")
    parser.add_argument("--db-dir", type=Path, help="folder for the SQLite files, kept and reused (default: temp)")
    parser.add_argument("--parts", default="abc", help="which parts to run (default abc)")
    parser.add_argument("--pg", help="PostgreSQL URL of a database for the same runs (schemas bench_site2 and "
                                     "bench_app are created in it)")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    db_dir = args.db_dir or Path(tempfile.mkdtemp(prefix="ess_bench_protection_"))
    db_dir.mkdir(parents=True, exist_ok=True)
    two = dataclasses.replace(demo_sites()[1], demo_anchor=DAY)
    try:
        lite = dataclasses.replace(two, database_url=f"sqlite:///{db_dir / 'bench_site2.sqlite'}")
        if "a" in args.parts:
            rack = generate_day(two, DAY, anchor=DAY)["rack"]
            rack = rack.assign(TIMESTAMP=(rack["TIMESTAMP"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1))
            bench_memory(two, rack, args.repeat)
            del rack
        if "b" in args.parts:
            bench_database("SQLite", stored_site(lite, args.hours), f"sqlite:///{db_dir / 'bench_app.sqlite'}",
                           args.repeat)
            if args.pg:
                pg_site = dataclasses.replace(two, database_url=args.pg, schema="bench_site2")
                bench_database("PostgreSQL", stored_site(pg_site, args.hours), _pg_schema_url(args.pg, "bench_app"),
                               args.repeat)
        if "c" in args.parts:
            stored_site(lite, args.hours)
            bench_counts("SQLite", lite, f"sqlite:///{db_dir / 'bench_app.sqlite'}", args.events, args.repeat, db_dir)
            if args.pg:
                bench_counts("PostgreSQL", lite, _pg_schema_url(args.pg, "bench_app"), args.events, args.repeat,
                             None)
    finally:
        dispose_engines()
        if args.db_dir is None:
            shutil.rmtree(db_dir, ignore_errors=True)
    return 0


def _pg_schema_url(url: str, schema: str) -> str:
    """A URL whose connections use `schema` (created if absent) as search path."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    raise SystemExit(main())
