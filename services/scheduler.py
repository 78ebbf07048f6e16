"""The app's scheduler: protection evaluation, then analytics, under a lease."""

from __future__ import annotations

import logging
import os
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.analytics import tables as st
from services.analytics.jobs import analyze
from services.core.errors import EssError
from services.core.portal import Portal

log = logging.getLogger(__name__)


# ----- the app's scheduler ---------------------------------------------------------------

LEASE_TASK = "_lease"


def _acquire(engine: Engine, owner: str, seconds: int) -> bool:
    """A lease in the app database, so that one process of many runs the job."""
    now = int(time.time())
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(st.state.c.watermark).where(st.state.c.site_id == 0,
                                                                     st.state.c.task == LEASE_TASK)).first()
            if row is not None and int(row[0]) > now:
                return False
            conn.execute(sa.delete(st.state).where(st.state.c.site_id == 0, st.state.c.task == LEASE_TASK))
            conn.execute(sa.insert(st.state).values(site_id=0, task=LEASE_TASK, watermark=now + seconds,
                                                    version=owner, updated=now))
        return True
    except sa.exc.IntegrityError:
        return False


def _release(engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(st.state).where(st.state.c.site_id == 0, st.state.c.task == LEASE_TASK,
                                               st.state.c.version == owner))


def run_scheduled_jobs(portal: Portal) -> None:
    """One scheduled round: protection-map evaluation of every site's new rows (a site that
    fails is logged and skipped), then `analyze` (which reports failed sites itself)."""
    from services.protection.evaluation import evaluate_site

    for site_id in portal.registry.site_ids:
        try:
            evaluate_site(portal, portal.store(site_id))
        except Exception:  # a site database away, a bad row: the other sites still run
            log.exception("protection evaluation of site %s failed", site_id)
    analyze(portal)


def start_scheduler(portal: Portal, interval_s: int, stop: threading.Event | None = None) -> threading.Thread:
    """Run `run_scheduled_jobs` (evaluation, then analytics) every `interval_s` seconds in a
    daemon thread (ESS_JOBS_INTERVAL_S); a lease lets one process of many run a round."""
    stop = stop or threading.Event()
    owner = f"{os.getpid()}-{threading.get_ident()}-{time.time_ns()}"

    def loop() -> None:
        while not stop.wait(interval_s):
            if not portal.has_registry() or not _acquire(portal.app_db, owner, max(3600, 2 * interval_s)):
                continue
            try:
                run_scheduled_jobs(portal)
            except EssError as exc:
                log.error("analytics job: %s", exc.detail)
            except Exception:  # keep the scheduler alive; the error is logged with its trace
                log.exception("analytics job failed")
            finally:
                _release(portal.app_db, owner)

    thread = threading.Thread(target=loop, name="ess-analytics", daemon=True)
    thread.start()
    return thread
