"""Explorer chart benchmark: one rack field over 1, 7 and 30 days of generated 1 Hz data.

For each span it calls the Explorer's chart callback as the server runs it (a Flask
request context, the page state as the URL gives it) and reports the server time and the
size of the figure JSON sent to the browser, per trace and per field; then, as the
baseline, the same field sent raw (every sample as one line): rows read, server time
(read + build + serialise) and JSON size. Targets: < 1 s and < 300 KB per trace.

    .venv/bin/python bench/ui.py [--days 30] [--data-dir /tmp/ess-bench-ui] [--field rack_max_cell_voltage]

The data (site 1 cut down to one bank with one rack, `--days` days ending on 2022-09-01,
with its per-minute rollups) is generated once into --data-dir and reused; the first run
takes several minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402

from services.core.registry import Bank, demo_sites, format_registry  # noqa: E402

LAST_DAY = date(2022, 9, 1)
SPANS_DAYS = (1, 7, 30)
TARGET_S = 1.0
TARGET_BYTES = 300_000


def prepare(data_dir: Path, days: int) -> Path:
    """Generate `days` days of one rack (and its bank, PCS, sensors) unless present."""
    from services.demo.writer import write_demo
    from services.storage.rollups import catch_up
    from services.storage.sitestore import SiteStore

    registry = data_dir / "sites.toml"
    marker = data_dir / f"generated-{days}d"
    if registry.exists() and marker.exists():
        return registry
    data_dir.mkdir(parents=True, exist_ok=True)
    base = demo_sites()[0]
    site = dataclasses.replace(base, banks=(Bank(1, (1,)),), database_url=f"sqlite:///{data_dir / 'site1.sqlite'}",
                               demo_anchor=LAST_DAY)
    first = LAST_DAY - timedelta(days=days - 1)
    print(f"generating {days} days of one rack into {data_dir} (once) ...", flush=True)
    t0 = time.perf_counter()
    for k in range(days):
        day = first + timedelta(days=k)
        start = datetime.combine(day, dtime(0), tzinfo=site.tz)
        write_demo(site, start, start + timedelta(days=1), seed=7, anchor=LAST_DAY, progress=False)
        print(f"  {day} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    store = SiteStore(site)
    for component in site.column_sets:
        catch_up(store, component, create=True)
    registry.write_text(format_registry([site]), encoding="utf-8")
    marker.write_text("ok", encoding="utf-8")
    print(f"generated in {time.perf_counter() - t0:.0f} s", flush=True)
    return registry


def figure_bytes(fig: Any) -> int:
    return len(pio.to_json(fig, validate=False).encode())


def trace_bytes(fig: Any) -> list[int]:
    return [len(pio.to_json(go.Figure(data=[t]), validate=False).encode()) for t in fig.data]


def time_chart(app: Any, state: Any, repeat: int) -> tuple[float, float, Any, str]:
    """First (cold) and median warm server time of the Explorer's chart callback."""
    from pages.explorer import update_chart

    times = []
    fig: Any = None
    caption = ""
    for _ in range(repeat + 1):
        with app.test_request_context("/_dash-update-component", method="POST"):
            t0 = time.perf_counter()
            fig, caption, alert = update_chart(state.to_store(), "en")
            times.append(time.perf_counter() - t0)
        assert alert is None, alert
    return times[0], statistics.median(times[1:]), fig, caption


def time_raw(app: Any, state: Any, field: str) -> tuple[int, float, int]:
    """Rows, server time and JSON bytes of sending every sample of the field."""
    from components.urlstate import get_time_range
    from services.telemetry.rows import iter_rows, make_selector, resolve_columns

    portal = app.extensions["ess"]
    store = portal.store(state.site)
    sel = make_selector(store, "rack", state.bank, state.rack)
    tr = get_time_range(state, store.site)
    t0 = time.perf_counter()
    columns = resolve_columns(sel, f"timestamp,{field}")
    xs: list[str] = []
    ys: list[float] = []
    tz = store.site.tz
    for chunk in iter_rows(sel, tr, columns, chunk_rows=100_000):
        xs += [r[0].astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S") for r in chunk]
        ys += [r[1] for r in chunk]
    fig = go.Figure(go.Scatter(x=xs, y=np.array(ys, dtype=float), mode="lines"))
    size = figure_bytes(fig)
    return len(xs), time.perf_counter() - t0, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=max(SPANS_DAYS))
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "ess-bench-ui"))
    parser.add_argument("--field", default="rack_max_cell_voltage")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline (slow at 30 days)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    registry = prepare(data_dir, args.days)

    from app import create_app
    from components.urlstate import ViewState

    app = create_app(ESS_DATA_DIR=str(data_dir), ESS_REGISTRY=str(registry), ESS_LOG_LEVEL="WARNING")
    end = datetime.combine(LAST_DAY + timedelta(days=1), dtime(0))
    rows = []
    for days in [d for d in SPANS_DAYS if d <= args.days]:
        start = end - timedelta(days=days)
        state = ViewState(1, 1, 1, "rack", (args.field,), start.strftime("%Y-%m-%dT%H:%M"),
                          end.strftime("%Y-%m-%dT%H:%M"))
        cold, warm, fig, caption = time_chart(app, state, args.repeat)
        per_trace = trace_bytes(fig)
        points = max(len(t.x) for t in fig.data)
        raw = (0, 0.0, 0) if args.no_raw else time_raw(app, state, args.field)
        rows.append((days, raw, cold, warm, points, len(fig.data), max(per_trace), figure_bytes(fig), caption))
        print(f"{days:>2} d done", flush=True)

    print()
    print(f"Explorer chart of {args.field}, one rack, SQLite, {args.repeat} warm calls (median)")
    print("| span | raw samples | raw: server time | raw: JSON | chart: points/trace | traces | chart: largest trace "
          "| chart: figure JSON | callback: first | callback: warm | targets (< 1 s, < 300 KB/trace) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for days, (n, raw_s, raw_b), cold, warm, points, traces, biggest, total, _caption in rows:
        ok = "met" if max(cold, warm) < TARGET_S and biggest < TARGET_BYTES else "MISSED"
        raw_cols = ("—", "—", "—") if not n else (f"{n:,}", f"{raw_s:.2f} s", f"{raw_b / 1e6:.1f} MB")
        print(f"| {days} d | {raw_cols[0]} | {raw_cols[1]} | {raw_cols[2]} | {points:,} | {traces} | "
              f"{biggest / 1e3:.0f} KB | {total / 1e3:.0f} KB | {cold * 1000:.0f} ms | {warm * 1000:.0f} ms | {ok} |")
    for days, *_rest, caption in rows:
        print(f"{days} d: {caption}")


if __name__ == "__main__":
    main()
