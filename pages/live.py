"""Live monitoring of one site: refreshed every few seconds from the site snapshot (one
query per refresh for the whole site, never one per rack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html

from components import ids
from components.alerts import make_error_alert, make_no_data_alert, make_problems_alert
from components.charts import make_series_figure
from components.controls import describe_fields, make_selection_bar
from components.live import (
    make_bank_tiles,
    make_event_list,
    make_rack_grid,
    make_room_panel,
    make_updated_text,
    newest_time,
)
from components.theme import graph_config
from components.urlstate import Problem, ViewState, parse_view_state
from pages._selection import get_portal, register_selection_callbacks
from services.core.access import may_read_raw
from services.core.errors import ConfigError, EssError, NotFound
from services.core.i18n import get_translator
from services.core.registry import Registry, Site
from services.protection.maps import Limit, load_protection_map
from services.protection.reads import get_recent_events
from services.telemetry.deid import drop_sensitive, list_public_fields
from services.telemetry.rows import make_selector
from services.telemetry.series import get_newest_time, get_series
from services.telemetry.snapshot import get_snapshot
from services.telemetry.timerange import TimeRange

dash.register_page(__name__, path="/live", name="Live", order=1, nav_key="nav_live", title="Live · ESS portal")

SIDS = ids.LIVE
REFRESH_S = 3
TREND_S = 900  # the trend chart shows the last 15 minutes of data
TREND_EVERY = 5  # ... and is redrawn on every 5th refresh (15 s)
TREND_FIELDS = ("rack_max_cell_voltage", "rack_min_cell_voltage", "rack_cell_voltage_gap", "rack_max_cell_temperature",
                "rack_min_cell_temperature", "rack_cell_temperature_gap", "rack_current", "rack_soc")


def _card(title: str, body_id: str) -> dbc.Card:
    return dbc.Card([dbc.CardHeader(title, className="fw-semibold"), dbc.CardBody(html.Div(id=body_id))],
                    className="mb-3 shadow-sm")


def build(state: ViewState, registry: Registry | None, lang: str, top: list[Any]) -> html.Div:
    t = get_translator(lang)
    return html.Div([
        html.Div([html.H2(t("live_title"), id=SIDS.title, className="h4 mb-0 me-3"),
                  html.Span([t("live_updated") + ": ", html.Span(id=ids.LIVE_UPDATED)], className="ess-updated")],
                 className="d-flex flex-wrap align-items-baseline mb-1"),
        html.P(t("live_lead", seconds=REFRESH_S), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        make_selection_bar(SIDS, state, registry, lang, bank=False, rack=False, time=False),
        dcc.Store(id=SIDS.state, data=state.to_store()),
        dcc.Interval(id=ids.LIVE_INTERVAL, interval=REFRESH_S * 1000, n_intervals=0),
        html.Div(id=ids.LIVE_DATA_ALERT),
        html.Div(id=ids.LIVE_BANKS),
        dbc.Row([
            dbc.Col(_card(t("live_racks"), ids.LIVE_GRID), lg=8),
            dbc.Col([_card(t("live_room"), ids.LIVE_ROOM), _card(t("live_events"), ids.LIVE_EVENTS)], lg=4),
        ]),
        dbc.Card([dbc.CardHeader(html.Div([
            html.Span(t("live_trend"), className="fw-semibold me-3"),
            dbc.Select(id=ids.LIVE_TREND_FIELD, size="sm", value=state.get("trend") or TREND_FIELDS[0],
                       options=[{"label": t(f"trend_{f}"), "value": f} for f in TREND_FIELDS],
                       style={"maxWidth": "16rem"}),
        ], className="d-flex align-items-center flex-wrap gap-2")),
            dbc.CardBody(dcc.Loading(html.Div(id=ids.LIVE_TREND, className="ess-min-h"), delay_show=400))],
            className="mb-3 shadow-sm"),
    ])


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only: no data is read."""
    if lang is None:
        return build(ViewState(), None, "en", [])
    try:
        registry = get_portal().registry
    except EssError as exc:
        return build(ViewState(), None, lang, [make_error_alert(exc, lang)])
    state, problems = parse_view_state(query, registry, extra=("trend",))
    if state.get("trend") and state.get("trend") not in TREND_FIELDS:
        problems.append(Problem("trend", state.get("trend"), "problem_field"))
        state = state.with_extra(trend=None)
    return build(state, registry, lang, [make_problems_alert(problems, lang)])


register_selection_callbacks(SIDS, pickers=("site",), time=False, extra=((ids.LIVE_TREND_FIELD, "trend"),))


@callback(Output(ids.LIVE_BANKS, "children"), Output(ids.LIVE_GRID, "children"), Output(ids.LIVE_ROOM, "children"),
          Output(ids.LIVE_UPDATED, "children"), Output(ids.LIVE_DATA_ALERT, "children"),
          Input(ids.LIVE_INTERVAL, "n_intervals"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def refresh(_n: int, data: dict[str, Any], lang: str) -> tuple[Any, ...]:
    """One snapshot of the whole site, judged against its protection map."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None, None, None, None, None
    portal = get_portal()
    try:
        store = portal.store(state.site)
        raw = may_read_raw(get_portal())
        snapshot = get_snapshot(store) if raw else drop_sensitive(get_snapshot(store))
        fields = [f for c in ("bank", "rack", "etc") if c in store.site.tables for f in store.fields(c)]
        units, labels = describe_fields(fields if raw else list_public_fields(fields), lang)
    except EssError as exc:
        return None, None, None, None, make_error_alert(exc, lang)
    limits, map_error = get_rack_limits(store.site)
    return (make_bank_tiles(snapshot, units, lang), make_rack_grid(snapshot, limits, units, lang),
            make_room_panel(snapshot.get("etc"), units, labels, lang),
            make_updated_text(newest_time(snapshot), datetime.now(UTC), lang),
            None if map_error is None else make_error_alert(map_error, lang))


def get_rack_limits(site: Site) -> tuple[dict[str, Limit], ConfigError | None]:
    """The site's rack limits; a map that cannot be used leaves the grid uncoloured and
    is shown as an alert (the values are still worth seeing)."""
    try:
        return load_protection_map(site).limits.get("rack", {}), None
    except ConfigError as exc:
        return {}, exc


@callback(Output(ids.LIVE_EVENTS, "children"), Input(ids.LIVE_INTERVAL, "n_intervals"), Input(SIDS.state, "data"),
          State(ids.LANG, "value"))
def refresh_events(_n: int, data: dict[str, Any], lang: str) -> Any:
    """The newest protection-map events of the site (issue 4's evaluator)."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    try:
        events = get_recent_events(get_portal(), state.site)
    except EssError as exc:
        return make_error_alert(exc, lang)
    return make_event_list(events, lang)


@callback(Output(ids.LIVE_TREND, "children"), Input(ids.LIVE_INTERVAL, "n_intervals"), Input(SIDS.state, "data"),
          State(ids.LANG, "value"))
def refresh_trend(n: int, data: dict[str, Any], lang: str) -> Any:
    """The last TREND_S of one rack field over all the site's racks (band: lowest to
    highest rack, line: their mean) with the protection map's limits of that field."""
    state = ViewState.from_store(data)
    if state.site is None or (ctx.triggered_id == ids.LIVE_INTERVAL and n % TREND_EVERY):
        return dash.no_update if state.site is not None else None
    field = state.get("trend") or TREND_FIELDS[0]
    t = get_translator(lang)
    try:
        store = get_portal().store(state.site)
        sel = make_selector(store, "rack")
        end = get_newest_time(sel) + timedelta(seconds=1)
        series = get_series(sel, TimeRange(end - timedelta(seconds=TREND_S), end), [field], max_points=180)
        meta = {f.api_name: f for f in store.fields("rack")}
    except NotFound:
        return make_no_data_alert(None, lang)
    except EssError as exc:
        return make_error_alert(exc, lang)
    limits, _error = get_rack_limits(store.site)
    fig = make_series_figure(series, meta, lang, limits=limits)
    fig.update_layout(height=300, showlegend=False)
    return html.Div([dcc.Graph(figure=fig, config=graph_config(lang)),
                     html.Div(t("live_trend_caption", minutes=TREND_S // 60), className="small text-muted")])
