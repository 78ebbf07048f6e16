"""Alarms of one site: protection-map events (filters: level, error code, bank, rack,
text; newest first; paged), counts per bucket stacked by level, and episodes."""

from __future__ import annotations

import math
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from components import ids
from components.alarms import level_styles, make_counts_figure, make_episode_rows, make_event_rows
from components.alerts import make_error_alert, make_problems_alert
from components.controls import make_selection_bar
from components.tables import make_data_table
from components.theme import graph_config
from components.urlstate import ALL, Problem, ViewState, parse_view_state
from pages._selection import get_portal, register_selection_callbacks, site_and_range, with_default_range
from services.core.errors import EssError, NotComputed
from services.core.i18n import get_translator
from services.core.registry import Registry
from services.protection.events import EventFilter, check_filter_values
from services.protection.reads import get_episodes, get_event_counts, get_events
from services.storage.dialect import to_epoch

dash.register_page(__name__, path="/alarms", name="Alarms", order=5, nav_key="nav_alarms",
                   title="Alarms · ESS portal")

SIDS = ids.ALARMS
PAGE_SIZE = 25
MAX_COUNT_BARS = 120
EVENT_COLUMNS = ("time", "level", "code", "bank", "rack", "source", "value", "description")
EPISODE_COLUMNS = ("start", "end", "duration", "level", "code", "bank", "rack", "source", "peak", "samples",
                   "description", "explore")
COLUMN_KEYS = {"time": "col_time", "level": "col_level", "code": "col_code", "bank": "col_bank", "rack": "col_rack",
               "source": "col_source", "value": "col_value", "description": "col_description", "start": "col_start",
               "end": "col_end", "duration": "col_duration", "peak": "col_peak", "samples": "col_samples",
               "explore": "col_explore"}


def check_filters(state: ViewState) -> tuple[ViewState, list[Problem]]:
    """Level 1/2 and a numeric error code; anything else is reported and dropped."""
    problems = []
    if state.get("level") not in ("", "1", "2"):
        problems.append(Problem("level", state.get("level"), "problem_level"))
        state = state.with_extra(level=None)
    if state.get("code") and not state.get("code").isdigit():
        problems.append(Problem("code", state.get("code"), "problem_code"))
        state = state.with_extra(code=None)
    return state, problems


def _columns(names: tuple[str, ...], lang: str) -> list[dict[str, str]]:
    t = get_translator(lang)
    return [{"name": t(COLUMN_KEYS[n]), "id": n, **({"presentation": "markdown"} if n == "explore" else {})}
            for n in names]


def build(state: ViewState, registry: Registry | None, lang: str, top: list[Any]) -> html.Div:
    t = get_translator(lang)
    filters = dbc.Row([
        dbc.Col([dbc.Label(t("level"), className="small text-muted mb-1"),
                 dbc.Select(id=ids.ALARMS_LEVEL, size="sm", value=state.get("level") or ALL,
                            options=[{"label": t("level_all"), "value": ALL}, {"label": t("level_1"), "value": "1"},
                                     {"label": t("level_2"), "value": "2"}])], xs=6, md=2),
        dbc.Col([dbc.Label(t("error_code"), className="small text-muted mb-1"),
                 dbc.Input(id=ids.ALARMS_CODE, size="sm", value=state.get("code"), debounce=True, type="text")],
                xs=6, md=2),
        dbc.Col([dbc.Label(t("text_filter"), className="small text-muted mb-1"),
                 dbc.Input(id=ids.ALARMS_TEXT, size="sm", value=state.get("text"), debounce=True, type="text")],
                xs=12, md=4),
    ], className="g-2 mb-3")
    return html.Div([
        html.H2(t("alarms_title"), id=SIDS.title, className="h4"),
        html.P(t("alarms_lead"), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        make_selection_bar(SIDS, state, registry, lang),
        filters,
        dcc.Store(id=SIDS.state, data=state.to_store()),
        html.Div(id=ids.ALARMS_BODY),
        dbc.Card([dbc.CardHeader(t("counts"), className="fw-semibold"),
                  dbc.CardBody(dcc.Loading(html.Div(id=ids.ALARMS_COUNTS, className="ess-min-h-sm"),
                                           delay_show=250))], className="mb-3 shadow-sm"),
        dbc.Card([dbc.CardHeader(t("events"), className="fw-semibold"),
                  dbc.CardBody(dcc.Loading(make_data_table(ids.ALARMS_TABLE, page_size=PAGE_SIZE,
                                                           style_data_conditional=level_styles()),
                                           delay_show=250))], className="mb-3 shadow-sm"),
        dbc.Card([dbc.CardHeader(t("episodes"), className="fw-semibold"),
                  dbc.CardBody(dcc.Loading([html.Div(id=ids.ALARMS_EPISODES_ALERT),
                                            make_data_table(ids.ALARMS_EPISODES, page_size=PAGE_SIZE,
                                                            custom_paging=False,
                                                            style_data_conditional=level_styles())],
                                           delay_show=250))], className="mb-3 shadow-sm"),
    ])


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only: no data is read."""
    if lang is None:
        return build(ViewState(optional_ids=True), None, "en", [])
    try:
        registry = get_portal().registry
        state, problems = parse_view_state(query, registry, extra=("level", "code", "text"), optional_ids=True)
        state, more = check_filters(with_default_range(state))
    except EssError as exc:
        return build(ViewState(optional_ids=True), None, lang, [make_error_alert(exc, lang)])
    return build(state, registry, lang, [make_problems_alert(problems + more, lang)])


register_selection_callbacks(SIDS, extra=((ids.ALARMS_LEVEL, "level"), (ids.ALARMS_CODE, "code"),
                                          (ids.ALARMS_TEXT, "text")))


@callback(Output(ids.ALARMS_TABLE, "data"), Output(ids.ALARMS_TABLE, "columns"),
          Output(ids.ALARMS_TABLE, "page_count"), Output(ids.ALARMS_BODY, "children"),
          Input(SIDS.state, "data"), Input(ids.ALARMS_TABLE, "page_current"), State(ids.LANG, "value"))
def update_events(data: dict[str, Any], page_current: int | None, lang: str) -> tuple[Any, ...]:
    """One page of the events, newest first."""
    state = ViewState.from_store(data)
    if state.site is None:
        return [], [], 1, None
    try:
        events, total = get_events(get_portal(), event_filter(state), (page_current or 0) + 1, PAGE_SIZE)
    except NotComputed as exc:
        return [], _columns(EVENT_COLUMNS, lang), 1, make_error_alert(exc, lang)
    except EssError as exc:
        return [], [], 1, make_error_alert(exc, lang)
    alert = make_no_match_alert(state, lang) if total == 0 else None
    return (make_event_rows(events, lang), _columns(EVENT_COLUMNS, lang), max(1, math.ceil(total / PAGE_SIZE)),
            alert)


@callback(Output(ids.ALARMS_COUNTS, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_counts(data: dict[str, Any], lang: str) -> Any:
    """Events per bucket stacked by level."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    try:
        site, tr = site_and_range(state)
        rows = get_event_counts(get_portal(), site, tr, event_filter(state), MAX_COUNT_BARS)
    except NotComputed:
        return html.Div(get_translator(lang)("not_computed_short"), className="text-muted small")
    except EssError as exc:
        return make_error_alert(exc, lang)
    return dcc.Graph(figure=make_counts_figure(rows, lang, (state.start or "", state.end or "")),
                     config=graph_config(lang))


@callback(Output(ids.ALARMS_EPISODES, "data"), Output(ids.ALARMS_EPISODES, "columns"),
          Output(ids.ALARMS_EPISODES_ALERT, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_episodes(data: dict[str, Any], lang: str) -> tuple[Any, Any, Any]:
    """Episodes of the range and filters, with duration and peak."""
    state = ViewState.from_store(data)
    if state.site is None:
        return [], [], None
    try:
        episodes = get_episodes(get_portal(), event_filter(state))
    except EssError as exc:
        return [], _columns(EPISODE_COLUMNS, lang), make_error_alert(exc, lang)
    return make_episode_rows(state.site, episodes, lang), _columns(EPISODE_COLUMNS, lang), None


def make_no_match_alert(state: ViewState, lang: str) -> dbc.Alert:
    """No event: "none match these filters" when a filter is set (the data is there),
    "no alarm in this range" otherwise (a quiet range, not missing data)."""
    t = get_translator(lang)
    filtered = any(state.get(k) for k in ("level", "code", "text")) or state.bank is not None
    key = "no_events_match" if filtered else "no_events_in_range"
    return dbc.Alert(t(key), color="secondary", className="mb-3 py-2 small ess-alert code-no_events")


def event_filter(state: ViewState) -> EventFilter:
    """The page's filters (level, error code, bank, rack, text) over its site and range."""
    site, tr = site_and_range(state)
    code, level = state.get("code"), state.get("level")
    f = EventFilter(site_ids=(site.id,), start=None if tr is None else to_epoch(tr.start),
                    end=None if tr is None else to_epoch(tr.end), level=int(level) if level else None,
                    error_code=int(code) if code.isdigit() else None, bank_id=state.bank, rack_id=state.rack,
                    message=state.get("text") or None)
    check_filter_values(f.level, f.error_code, None, f.message)
    return f
