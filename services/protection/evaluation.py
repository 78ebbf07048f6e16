"""Incremental evaluation: watermarks, stored events and episodes, rewind and refresh."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.core.errors import EssError, Unavailable
from services.core.registry import Site
from services.protection.candidates import (
    ReadPlan,
    bank_plan,
    count_after,
    iter_windows,
    new_rows,
    rack_plan,
    read_candidates,
)
from services.protection.codes import BANK_CODE, EPISODE_KEY, ERROR_CODES, LEVELS, SOURCES
from services.protection.episodes import group_episodes
from services.protection.judging import finish_events, judge_bank_rows, judge_rack_rows
from services.protection.maps import ProtectionMap, load_protection_map
from services.protection.tables import (
    protection_episode,
    protection_error_code,
    protection_event,
    protection_event_count,
    protection_level,
    protection_watermark,
)
from services.storage.dialect import to_epoch, upsert
from services.storage.sitestore import SiteStore

if TYPE_CHECKING:
    from services.core.portal import Portal

log = logging.getLogger(__name__)


CHUNK_ROWS = 200_000  # rows per evaluation window (the window is this many seconds / entities)
READ_AHEAD = 2  # windows read concurrently with the judging of the previous one
ON_REQUEST_BACKLOG_S = 3600  # routes bring a site up to date themselves when it is at most this far behind
DEFAULT_GAP_S = 60


# ----- the app-database side ---------------------------------------------------------------------

_synced: weakref.WeakSet[Engine] = weakref.WeakSet()
_synced_lock = threading.Lock()


def sync_reference_tables(engine: Engine) -> None:
    """Make the error-code and level tables hold this module's rows (idempotent)."""
    with _synced_lock:
        if engine in _synced:
            return
        with engine.begin() as conn:
            for table, rows in ((protection_error_code, [
                    {"id": c.id, "description": c.description, "description_eng": c.description_eng}
                    for c in ERROR_CODES.values()]),
                    (protection_level, [{"id": i, "description": ko, "description_eng": en}
                                        for i, (ko, en) in LEVELS.items()])):
                have = {r.id: r for r in conn.execute(sa.select(table))}
                for row in rows:
                    if row["id"] not in have:
                        conn.execute(sa.insert(table).values(**row))
                    elif tuple(have[row["id"]])[1:] != (row["description"], row["description_eng"]):
                        conn.execute(sa.update(table).where(table.c.id == row["id"]).values(**row))
        _synced.add(engine)


class WatermarkMoved(EssError):
    """Another evaluator judged these rows first; this run stops without writing."""


def get_watermark(conn: Connection, site_id: int, component: str) -> int | None:
    w = protection_watermark.c
    return conn.execute(sa.select(w.last_timestamp).where(w.operating_site == site_id,
                                                          w.component == component)).scalar()


def _ensure_watermark(engine: Engine, site_id: int, component: str) -> int | None:
    with engine.begin() as conn:
        w = protection_watermark.c
        row = conn.execute(sa.select(w.last_timestamp).where(w.operating_site == site_id,
                                                             w.component == component)).first()
        if row is not None:
            return None if row[0] is None else int(row[0])
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(protection_watermark).values(
                    operating_site=site_id, component=component, last_timestamp=None, samples=0, events=0,
                    updated_at=int(time.time())))
        except sa.exc.IntegrityError:  # another evaluator created it
            pass
        value = get_watermark(conn, site_id, component)
        return None if value is None else int(value)


def _advance(conn: Connection, site_id: int, component: str, old: int | None, new: int, samples: int,
             events: int, map_version: str) -> None:
    w = protection_watermark.c
    same = w.last_timestamp.is_(None) if old is None else w.last_timestamp == old
    result = conn.execute(sa.update(protection_watermark).where(w.operating_site == site_id, w.component == component,
                                                                same).values(
        last_timestamp=new, samples=w.samples + samples, events=w.events + events, map_version=map_version,
        updated_at=int(time.time())))
    if result.rowcount != 1:
        raise WatermarkMoved(f"site {site_id} {component}: another evaluation advanced the watermark",
                             code="evaluation_conflict", status=409, title="Conflict")


def _codes_of(component: str) -> list[int]:
    return [BANK_CODE] if component == "bank" else [c for c in ERROR_CODES if c != BANK_CODE]


def _open_episodes(conn: Connection, site_id: int, component: str) -> pd.DataFrame:
    e = protection_episode.c
    rows = conn.execute(sa.select(e.id, e.bank_id, e.rack_id, e.error_code, e.level, e.source, e.start_time,
                                  e.end_time, e.peak_value, e.sample_count)
                        .where(e.operating_site == site_id, e.is_open.is_(True),
                               e.error_code.in_(_codes_of(component)))).all()
    columns = ["id", *EPISODE_KEY, "start_time", "end_time", "peak_value", "sample_count"]
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    return frame.astype({"peak_value": float}) if len(frame) else frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Driver-ready dicts: native Python values, NaN as NULL."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def store_window(conn: Connection, site_id: int, component: str, events: pd.DataFrame, map_version: str,
                 gap_s: int, watermark: int) -> tuple[int, int]:
    """Insert events, extend or open episodes and close the ones the next run cannot extend
    (their last event is more than gap_s before the next second after `watermark`)."""
    if len(events):
        threshold = events["source"] == "threshold"  # BMS events were judged by no map
        rows = events.assign(operating_site=site_id,
                             map_version=np.where(threshold, map_version, np.array(None, dtype=object)))
        conn.execute(sa.insert(protection_event), _records(rows))
        add_counts(conn, site_id, events)
        changes = group_episodes(events, _open_episodes(conn, site_id, component), gap_s)
        if len(changes.inserts):
            conn.execute(sa.insert(protection_episode),
                         _records(changes.inserts.assign(operating_site=site_id, is_open=True)))
        e = protection_episode.c
        for row in _records(changes.updates):
            conn.execute(sa.update(protection_episode).where(e.id == row["id"]).values(
                end_time=row["end_time"], peak_value=row["peak_value"], sample_count=row["sample_count"]))
        opened, extended = len(changes.inserts), len(changes.updates)
    else:
        opened = extended = 0
    e = protection_episode.c
    conn.execute(sa.update(protection_episode).where(
        e.operating_site == site_id, e.is_open.is_(True), e.error_code.in_(_codes_of(component)),
        e.end_time < watermark + 1 - gap_s).values(is_open=False))
    return opened, extended


COUNT_KEY = ["minute", "level", "error_code", "source", "bank_id", "rack_id"]


def add_counts(conn: Connection, site_id: int, events: pd.DataFrame) -> None:
    """Add events to the per-minute counts (upsert: a minute may span two windows)."""
    if not len(events):
        return
    counts = (events.assign(minute=events["timestamp"] // 60 * 60).groupby(COUNT_KEY).size()
              .rename("events").reset_index().assign(operating_site=site_id))
    insert = upsert(protection_event_count, conn.dialect.name)
    stmt = insert.on_conflict_do_update(
        index_elements=["operating_site", *COUNT_KEY],
        set_={"events": protection_event_count.c.events + insert.excluded.events})
    conn.execute(stmt, _records(counts))


# ----- evaluation --------------------------------------------------------------------------------

@dataclass
class EvaluationSummary:
    site_id: int
    samples: dict[str, int] = field(default_factory=dict)  # component -> rows judged
    events: dict[str, int] = field(default_factory=lambda: {"threshold": 0, "bms": 0})
    episodes_opened: int = 0
    episodes_extended: int = 0
    watermarks: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    def format_line(self) -> str:
        samples = ", ".join(f"{c} {n:,}" for c, n in self.samples.items()) or "nothing new"
        text = (f"site {self.site_id}: judged {samples} sample(s); {self.events['threshold']:,} threshold and "
                f"{self.events['bms']:,} BMS event(s); {self.episodes_opened:,} episode(s) opened, "
                f"{self.episodes_extended:,} extended ({self.seconds:.1f} s)")
        return text + (f" ({self.note})" if self.note else "")


def _engine_and_gap(target: Portal | Engine, gap_s: int | None) -> tuple[Engine, int]:
    """The app-database engine and the episode gap of a Portal or a bare Engine."""
    if isinstance(target, Engine):
        return target, DEFAULT_GAP_S if gap_s is None else gap_s
    return target.app_db, target.settings.episode_gap_s if gap_s is None else gap_s


def _plans(store: SiteStore, pmap: ProtectionMap) -> list[ReadPlan]:
    plans = []
    if "rack" in store.site.column_sets:
        plans.append(rack_plan(store.table("rack"), pmap, store.dialect))
    if "bank" in store.site.column_sets:
        plans.append(bank_plan(store.table("bank"), store.dialect))
    return plans


def _entities(site: Site, component: str) -> int:
    return len(site.rack_keys) if component == "rack" else len(site.banks)


def pending_samples(engine: Engine, store: SiteStore) -> int:
    """Rows the next evaluation of the site would judge (for progress bars)."""
    total = 0
    with engine.connect() as conn:
        marks = {c: get_watermark(conn, store.site.id, c) for c in ("rack", "bank")}
    for component in ("rack", "bank"):
        if component in store.site.column_sets:
            total += count_after(store, store.table(component), marks[component])
    return total


def evaluate_site(target: Portal | Engine, store: SiteStore, *, gap_s: int | None = None, chunk_rows: int = CHUNK_ROWS,
                  progress: Callable[[int], None] | None = None) -> EvaluationSummary:
    """Judge the site's rows newer than its watermarks and store events and episodes.

    `target` is a Portal (app database and ESS_EPISODE_GAP_S) or the app-database Engine.
    Each window commits on its own; a run interrupted half-way resumes where it stopped.
    Raises Unavailable when the site database is unreachable; stops early (with a note) when
    another evaluator advanced a watermark meanwhile.
    """
    engine, gap = _engine_and_gap(target, gap_s)
    began = time.perf_counter()
    site = store.site
    summary = EvaluationSummary(site.id)
    sync_reference_tables(engine)
    pmap = load_protection_map(site)
    try:
        for plan in _plans(store, pmap):
            _evaluate_component(engine, store, plan, pmap, gap, chunk_rows, summary, progress)
    except WatermarkMoved as exc:
        summary.note = exc.detail
    except sa.exc.OperationalError as exc:  # the site database or the app database
        raise Unavailable(f"evaluation of site {site.id} stopped: a database is unreachable or busy "
                          f"({type(exc.orig).__name__})", code="database_unavailable") from exc
    summary.seconds = time.perf_counter() - began
    return summary


def _evaluate_component(engine: Engine, store: SiteStore, plan: ReadPlan, pmap: ProtectionMap, gap: int,
                        chunk_rows: int, summary: EvaluationSummary,
                        progress: Callable[[int], None] | None) -> None:
    """Judge one component window by window; the next windows are read while this one is
    judged and stored (database reads release the GIL), the writes stay in order."""
    site, component = store.site, plan.component
    mark = _ensure_watermark(engine, site.id, component)
    summary.samples.setdefault(component, 0)
    span = new_rows(store, plan.table, mark)
    window_s = max(60, chunk_rows // max(1, _entities(site, component)))
    if span is not None:
        with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="ess-evaluate") as pool:
            queued: deque[tuple[int, int, Future[pd.DataFrame]]] = deque()
            for start, end, rows in iter_windows(store, plan.table, span.first, span.last, window_s):
                queued.append((end, rows, pool.submit(read_candidates, store, plan, start, end)))
                if len(queued) >= READ_AHEAD:
                    mark = _store_next(engine, site.id, plan, pmap, gap, mark, queued.popleft(), summary, progress)
            while queued:
                mark = _store_next(engine, site.id, plan, pmap, gap, mark, queued.popleft(), summary, progress)
    summary.watermarks[component] = mark


def _store_next(engine: Engine, site_id: int, plan: ReadPlan, pmap: ProtectionMap, gap: int, mark: int | None,
                item: tuple[int, int, Future[pd.DataFrame]], summary: EvaluationSummary,
                progress: Callable[[int], None] | None) -> int:
    """Judge one window's candidate rows and commit its events, episodes and watermark."""
    end, rows, future = item
    frame = future.result()
    component = plan.component
    events = (judge_rack_rows(frame, pmap.limits.get("rack", {})) if component == "rack"
              else finish_events(judge_bank_rows(frame)))
    new_mark = end - 1
    with engine.begin() as conn:
        opened, extended = store_window(conn, site_id, component, events, pmap.version, gap, new_mark)
        _advance(conn, site_id, component, mark, new_mark, rows, len(events), pmap.version)
    summary.samples[component] += rows
    for source in SOURCES:
        summary.events[source] += int((events["source"] == source).sum()) if len(events) else 0
    summary.episodes_opened += opened
    summary.episodes_extended += extended
    if progress:
        progress(rows)
    return new_mark


def evaluate_sites(portal: Portal, site_ids: Sequence[int] | None = None,
                   progress: Callable[[int], None] | None = None) -> list[EvaluationSummary]:
    """`evaluate_site` for each site (default: every registered site); for schedulers."""
    ids = list(site_ids) if site_ids else list(portal.registry.site_ids)
    return [evaluate_site(portal, portal.store(sid), progress=progress) for sid in ids]


def rewind_site(engine: Engine, site: Site, since: datetime, gap_s: int = DEFAULT_GAP_S) -> None:
    """Forget what was judged from `since` on (events, episodes, watermarks), so that the
    next evaluation judges those rows again: after loading older rows, or a new map.
    Episodes that began before `since` are cut back to their events before it, and those
    that rows from `since` on could extend are open again."""
    cut = to_epoch(since)
    e, ev, w = protection_episode.c, protection_event.c, protection_watermark.c
    sync_reference_tables(engine)
    minute = cut // 60 * 60
    c = protection_event_count.c
    with engine.begin() as conn:
        conn.execute(sa.delete(protection_event).where(ev.operating_site == site.id, ev.timestamp >= cut))
        conn.execute(sa.delete(protection_event_count).where(c.operating_site == site.id, c.minute >= minute))
        kept = conn.execute(sa.select(ev.timestamp, *[ev[k] for k in COUNT_KEY[1:]]).where(
            ev.operating_site == site.id, ev.timestamp >= minute)).all()
        add_counts(conn, site.id, pd.DataFrame.from_records(kept, columns=["timestamp", *COUNT_KEY[1:]]))
        conn.execute(sa.delete(protection_episode).where(e.operating_site == site.id, e.start_time >= cut))
        straddling = conn.execute(sa.select(e.id, *[e[k] for k in EPISODE_KEY], e.start_time).where(
            e.operating_site == site.id, e.end_time >= cut)).all()
        for row in straddling:
            _recount_episode(conn, site.id, int(row.id), dict(zip(EPISODE_KEY, row[1:6], strict=True)),
                             int(row.start_time), cut)
        conn.execute(sa.update(protection_episode).where(e.operating_site == site.id, e.end_time >= cut - gap_s)
                     .values(is_open=True))
        conn.execute(sa.update(protection_watermark).where(w.operating_site == site.id, w.last_timestamp >= cut)
                     .values(last_timestamp=cut - 1, updated_at=int(time.time())))


def _recount_episode(conn: Connection, site_id: int, episode_id: int, key: dict[str, Any], start_time: int,
                     cut: int) -> None:
    """Cut an episode back to its events before `cut` (count, last time, peak) and reopen it."""
    ev = protection_event.c
    peak = sa.func.min(ev.value) if ERROR_CODES[key["error_code"]].peak == "min" else sa.func.max(ev.value)
    n, last, top = conn.execute(sa.select(sa.func.count(), sa.func.max(ev.timestamp), peak).where(
        ev.operating_site == site_id, *[ev[k] == v for k, v in key.items()],
        ev.timestamp >= start_time, ev.timestamp < cut)).one()
    conn.execute(sa.update(protection_episode).where(protection_episode.c.id == episode_id).values(
        end_time=last, sample_count=n, peak_value=top, is_open=True))


def refresh_site(portal: Portal, site_id: int, max_backlog_s: int = ON_REQUEST_BACKLOG_S) -> bool:
    """Bring a site's events up to date before a request reads them, when it is at most
    `max_backlog_s` seconds of data behind (larger backlogs are the CLI's or a job's).
    Failures are logged, never raised: stored events are served either way."""
    try:
        store = portal.store(site_id)
        engine = portal.app_db
        with engine.connect() as conn:
            marks = {c: get_watermark(conn, site_id, c) for c in ("rack", "bank") if c in store.site.column_sets}
        spans = {c: new_rows(store, store.table(c), mark) for c, mark in marks.items()}
        for component, span in spans.items():
            if span is not None and span.last - (marks[component] or span.first) > max_backlog_s:
                return False
        if any(spans.values()):
            evaluate_site(portal, store)
        return True
    except (EssError, sa.exc.SQLAlchemyError) as exc:
        log.warning("protection events of site %s not refreshed: %s", site_id, exc)
        return False
