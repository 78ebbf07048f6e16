"""The analytics job: brings the stored indices and forecasts of each site up to date,
incrementally (`flask --app app ess analyze`, the demo command, and the app's optional
scheduler all call `analyze`).

Per site and in this order (each task keeps a watermark in `analytics_state`; a task whose
formula or protection-map version changed is recomputed from the start):

1. `sos`    the one pass over raw rack rows, in chunks of CHUNK_S up to the last complete
            10 minutes: SoS per sample → 10-s worst moments and 1-minute means, ExSoS per
            10 minutes, and the SoCP counts added to each day's totals.
2. `daily`  SoCP rows (1/7/30 days) and daily mean SoH per rack and bank (from the
            rollups), per complete local day.
3. `sol`    the SoL forecast per bank, refitted when a new day of SoH arrived.
4. `forecast`    10-minute forecasts issued every 10 minutes (after `sos`, which feeds the
                 SoS target), plus the observed values of earlier issues as they arrive.
5. `forecast_1d` the 1-day max-cell-voltage forecast, issued at each local midnight.

Nothing here fits a model inside a request: the API only reads what this job stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tqdm import tqdm

from services.analytics.bookkeeping import TaskContext, TaskReport, drop_site, task_versions
from services.analytics.forecast_tasks import run_forecast, run_forecast_1d
from services.analytics.index_tasks import run_daily, run_sol, run_sos
from services.analytics.inputs import raw_span
from services.core.errors import EssError
from services.core.portal import Portal
from services.storage.dialect import to_epoch
from services.storage.rollups import catch_up
from services.storage.sitestore import SiteStore

log = logging.getLogger(__name__)


# ----- the entry points ------------------------------------------------------------------

def analyze_site(engine: Engine, store: SiteStore, *, start: datetime | None = None, end: datetime | None = None,
                 progress: bool = False, rebuild: bool = False, with_prophet: bool = True) -> list[TaskReport]:
    """Bring every analytics task of one site up to date (see the module docstring).

    `start`/`end` limit the data analysed (naive datetimes are the site's local time);
    `with_prophet=False` leaves the Prophet forecasts out (tests, quick runs)."""
    site = store.site
    start = start.replace(tzinfo=site.tz) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=site.tz) if end is not None and end.tzinfo is None else end
    if rebuild:
        drop_site(engine, site.id)
    span = raw_span(store)
    with tqdm(total=0, disable=not progress, unit="step", leave=False) as bar:
        ctx = TaskContext(engine, store, site, None if start is None else to_epoch(start),
                   None if end is None else to_epoch(end), bar, task_versions(site),
                   None if span is None else span[0], with_prophet)
        if span is None:
            ctx.reports.append(TaskReport(site.id, "sos", note="no rack data"))
            return ctx.reports
        catch_up(store, "rack", create=True)
        if "bank" in site.column_sets:
            catch_up(store, "bank", create=True)
        done_to = run_sos(ctx, span[1])
        new_days = run_daily(ctx, done_to)
        run_sol(ctx, new_days)
        run_forecast(ctx, done_to)
        run_forecast_1d(ctx, done_to)
    return ctx.reports


def analyze(portal: Portal, site_ids: Sequence[int] | None = None, *, start: datetime | None = None,
            end: datetime | None = None, progress: bool = False, rebuild: bool = False, with_prophet: bool = True,
            on_site: Callable[[int, list[TaskReport]], None] | None = None) -> list[TaskReport]:
    """`analyze_site` for each site (default: every registered site). A site whose data
    cannot be analysed (EssError: missing columns, unreachable database, bad protection
    map; or any other error, logged with its trace) gets one report with `failed` set and
    the others still run. Every step commits its results with its watermark in one
    transaction, so a failure keeps what earlier steps stored and the next run resumes."""
    ids = list(site_ids) if site_ids else list(portal.registry.site_ids)
    reports: list[TaskReport] = []
    for sid in ids:
        try:
            part = analyze_site(portal.app_db, portal.store(sid), start=start, end=end, progress=progress,
                                rebuild=rebuild, with_prophet=with_prophet)
        except EssError as exc:
            log.error("analytics of site %s: %s", sid, exc.detail)
            part = [TaskReport(sid, "all", note=f"failed: {exc.detail}", failed=True)]
        except sa.exc.SQLAlchemyError as exc:
            log.error("analytics of site %s: a database is unreachable or refused a write: %s", sid,
                      str(exc).splitlines()[0])
            part = [TaskReport(sid, "all", note=f"failed: {type(exc).__name__}", failed=True)]
        except Exception as exc:  # a model bug must not stop the other sites; the trace is logged
            log.exception("analytics of site %s failed", sid)
            part = [TaskReport(sid, "all", note=f"failed: {type(exc).__name__}: {exc}", failed=True)]
        if on_site:
            on_site(sid, part)
        reports += part
    return reports


def summarise_reports(reports: Sequence[TaskReport]) -> list[str]:
    """One line per site and task for the CLI."""
    return [f"site {r.site_id} {r.task:<12} {r.units:>5} step(s) {r.rows:>9,} row(s) {r.seconds:8.1f} s"
            + (f"  ({r.note})" if r.note else "") for r in reports]
