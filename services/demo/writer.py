"""Demo frames for a range and the write of a range through the site store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pandas as pd
from tqdm import tqdm

from services.core import catalogue
from services.core.registry import COMPONENTS, Site
from services.demo.columns import BUILDERS, make_frame
from services.demo.days import check_range, local_days, slice_range
from services.demo.model import simulate
from services.storage.rollups import catch_up
from services.storage.sitestore import SiteStore, WriteResult

# ----- public API ------------------------------------------------------------------------

def _resolve_anchor(site: Site, day: date, anchor: date | None) -> date:
    return anchor or site.demo_anchor or day


def generate_day(site: Site, day: date, *, seed: int = 7, anchor: date | None = None) -> dict[str, pd.DataFrame]:
    """Frames for the whole local day [00:00, 24:00) of `day` for each component of the site.

    Columns are exactly the catalogue columns of the site's variant, in order; TIMESTAMP is
    datetime64[ns, UTC]; rack rows are ordered by time, bank, rack. `anchor` (default:
    site.demo_anchor, else `day`) is the first day of the demo: anomalies are placed
    relative to it. Deterministic in (site, day, seed, anchor).
    """
    sim = simulate(site, day, seed, _resolve_anchor(site, day, anchor))
    return {comp: make_frame(sim, comp, site.column_sets[comp]) for comp in COMPONENTS if comp in site.column_sets}


def unmapped_columns(site: Site, day: date = date(2022, 9, 1)) -> dict[str, list[str]]:
    """Per component, the catalogue columns the generator has no model for (they are 0);
    empty for the demo sites' column sets."""
    sim = simulate(site, day, 7, day)
    out: dict[str, list[str]] = {}
    for comp, variant in site.column_sets.items():
        fields = catalogue.get_fields(comp, variant)
        known = BUILDERS[comp](sim, variant, fields).values
        out[comp] = [f.name for f in fields if f.kind != "timestamp" and f.name not in known]
    return out



def iter_frames(site: Site, start: datetime, end: datetime, *, seed: int = 7,
                anchor: date | None = None) -> Iterator[tuple[str, pd.DataFrame]]:
    """(component, frame) for each local day overlapping [start, end), sliced to the range.

    `anchor` defaults to site.demo_anchor, else the local date of `start`. Raises
    InvalidQuery for naive or empty ranges.
    """
    check_range(start, end)
    anchor = anchor or site.demo_anchor or start.astimezone(site.tz).date()
    for day in local_days(site, start, end):
        for comp, frame in generate_day(site, day, seed=seed, anchor=anchor).items():
            part = slice_range(frame, start, end)
            if len(part):
                yield comp, part


def _expected_rows(site: Site, start: datetime, end: datetime) -> int:
    seconds = int((end - start).total_seconds())
    per_second = len(site.rack_keys) * ("rack" in site.column_sets) + len(site.banks) * ("bank" in site.column_sets)
    per_second += ("pcs" in site.column_sets) + ("etc" in site.column_sets)
    return seconds * per_second


def write_demo(site: Site, start: datetime, end: datetime, *, seed: int = 7, anchor: date | None = None,
               progress: bool = True) -> dict[str, WriteResult]:
    """Create the site's tables and write generated data for [start, end) through the
    storage write path (upserts; empty tables are bulk-loaded and indexed at the end);
    returns per-component totals. A tqdm bar counts rows (off with progress=False)."""
    check_range(start, end)
    store = SiteStore(site)
    store.create_schema()
    results = {comp: WriteResult() for comp in COMPONENTS if comp in site.column_sets}
    with tqdm(total=_expected_rows(site, start, end), unit="rows", unit_scale=True, disable=not progress,
              desc=f"site {site.id}", leave=False) as bar, store.bulk_load():
        for comp, frame in iter_frames(site, start, end, seed=seed, anchor=anchor):
            results[comp].add(store.write_frame(comp, frame, progress=bar.update))
    return results


def fill_site(site: Site, start: datetime, end: datetime, *, seed: int = 7, anchor: date | None = None,
              progress: bool = False) -> SiteStore:
    """`write_demo` of [start, end) (anchor: site.demo_anchor) and every component's
    per-minute rollups brought up to date: a site ready to serve (tests, benchmarks)."""
    write_demo(site, start, end, seed=seed, anchor=anchor or site.demo_anchor, progress=progress)
    store = SiteStore(site)
    for component in site.column_sets:
        catch_up(store, component, create=True)
    return store
