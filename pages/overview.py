"""Overview: one card per site (the landing page)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from components import ids
from components.alerts import make_error_alert
from components.sites import make_site_card, make_site_grid
from pages._selection import get_portal
from services.analytics.summaries import get_lowest_sos
from services.core.access import may_read_raw
from services.core.errors import EssError, Unavailable, site_unavailable
from services.core.i18n import get_translator
from services.core.portal import Portal
from services.protection.reads import get_open_episodes
from services.telemetry.deid import drop_sensitive
from services.telemetry.discovery import list_sites
from services.telemetry.rows import make_selector
from services.telemetry.series import Series, get_series
from services.telemetry.snapshot import get_snapshot
from services.telemetry.timerange import TimeRange

dash.register_page(__name__, path="/", name="Overview", order=0, nav_key="nav_overview", title="ESS portal")


def layout(lang: str | None = None, **_query: str) -> html.Div:
    t = get_translator(lang or "en")
    return html.Div([
        html.H2(t("overview_title"), id=ids.OVERVIEW.title, className="h4"),
        html.P(t("overview_lead"), className="text-muted small"),
        dcc.Store(id=ids.OVERVIEW.state, data={"visit": lang is not None}),
        html.Div(id=ids.OVERVIEW_ALERT),
        dcc.Loading(html.Div(id=ids.OVERVIEW_CARDS, className="ess-min-h"), delay_show=250),
    ])


def get_soc_trend(portal: Portal, site: dict[str, Any]) -> Series | None:
    """Bank SoC (mean of the banks, 10-minute buckets) over the site's last day of data."""
    last = site["components"].get("bank", {}).get("last_timestamp")
    if not last:
        return None
    end = datetime.fromisoformat(last).astimezone(UTC) + timedelta(seconds=1)
    sel = make_selector(portal.store(site["id"]), "bank")
    return get_series(sel, TimeRange(end - timedelta(days=1), end), ["bank_soc"], max_points=150)


@callback(Output(ids.OVERVIEW_CARDS, "children"), Output(ids.OVERVIEW_ALERT, "children"),
          Input(ids.OVERVIEW.state, "data"), State(ids.LANG, "value"))
def update_cards(data: dict[str, Any], lang: str) -> tuple[Any, Any]:
    """Every site's card: discovery, one snapshot per site, and the safety/alarm summaries."""
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
                cards.append(make_site_card(s, view(get_snapshot(portal.store(s["id"]))), now, lang,
                                            safety=get_lowest_sos(portal.app_db, portal.registry.get_site(s["id"])),
                                            episodes=get_open_episodes(portal, s["id"]),
                                            trend=get_soc_trend(portal, s)))
            except Unavailable as exc:  # one lost site: its card says so, the others stay
                lost.append(exc)
                cards.append(make_site_card(s, None, now, lang, unreachable=True))
    except EssError as exc:
        return None, make_error_alert(exc, lang)
    return make_site_grid(cards), (make_error_alert(lost[0], lang) if lost else None)
