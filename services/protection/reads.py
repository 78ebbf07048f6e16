"""Event reads for the routes and the pages. Each brings the sites' small backlog (live
rows) up to date first, in one place, so what a caller reads includes the newest rows; the
pages' reads raise NotComputed (what: events) while a site has never been evaluated."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from services.core.errors import NotComputed
from services.core.registry import Site
from services.protection.evaluation import get_watermark, refresh_site
from services.protection.events import EventFilter, count_levels, list_episodes, list_events
from services.storage.dialect import to_epoch
from services.telemetry.rows import Cursor, Page
from services.telemetry.series import choose_width
from services.telemetry.timerange import TimeRange, local_midnight_epoch

if TYPE_CHECKING:
    from services.core.portal import Portal

UTC = ZoneInfo("UTC")


def zones_of(portal: Portal) -> Callable[[int], ZoneInfo]:
    """Site id -> the site's zone (UTC for a site no longer registered)."""
    zones = {s.id: s.tz for s in portal.registry.sites}
    return lambda site_id: zones.get(site_id, UTC)


def refreshed(portal: Portal, site_ids: Iterable[int] | None = None) -> Engine:
    """The app database after judging each site's small backlog (every site for None)."""
    for site_id in portal.registry.site_ids if site_ids is None else site_ids:
        refresh_site(portal, site_id)
    return portal.app_db


def read_events(portal: Portal, f: EventFilter, *, page_size: int, page: int = 1, cursor: Cursor | None = None
                ) -> Page:
    """One page of events of the filter's sites, newest first, after a refresh."""
    return list_events(refreshed(portal, f.site_ids), f, zones_of(portal), page_size=page_size, page=page,
                       cursor=cursor)


def read_episodes(portal: Portal, f: EventFilter, *, is_open: bool | None, page_size: int, page: int = 1,
                  cursor: Cursor | None = None) -> Page:
    """One page of episodes of the filter's sites, newest start first, after a refresh."""
    return list_episodes(refreshed(portal, f.site_ids), f, zones_of(portal), is_open=is_open, page_size=page_size,
                         page=page, cursor=cursor)


def read_level_counts(portal: Portal, site: Site, tr: TimeRange, width_s: int, *, per: str = "samples",
                      f: EventFilter | None = None) -> list[dict[str, Any]]:
    """Events or episodes per bucket (from the site's local midnight) and level, after a refresh."""
    return count_levels(refreshed(portal, [site.id]), site.id, to_epoch(tr.start), to_epoch(tr.end), width_s,
                        local_midnight_epoch(tr, site.tz), site.tz, per=per, f=f)


# ----- the pages: a site never evaluated is "not computed yet" ------------------------------

def require_evaluated(portal: Portal, site_id: int) -> Engine:
    """The app database; NotComputed while no component of the site has been judged."""
    with portal.app_db.connect() as conn:
        if all(get_watermark(conn, site_id, comp) is None for comp in ("rack", "bank")):
            raise NotComputed(f"protection events of site {site_id} have not been computed yet", what="events")
    return portal.app_db


def get_open_episodes(portal: Portal, site_id: int) -> int | None:
    """Alarm episodes of the site that may still go on; None while never evaluated."""
    try:
        engine = require_evaluated(portal, site_id)
    except NotComputed:
        return None
    return int(list_episodes(engine, EventFilter(site_ids=(site_id,)), zones_of(portal), is_open=True,
                             page_size=1).count)


@dataclass
class EpisodeSummary:
    """A site's alarm episodes for the overview: open ones and those of the last
    `lookback_s` by level (1 warning, 2 fault), and the most severe recent ones."""

    open_by_level: dict[int, int]
    recent_by_level: dict[int, int]
    recent: list[dict[str, Any]] = field(default_factory=list)  # faults first, then newest first


def get_episode_summary(portal: Portal, site_id: int, end: int, lookback_s: int = 86400, limit: int = 3
                        ) -> EpisodeSummary | None:
    """Open episodes and episodes overlapping [end - lookback_s, end) by level, and up to
    `limit` of the latter (faults first, newest first), after a refresh; None while the
    site has never been evaluated."""
    refreshed(portal, [site_id])
    try:
        engine = require_evaluated(portal, site_id)
    except NotComputed:
        return None
    zones = zones_of(portal)
    recent = EventFilter(site_ids=(site_id,), start=end - lookback_s, end=end)
    open_by: dict[int, int] = {}
    recent_by: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for level in (2, 1):
        open_by[level] = int(list_episodes(engine, EventFilter(site_ids=(site_id,), level=level), zones,
                                           is_open=True, page_size=1).count)
        page = list_episodes(engine, replace(recent, level=level), zones, page_size=max(1, limit))
        recent_by[level] = int(page.count)
        rows += page.rows[:max(0, limit - len(rows))]
    return EpisodeSummary(open_by, recent_by, rows)


def get_recent_events(portal: Portal, site_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The newest events of a site, newest first, after a refresh."""
    refreshed(portal, [site_id])
    engine = require_evaluated(portal, site_id)
    return list(list_events(engine, EventFilter(site_ids=(site_id,)), zones_of(portal), page_size=limit).rows)


def get_events(portal: Portal, f: EventFilter, page: int, page_size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of one site's events matching the filter (newest first) and their total."""
    assert f.site_ids is not None and len(f.site_ids) == 1
    refreshed(portal, f.site_ids)
    engine = require_evaluated(portal, f.site_ids[0])
    result = list_events(engine, f, zones_of(portal), page_size=page_size, page=page)
    return list(result.rows), int(result.count)


def get_event_counts(portal: Portal, site: Site, tr: TimeRange | None, f: EventFilter, max_buckets: int
                     ) -> list[dict[str, Any]]:
    """Events per round bucket (at most `max_buckets`) and level over the range."""
    engine = require_evaluated(portal, site.id)
    if tr is None:
        raise NotComputed(f"protection events of site {site.id}: no range selected", what="events")
    width = choose_width(tr.seconds, max_buckets)
    return list(count_levels(engine, site.id, to_epoch(tr.start), to_epoch(tr.end), width,
                             local_midnight_epoch(tr, site.tz), site.tz, f=f))


def get_episodes(portal: Portal, f: EventFilter, limit: int = 500) -> list[dict[str, Any]]:
    """Episodes of one site overlapping the filter's range and matching it, newest first."""
    assert f.site_ids is not None and len(f.site_ids) == 1
    engine = require_evaluated(portal, f.site_ids[0])
    return list(list_episodes(engine, f, zones_of(portal), page_size=limit).rows)
