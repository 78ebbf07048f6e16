"""API benchmark (issue #3): CSV download throughput against the database's own export,
server memory during a full-day download, JSON page latency at any depth, and hourly
statistics over 30 days. Prints ratios against baselines measured in the same run.

    .venv/bin/python bench/api.py [--hours 24] [--stats-days 30] [--skip-pg]

Generates a site-2 day (17 racks, ~1.47 M rack rows at 24 h) into SQLite and PostgreSQL
(database `ess_bench`, recreated), starts the portal under gunicorn (1 worker) on
127.0.0.1, and measures over loopback only.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from services.core.registry import Bank, demo_sites, format_registry  # noqa: E402
from services.demo.writer import fill_site  # noqa: E402

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/ess_bench"
DAY = date(2022, 9, 1)
PORT = 8765


class NullSink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes | str) -> int:
        self.bytes += len(data)
        return len(data)


def recreate_pg() -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS ess_bench WITH (FORCE)"))
        conn.execute(sa.text("CREATE DATABASE ess_bench"))
    admin.dispose()


def generate(data_dir: Path, hours: int, stats_days: int, with_pg: bool) -> list:
    two = demo_sites()[1]
    tz = two.tz
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=tz)
    sites = [dataclasses.replace(two, database_url=f"sqlite:///{data_dir / 'site2.sqlite'}", demo_anchor=DAY)]
    month = dataclasses.replace(two, id=12, banks=(Bank(1, (1,)),), demo_anchor=DAY,
                                database_url=f"sqlite:///{data_dir / 'site12.sqlite'}")
    sites.append(month)
    if with_pg:
        recreate_pg()
        sites.append(dataclasses.replace(two, id=102, database_url=PG_URL, schema="site2", demo_anchor=DAY))
        sites.append(dataclasses.replace(month, id=112, database_url=PG_URL, schema="site12"))
    for site in sites:
        span = timedelta(days=stats_days) if site.id in (12, 112) else timedelta(hours=hours)
        t = time.perf_counter()
        fill_site(site, start, start + span, anchor=DAY)
        print(f"generated site {site.id} ({site.database_url.split(':')[0]}), {span}: {time.perf_counter() - t:.1f} s",
              flush=True)
    (data_dir / "sites.toml").write_text(format_registry(sites), encoding="utf-8")
    return sites


def start_server(data_dir: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ESS_DATA_DIR=str(data_dir), ESS_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-w", "1", "--threads", "4", "-b",
                             f"127.0.0.1:{PORT}", "--timeout", "600", "app:create_app()"], cwd=ROOT, env=env)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0]) if children else master


def download(url: str, pid: int) -> tuple[int, float, int, int]:
    """(bytes, seconds, rows, peak RSS growth in KB) of one streamed download."""
    base = rss_kb(pid)
    peak = [base]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    t = time.perf_counter()
    total, lines = 0, 0
    with urllib.request.urlopen(url, timeout=600) as resp:
        while chunk := resp.read(1 << 20):
            total += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - t
    done.set()
    return total, elapsed, lines - 1, peak[0] - base


def baseline_sqlite(path: Path, hours: int) -> tuple[int, float]:
    start = int(datetime.combine(DAY, datetime.min.time()).timestamp()) - 9 * 3600
    con = sqlite3.connect(path)
    t = time.perf_counter()
    cur = con.execute('SELECT * FROM rack WHERE "TIMESTAMP" >= ? AND "TIMESTAMP" < ? '
                      'ORDER BY "TIMESTAMP", "BANK_ID", "RACK_ID"', (start, start + hours * 3600))
    sink = io.StringIO()
    writer = csv.writer(sink)
    n = 0
    while rows := cur.fetchmany(5000):
        writer.writerows(rows)
        n += len(rows)
        sink.seek(0)
        sink.truncate()
    return n, time.perf_counter() - t


def baseline_pg(hours: int) -> tuple[int, float]:
    import psycopg2

    con = psycopg2.connect("host=127.0.0.1 user=postgres dbname=ess_bench")
    cur = con.cursor()
    start = "2022-09-01 00:00:00+09"
    end = (datetime(2022, 9, 1) + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S+09")
    sink = NullSink()
    t = time.perf_counter()
    cur.copy_expert(f"""COPY (SELECT * FROM site2.rack WHERE "TIMESTAMP" >= '{start}' AND "TIMESTAMP" < '{end}'
                    ORDER BY "TIMESTAMP", "BANK_ID", "RACK_ID") TO STDOUT WITH CSV HEADER""", sink)
    elapsed = time.perf_counter() - t
    con.close()
    return 86400 * 17 * hours // 24, elapsed


def page_latency(site: int, hours: int) -> dict[str, float]:
    end = (datetime(2022, 9, 1) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")
    url = (f"http://127.0.0.1:{PORT}/api/ess/operating-sites/{site}/banks/1/racks/1/"
           f"?start-time=2022-09-01T00:00:00&end-time={end}&page_size=1000")
    import json

    timings: list[float] = []
    while url:
        t = time.perf_counter()
        with urllib.request.urlopen(url) as resp:
            body = json.loads(resp.read())
        timings.append(time.perf_counter() - t)
        url = body["next"]
    n = len(timings)
    third = max(1, n // 3)
    return {"pages": n, "first_ms": 1000 * statistics.median(timings[:third]),
            "middle_ms": 1000 * statistics.median(timings[third:2 * third] or timings),
            "last_ms": 1000 * statistics.median(timings[2 * third:] or timings)}


def stats_latency(site: int, days: int) -> float:
    end = (datetime(2022, 9, 1) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
    url = (f"http://127.0.0.1:{PORT}/api/ess/operating-sites/{site}/banks/1/racks/1/stats/"
           f"?fields=rack_max_cell_voltage,rack_soc&agg=avg,min,max&time-bucket-width=1hour"
           f"&start-time=2022-09-01T00:00:00&end-time={end}&_={{}}")
    times = []
    for i in range(7):
        t = time.perf_counter()
        urllib.request.urlopen(url.format(i)).read()  # a distinct URL each time: no cache hit
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--stats-days", type=int, default=30)
    ap.add_argument("--skip-pg", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        generate(data, args.hours, args.stats_days, not args.skip_pg)
        server = start_server(data)
        try:
            pid = worker_pid(server.pid)
            end = (datetime(2022, 9, 1) + timedelta(hours=args.hours)).strftime("%Y-%m-%dT%H:%M:%S")
            for site, name in ((2, "SQLite"), (102, "PostgreSQL")):
                if site == 102 and args.skip_pg:
                    continue
                url = (f"http://127.0.0.1:{PORT}/api/ess/download/operating-sites/{site}/rack/"
                       f"?start-time=2022-09-01T00:00:00&end-time={end}")
                nbytes, secs, rows, growth = download(url, pid)
                base_rows, base_secs = baseline_sqlite(data / "site2.sqlite", args.hours) if site == 2 \
                    else baseline_pg(args.hours)
                ours, theirs = rows / secs, base_rows / base_secs
                print(f"{name}: CSV {rows:,} rows, {nbytes / 1e6:.0f} MB in {secs:.2f} s = {ours:,.0f} rows/s; "
                      f"database's own export {theirs:,.0f} rows/s; ratio {ours / theirs:.2f}; "
                      f"server RSS growth {growth / 1024:.1f} MB", flush=True)
                lat = page_latency(site, args.hours)
                print(f"{name}: JSON 1000-row pages over one rack ({lat['pages']} pages by cursor): p50 first "
                      f"{lat['first_ms']:.1f} ms, middle {lat['middle_ms']:.1f} ms, last {lat['last_ms']:.1f} ms",
                      flush=True)
                month_site = 12 if site == 2 else 112
                print(f"{name}: hourly stats over {args.stats_days} days of a rack (2 fields, avg/min/max): "
                      f"p50 {stats_latency(month_site, args.stats_days):.1f} ms", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
