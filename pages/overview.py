"""Overview: fleet health at a glance, one card per site (the landing page), refreshed
every OVERVIEW_REFRESH_S seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from components import ids
from components.alerts import make_error_alert
from components.sites import make_site_card, make_site_grid
from pages._selection import get_portal
from services.analytics.summaries import get_lowest_sos_during, get_safety_overview
from services.core.access import may_read_raw
from services.core.errors import EssError, Unavailable, site_unavailable
from services.core.i18n import get_translator
from services.core.portal import Portal
from services.core.registry import Site
from services.protection.reads import EpisodeSummary, get_episode_summary
from services.storage.dialect import to_epoch
from services.telemetry.deid import drop_sensitive
from services.telemetry.discovery import list_sites
from services.telemetry.rows import make_selector
from services.telemetry.series import Series, get_series
from services.telemetry.snapshot import get_snapshot
from services.telemetry.timerange import TimeRange

dash.register_page(__name__, path="/", name="Overview", order=0, nav_key="nav_overview", title="ESS portal")


OVERVIEW_REFRESH_S = 30


def layout(lang: str | None = None, **_query: str) -> html.Div:
    t = get_translator(lang or "en")
    return html.Div([
        html.H2(t("overview_title"), id=ids.OVERVIEW.title, className="h4"),
        html.P(t("overview_lead", seconds=OVERVIEW_REFRESH_S), className="text-muted small"),
        dcc.Store(id=ids.OVERVIEW.state, data={"visit": lang is not None}),
        dcc.Interval(id=ids.OVERVIEW_INTERVAL, interval=OVERVIEW_REFRESH_S * 1000, n_intervals=0),
        html.Div(id=ids.OVERVIEW_ALERT),
        # a slow first load shows a spinner; a 30-second refresh replaces the cards in place
        dcc.Loading(html.Div(id=ids.OVERVIEW_CARDS, className="ess-min-h"), delay_show=1500),
    ])


def get_soc_trend(portal: Portal, site: dict[str, Any]) -> Series | None:
    """Bank SoC (mean of the banks, 10-minute buckets) over the site's last day of data."""
    last = site["components"].get("bank", {}).get("last_timestamp")
    if not last:
        return None
    end = datetime.fromisoformat(last).astimezone(UTC) + timedelta(seconds=1)
    sel = make_selector(portal.store(site["id"]), "bank")
    return get_series(sel, TimeRange(end - timedelta(days=1), end), ["bank_soc"], max_points=150)


def get_recent_episodes(portal: Portal, site: Site, last: str | None) -> EpisodeSummary | None:
    """Open episodes and those of the 24 h before the site's newest row, the worst of them
    with the lowest SoS of their rack while they lasted."""
    end = datetime.fromisoformat(last).astimezone(UTC) + timedelta(seconds=1) if last else datetime.now(UTC)
    summary = get_episode_summary(portal, site.id, to_epoch(end))
    if summary is None:
        return None
    for e in summary.recent:
        if e.get("rack_id"):
            e["lowest_sos"] = get_lowest_sos_during(portal.app_db, site, int(e["bank_id"]), int(e["rack_id"]),
                                                    to_epoch(datetime.fromisoformat(e["start"])),
                                                    to_epoch(datetime.fromisoformat(e["end"])))
    return summary


@callback(Output(ids.OVERVIEW_CARDS, "children"), Output(ids.OVERVIEW_ALERT, "children"),
          Input(ids.OVERVIEW.state, "data"), Input(ids.OVERVIEW_INTERVAL, "n_intervals"), State(ids.LANG, "value"))
def update_cards(data: dict[str, Any], _n: int, lang: str) -> tuple[Any, Any]:
    """Every site's card: discovery, one snapshot per site, the SoS and alarm summaries."""
    portal = get_portal()
    now = datetime.now(UTC)
    view = (lambda snap: snap) if may_read_raw(portal) else drop_sensitive  # de-identified access: no sensitive values
    try:
        sites = list_sites(portal)
        cards, lost = [], []
        for s in sites:
            try:
                if s.get("unavailable"):
                    raise site_unavailable(s['id'])
                site = portal.registry.get_site(s["id"])
                last = s["components"].get("rack", {}).get("last_timestamp")
                cards.append(make_site_card(s, view(get_snapshot(portal.store(s["id"]))), now, lang,
                                            safety=get_safety_overview(portal.app_db, site),
                                            episodes=get_recent_episodes(portal, site, last),
                                            trend=get_soc_trend(portal, s),
                                            stale_after_s=portal.settings.stale_after_s))
            except Unavailable as exc:  # one lost site: its card says so, the others stay
                lost.append(exc)
                cards.append(make_site_card(s, None, now, lang, unreachable=True))
    except EssError as exc:
        return None, make_error_alert(exc, lang)
    return make_site_grid(cards), (make_error_alert(lost[0], lang) if lost else None)
