"""Generator and ingestion benchmark. Prints, for each chosen demo site:

(a) generation alone (the whole local day, all components), then generation + write of the
    window into a fresh SQLite file through `write_demo` (the demo's path), as rack rows/s,
    against a baseline measured in the same run: a plain SQLAlchemy executemany
    (`conn.execute(insert(table), list_of_dicts)`) of the same rack rows into a fresh table
    with the same definition; and the ratio;
(b) ingestion of the window's rack rows as a CSV export (lower-case headers, site-local
    naive timestamps) through `services.ingest.ingest_file`.

    .venv/bin/python bench/generate.py [--hours 2] [--sites 2] [--repeat 2] [--db-dir DIR]

`--hours 24` is the full day (site 2: 17 racks, ~1.47 M rack rows; a few minutes). The
default (2 hours of site 2, ~122 k rack rows) runs in about a minute. Nothing is written
outside --db-dir (default: a temporary folder, removed afterwards).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from services.core.registry import Site, demo_sites  # noqa: E402
from services.demo.writer import generate_day, iter_frames, write_demo  # noqa: E402
from services.storage.engines import dispose_engines  # noqa: E402
from services.storage.sitestore import SiteStore  # noqa: E402

DAY = date(2022, 9, 1)


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "n/a"


def bench_generation(site: Site, hours: float, db_dir: Path, repeat: int) -> None:
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=site.tz)
    end = start + timedelta(hours=hours)
    times = []
    for _ in range(repeat):  # best of `repeat`: the machine may be busy
        t0 = time.perf_counter()
        frames = generate_day(site, DAY, anchor=DAY)
        times.append(time.perf_counter() - t0)
    gen_s = min(times)
    total = sum(len(f) for f in frames.values())
    del frames
    print(f"site {site.id}: {len(site.rack_keys)} racks, {site.cells_per_rack} cells/rack, window {hours:g} h")
    print(f"  generation, whole day (best of {repeat}: {', '.join(f'{t:.2f}' for t in times)} s): {gen_s:.2f} s "
          f"for {total:,} rows, {_rate(total, gen_s)}")

    ours = dataclasses.replace(site, database_url=f"sqlite:///{db_dir / f'gen_site{site.id}.sqlite'}",
                               demo_anchor=DAY)
    t0 = time.perf_counter()
    results = write_demo(ours, start, end, progress=False)
    ours_s = time.perf_counter() - t0
    rack_rows = results["rack"].written
    all_rows = sum(r.written for r in results.values())
    print(f"  generate + write (write_demo, SQLite; generates whole days): {ours_s:.2f} s for {all_rows:,} rows "
          f"({rack_rows:,} rack rows): {_rate(rack_rows, ours_s)} rack rows, {_rate(all_rows, ours_s)} all rows")

    # the write alone, on the same rows, into another fresh file
    rack = next(f for c, f in iter_frames(ours, start, end) if c == "rack")
    alone = dataclasses.replace(ours, database_url=f"sqlite:///{db_dir / f'write_site{site.id}.sqlite'}")
    store = SiteStore(alone)
    store.create_schema()
    t0 = time.perf_counter()
    store.write_frame("rack", rack)
    write_s = time.perf_counter() - t0
    print(f"  write alone (SiteStore.write_frame, rack): {write_s:.2f} s, {_rate(len(rack), write_s)}")

    # baseline: plain SQLAlchemy executemany of the same rows into a fresh table
    engine = sa.create_engine(f"sqlite:///{db_dir / f'baseline_site{site.id}.sqlite'}")
    md = sa.MetaData()
    table = SiteStore(dataclasses.replace(ours, database_url=str(engine.url))).build_table("rack", md)
    md.create_all(engine)
    rows = rack.drop_duplicates(["TIMESTAMP", "BANK_ID", "RACK_ID"], keep="last")
    base_s = 0.0
    with engine.begin() as conn:  # one transaction; dicts built 50,000 at a time (memory), building not timed
        for lo in range(0, len(rows), 50_000):
            records = rows.iloc[lo:lo + 50_000].to_dict("records")
            for rec in records:
                rec["TIMESTAMP"] = int(rec["TIMESTAMP"].timestamp())
                if "RACK_MODULE_FAULT" in rec:
                    rec["RACK_MODULE_FAULT"] = json.loads(rec["RACK_MODULE_FAULT"])
            t0 = time.perf_counter()
            conn.execute(sa.insert(table), records)
            base_s += time.perf_counter() - t0
        t0 = time.perf_counter()
    base_s += time.perf_counter() - t0  # the commit
    engine.dispose()
    base_rate = len(rows) / base_s
    print(f"  baseline (SQLAlchemy executemany of list_of_dicts, rack): {base_s:.2f} s, {_rate(len(rows), base_s)}")
    print(f"  ratio generate+write / baseline: {(rack_rows / ours_s) / base_rate:.2f}x; "
          f"write alone / baseline: {(len(rack) / write_s) / base_rate:.2f}x")


def bench_ingestion(site: Site, hours: float, db_dir: Path) -> None:
    from services.ingest.loader import ingest_file

    start = datetime.combine(DAY, datetime.min.time(), tzinfo=site.tz)
    rack = next(f for c, f in iter_frames(site, start, start + timedelta(hours=hours), anchor=DAY) if c == "rack")
    csv_path = db_dir / f"{DAY:%Y%m%d}_rack.csv"
    out = rack.copy()
    out["TIMESTAMP"] = out["TIMESTAMP"].dt.tz_convert(site.tz).dt.strftime("%Y-%m-%d %H:%M:%S")
    out.columns = [c.lower() for c in out.columns]
    t0 = time.perf_counter()
    out.to_csv(csv_path, index=False)
    csv_s = time.perf_counter() - t0
    target = dataclasses.replace(site, database_url=f"sqlite:///{db_dir / f'ingest_site{site.id}.sqlite'}")
    SiteStore(target).create_schema()
    t0 = time.perf_counter()
    report = ingest_file(target, "rack", csv_path, progress=False)
    ingest_s = time.perf_counter() - t0
    size_mb = csv_path.stat().st_size / 1e6
    print(f"  ingestion of {csv_path.name} ({len(rack):,} rows, {size_mb:.0f} MB, written in {csv_s:.1f} s): "
          f"{ingest_s:.2f} s, {_rate(report.rows_read, ingest_s)} ({report.written:,} written, "
          f"{report.duplicates:,} duplicates)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=2.0, help="window from local midnight (default 2; 24 = a day)")
    parser.add_argument("--sites", default="2", help="comma list of demo site ids (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="generation runs; the best is reported (default 2)")
    parser.add_argument("--db-dir", type=Path, help="folder for the SQLite files and the CSV (default: temporary)")
    args = parser.parse_args(argv)
    if not 0 < args.hours <= 24:
        parser.error("--hours must be in (0, 24]")
    ids = {int(x) for x in args.sites.split(",") if x.strip()}
    sites = [s for s in demo_sites() if s.id in ids]
    if not sites:
        parser.error(f"no demo site among {args.sites!r} (demo sites: 1, 2, 3)")
    db_dir = args.db_dir or Path(tempfile.mkdtemp(prefix="ess_bench_gen_"))
    db_dir.mkdir(parents=True, exist_ok=True)
    try:
        for site in sites:
            bench_generation(site, args.hours, db_dir, args.repeat)
            bench_ingestion(site, args.hours, db_dir)
    finally:
        dispose_engines()
        if args.db_dir is None:
            shutil.rmtree(db_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
