"""Downloads: pick site, data types, range and raw or de-identified columns; see the
rows and size before starting; the browser then streams the CSV from the API."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from components import ids
from components.alerts import make_error_alert, make_problems_alert
from components.controls import make_selection_bar
from components.downloads import make_estimate_table
from components.links import make_download_url
from components.urlstate import ViewState, get_time_range, parse_view_state
from pages._selection import get_portal, has_route, register_selection_callbacks, with_default_range
from services.core.access import may_read_raw
from services.core.errors import EssError
from services.core.i18n import get_translator
from services.core.registry import COMPONENTS, Registry
from services.telemetry.rows import make_selector
from services.telemetry.series import estimate_download

dash.register_page(__name__, path="/downloads", name="Downloads", order=6, nav_key="nav_downloads",
                   title="Downloads · ESS portal")

SIDS = ids.DOWNLOADS
DI_PREFIX = "/api/ess/download/di/"


def build(state: ViewState, registry: Registry | None, lang: str, top: list[Any]) -> html.Div:
    t = get_translator(lang)
    site = next((s for s in (registry.sites if registry else ()) if s.id == state.site), None)
    types = [c for c in COMPONENTS if site is None or c in site.tables]
    chosen = [c for c in state.get("types", "rack").split(",") if c in types]
    # de-identified access: the raw choice is shown disabled, with a note
    raw = registry is None or may_read_raw(get_portal())
    note = None if raw else html.Div(t("scope_di_note"), className="alert alert-info py-2 small",
                                     id=ids.DOWNLOADS_SCOPE_NOTE)
    return html.Div([
        html.H2(t("downloads_title"), id=SIDS.title, className="h4"),
        html.P(t("downloads_lead"), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        note,
        make_selection_bar(SIDS, state, registry, lang, bank=False, rack=False),
        dbc.Row([
            dbc.Col([dbc.Label(t("data_types"), className="small text-muted mb-1"),
                     dbc.Checklist(id=ids.DOWNLOADS_TYPES, options=[{"label": t(f"component_{c}"), "value": c}
                                                                    for c in types], value=chosen, inline=True)],
                    md=7, className="mb-2"),
            dbc.Col([dbc.Label(t("mode"), className="small text-muted mb-1"),
                     dbc.RadioItems(id=ids.DOWNLOADS_MODE, options=[
                         {"label": t("mode_raw"), "value": "raw", "disabled": not raw},
                         {"label": t("mode_di"), "value": "di"}],
                         value=state.get("mode", "raw") if raw else "di", inline=True)], md=5, className="mb-2"),
        ], className="mb-2"),
        dcc.Store(id=SIDS.state, data=state.to_store()),
        dbc.Card([dbc.CardHeader(t("estimate"), className="fw-semibold"),
                  dbc.CardBody(dcc.Loading(html.Div(id=ids.DOWNLOADS_ESTIMATE, className="ess-min-h-sm"),
                                           delay_show=250))], className="shadow-sm"),
    ])


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only: no data is read."""
    if lang is None:
        return build(ViewState(), None, "en", [])
    try:
        registry = get_portal().registry
        state, problems = parse_view_state(query, registry, extra=("types", "mode"))
        state = with_default_range(state)
    except EssError as exc:
        return build(ViewState(), None, lang, [make_error_alert(exc, lang)])
    return build(state, registry, lang, [make_problems_alert(problems, lang)])


register_selection_callbacks(SIDS, pickers=("site",), extra=((ids.DOWNLOADS_TYPES, "types"),
                                                             (ids.DOWNLOADS_MODE, "mode")))


@callback(Output(ids.DOWNLOADS_ESTIMATE, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_estimate(data: dict[str, Any], lang: str) -> Any:
    """Rows and bytes per chosen data type (from the rollups), and the streamed-CSV links."""
    t = get_translator(lang)
    state = ViewState.from_store(data)
    types = [c for c in state.get("types", "rack").split(",") if c]
    if state.site is None or not state.start:
        return None
    if not types:
        return html.Div(t("choose_types"), className="text-muted small")
    di = state.get("mode") == "di" or not may_read_raw(get_portal())  # de-identified access: only /download/di/ links
    try:
        store = get_portal().store(state.site)
        tr = get_time_range(state, store.site)
        assert tr is not None
        estimates = {c: estimate_download(make_selector(store, c), tr) for c in types}
    except EssError as exc:
        return make_error_alert(exc, lang)
    urls = {c: make_download_url(state, component=c, deidentified=di) for c in types}
    note = [html.Div(t("di_unavailable"), className="alert alert-info py-2 small")] if di and not has_route(
        DI_PREFIX) else []
    return html.Div([*note, make_estimate_table(estimates, urls, lang, enabled=not note)])
