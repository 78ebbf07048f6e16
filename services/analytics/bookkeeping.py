"""Task bookkeeping of the analytics job: context, versions, watermarks and timing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.analytics import exsos as exsos_mod
from services.analytics import forecast as fc
from services.analytics import socp as socp_mod
from services.analytics import soh as soh_mod
from services.analytics import tables as st
from services.analytics.sos import (
    sos_parameters,
)
from services.analytics.tables import SITE_TABLES, state
from services.core.registry import Site
from services.protection.maps import load_protection_map
from services.storage.sitestore import SiteStore

log = logging.getLogger(__name__)


SOS_BUCKET_S = 10
WINDOW_S = exsos_mod.WINDOW_S
CHUNK_S = 3 * 3600
FORECAST_BLOCK_DAYS = 7  # issue days per grid read


@dataclass
class TaskReport:
    site_id: int
    task: str
    units: int = 0  # chunks, days or issue days processed
    rows: int = 0
    seconds: float = 0.0
    note: str = ""
    failed: bool = False


@dataclass
class TaskContext:
    engine: Engine
    store: SiteStore
    site: Site
    start: int | None
    end: int | None
    bar: Any
    versions: dict[str, str]
    first: int | None  # epoch s of the site's first rack row
    with_prophet: bool = True
    reports: list[TaskReport] = field(default_factory=list)

    @property
    def sid(self) -> int:
        return self.site.id

    @property
    def tz(self) -> str:
        return self.site.timezone

    def version(self, task: str) -> str:
        """The formula and map version a task's stored rows must carry."""
        return self.versions[task]


# ----- job state -------------------------------------------------------------------------

def get_state(engine: Engine, site_id: int, task: str) -> tuple[int, str] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(state.c.watermark, state.c.version)
                           .where(state.c.site_id == site_id, state.c.task == task)).first()
    return None if row is None else (int(row[0]), str(row[1]))


def set_state(conn: Connection, site_id: int, task: str, watermark: int, version: str) -> None:
    conn.execute(sa.delete(state).where(state.c.site_id == site_id, state.c.task == task))
    conn.execute(sa.insert(state).values(site_id=site_id, task=task, watermark=int(watermark), version=version,
                                         updated=int(time.time())))


def drop_site(engine: Engine, site_id: int) -> None:
    """Forget every stored analytics result and job state of a site."""
    with engine.begin() as conn:
        for table in SITE_TABLES:
            conn.execute(sa.delete(table).where(table.c.site_id == site_id))


# ----- task bookkeeping ------------------------------------------------------------------

TASK_TABLES: dict[str, tuple[sa.Table, ...]] = {
    "sos": (st.sos, st.sos_minute, st.exsos, st.socp_daily),
    "daily": (st.socp, st.soh),
    "sol": (st.sol, st.sol_fit),
    "forecast": (st.forecast, st.model_cache),
    "forecast_1d": (st.forecast_day,),
}


def task_versions(site: Site) -> dict[str, str]:
    """Each task's version; a task's version includes those of the tasks it reads from,
    so that recomputing one recomputes what depends on it (the SoS parameters come from
    the site's protection map: a new map means new SoS, ExSoS, SoCP and SoS forecasts)."""
    params = sos_parameters(load_protection_map(site))
    sos = f"{params.version};{exsos_mod.version(params)};{socp_mod.FORMULA_VERSION}"
    daily = f"{socp_mod.FORMULA_VERSION};{soh_mod.FORMULA_VERSION};{sos}"
    return {
        "sos": sos,
        "daily": daily,
        "sol": f"{soh_mod.FORMULA_VERSION};{daily}",
        "forecast": f"{fc.version()};{sos}",
        "forecast_1d": fc.version(),
    }


def resume_from(ctx: TaskContext, task: str) -> int | None:
    """The task's watermark, or None after wiping its rows when it has none or its
    version changed (everything is then recomputed)."""
    version = ctx.version(task)
    saved = get_state(ctx.engine, ctx.sid, task)
    if saved is not None and saved[1] == version:
        return saved[0]
    if saved is not None:
        log.info("site %s %s: version %s -> %s, recomputing", ctx.sid, task, saved[1], version)
    with ctx.engine.begin() as conn:
        for table in TASK_TABLES[task]:
            conn.execute(sa.delete(table).where(table.c.site_id == ctx.sid))
        conn.execute(sa.delete(st.state).where(st.state.c.site_id == ctx.sid, st.state.c.task == task))
    return None


@contextmanager
def timed(ctx: TaskContext, task: str) -> Iterator[TaskReport]:
    report = TaskReport(ctx.sid, task)
    t0 = time.perf_counter()
    try:
        yield report
    finally:
        report.seconds = time.perf_counter() - t0
        ctx.reports.append(report)


def json_value(value: Any) -> Any:
    """A JSON column's value (drivers return text on SQLite, objects on PostgreSQL)."""
    return json.loads(value) if isinstance(value, str) else value


def floor_to(x: int, step: int) -> int:
    return x - x % step


def ceil_to(x: int, step: int) -> int:
    return -(-x // step) * step


def local_midnight(epoch_s: int, tz: str) -> int:
    return fc.local_day_starts(epoch_s, epoch_s + 1, tz)[0]


def next_midnight(day_start: int, tz: str) -> int:
    """The local midnight after `day_start` (a local midnight): 23, 24 or 25 hours later."""
    return local_midnight(day_start + 26 * 3600, tz)
