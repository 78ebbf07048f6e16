"""Live mode: generated rows appended every second through the site store."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from services.core.errors import EssError, InvalidQuery
from services.core.registry import Site
from services.demo.writer import generate_day, local_days, slice_range
from services.storage.schema import time_column
from services.storage.sitestore import SiteStore

log = logging.getLogger(__name__)


# ----- live mode -------------------------------------------------------------------------

_CACHE_PER_SITE = 2
_cache: dict[tuple[Any, ...], OrderedDict[tuple[Any, ...], dict[str, pd.DataFrame]]] = {}
_cache_lock = threading.Lock()


def _site_key(site: Site) -> tuple[Any, ...]:
    return (site.id, site.timezone, site.banks, site.cells_per_rack, site.temperature_sensors_per_rack,
            tuple(sorted(site.column_sets.items())), site.demo_anchor)


def _cached_day(site: Site, day: date, seed: int, anchor: date | None) -> dict[str, pd.DataFrame]:
    """generate_day through a small LRU (2 days per site): live mode slices it every second."""
    skey, dkey = _site_key(site), (day, seed, anchor)
    with _cache_lock:
        days = _cache.setdefault(skey, OrderedDict())
        if dkey in days:
            days.move_to_end(dkey)
            return days[dkey]
    frames = generate_day(site, day, seed=seed, anchor=anchor)
    with _cache_lock:
        days[dkey] = frames
        while len(days) > _CACHE_PER_SITE:
            days.popitem(last=False)
    return frames


def _evict_before(site: Site, day: date) -> None:
    """Drop cached days of `site` before `day` (live mode no longer needs them)."""
    with _cache_lock:
        days = _cache.get(_site_key(site))
        if days:
            for key in [k for k in days if k[0] < day]:
                del days[key]


def _floor_second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


def _cached_range(site: Site, start: datetime, end: datetime, seed: int,
                  anchor: date | None) -> Iterator[tuple[str, pd.DataFrame]]:
    for day in local_days(site, start, end):
        for comp, frame in _cached_day(site, day, seed, anchor).items():
            part = slice_range(frame, start, end)
            if len(part):
                yield comp, part.copy() if part is frame else part


def live_rows(site: Site, at: datetime, *, seed: int = 7, anchor: date | None = None) -> dict[str, pd.DataFrame]:
    """The generated rows of the one second holding `at` (aware), per component; empty
    frames during the missing seconds. Cheap after the first call of a day (cached)."""
    if at.tzinfo is None:
        raise InvalidQuery("`at` must be an aware datetime", code="naive_datetime")
    start = _floor_second(at)
    day = start.astimezone(site.tz).date()
    out: dict[str, pd.DataFrame] = {}
    for comp, frame in _cached_day(site, day, seed, anchor).items():
        out[comp] = slice_range(frame, start, start + timedelta(seconds=1)).copy()
    return out


def newest_timestamp(site: Site) -> datetime | None:
    """Newest stored TIMESTAMP of the site's rack table (or its first component), aware."""
    store = SiteStore(site)
    comp = "rack" if "rack" in site.column_sets else next(iter(site.column_sets))
    table = store.table(comp)
    ts = time_column(table)
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(ts))).scalar()
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(int(value), tz=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _store_writer() -> Callable[[Site, str, pd.DataFrame], Any]:
    """Writes through each site's SiteStore, creating the tables on first use."""
    stores: dict[tuple[Any, ...], SiteStore] = {}

    def write(site: Site, component: str, frame: pd.DataFrame) -> Any:
        key = (site.id, site.database_url, site.schema)
        if key not in stores:
            store = SiteStore(site)
            store.create_schema()
            stores[key] = store
        return stores[key].write_frame(component, frame)

    return write


def run_live(sites: Iterable[Site], stop: threading.Event, *, seed: int = 7, anchor: date | None = None,
             write: Callable[[Site, str, pd.DataFrame], Any] | None = None,
             clock: Callable[[], datetime] | None = None, interval_s: float = 1.0,
             max_iterations: int | None = None, max_catchup_s: int = 3600,
             start_at: dict[int, datetime] | None = None) -> int:
    """Append generated rows every `interval_s` until `stop` is set (or `max_iterations`):
    each pass writes, for each site, every second after the last one written up to the
    clock's current second. The first pass starts after the newest stored timestamp (or
    `start_at[site.id]`), at most `max_catchup_s` back; otherwise at the current second.
    Write failures are logged and retried on the next pass. Returns the rows written."""
    clock = clock or (lambda: datetime.now(UTC))
    write = write or _store_writer()
    sites = list(sites)
    now = _floor_second(clock())
    last: dict[int, datetime] = {}
    for site in sites:
        newest = (start_at or {}).get(site.id)
        if newest is None:
            try:
                newest = newest_timestamp(site)
            except (EssError, sa.exc.SQLAlchemyError) as exc:
                log.warning("live: site %s has no readable data yet (%s)", site.id, exc)
        if newest is None or newest < now - timedelta(seconds=max_catchup_s):
            newest = now - timedelta(seconds=1)
        last[site.id] = _floor_second(newest)
    written = 0
    iterations = 0
    failing: set[int] = set()
    while not stop.is_set():
        now = _floor_second(clock())
        for site in sites:
            begin = last[site.id] + timedelta(seconds=1)
            if begin > now:
                continue
            try:
                for comp, frame in _cached_range(site, begin, now + timedelta(seconds=1), seed, anchor):
                    write(site, comp, frame)
                    written += len(frame)
                last[site.id] = now
                _evict_before(site, now.astimezone(site.tz).date())
            except (EssError, sa.exc.SQLAlchemyError) as exc:
                if site.id not in failing:  # once per failure streak, not every second
                    log.warning("live: writing site %s failed, retrying every second: %s", site.id, exc)
                failing.add(site.id)
            else:
                failing.discard(site.id)
        iterations += 1
        if max_iterations is not None and iterations >= max_iterations:
            break
        stop.wait(max(0.0, interval_s - (clock().microsecond / 1e6 if interval_s >= 1.0 else 0.0)))
    return written
