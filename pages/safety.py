"""Safety of one rack: SoS gauge and its seven factors, ExSoS with class degrees and
membership curves, SoC/SoH, SoL with its forecast and end of life, SoCP heatmap."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from components import ids
from components.alerts import make_error_alert, make_no_data_alert, make_problems_alert
from components.charts import make_series_figure
from components.controls import make_selection_bar
from components.safety import (
    make_exsos_figure,
    make_membership_figure,
    make_socp_heatmap,
    make_sol_figure,
    make_sos_figure,
    make_sos_gauge,
    sos_level,
)
from components.theme import graph_config
from components.urlstate import Problem, ViewState, get_time_range, parse_view_state
from pages._selection import get_portal, register_selection_callbacks, site_and_range, with_default_range
from services.analytics.summaries import (
    get_exsos,
    get_rack_lowest_sos,
    get_rack_sos,
    get_socp,
    get_sol,
    get_sol_fit,
    get_sos,
    sol_withheld,
)
from services.core.errors import EssError
from services.core.i18n import get_translator
from services.core.registry import Registry
from services.telemetry.rows import make_selector
from services.telemetry.series import get_series

dash.register_page(__name__, path="/safety", name="Safety", order=3, nav_key="nav_safety",
                   title="Safety · ESS portal")

SIDS = ids.SAFETY


def _section(title: str, id_: str) -> dbc.Card:
    return dbc.Card([dbc.CardHeader(title, className="fw-semibold"),
                     dbc.CardBody(dcc.Loading(html.Div(id=id_, className="ess-min-h"), delay_show=250))],
                    className="mb-3 shadow-sm")


def build(state: ViewState, registry: Registry | None, lang: str, top: list[Any]) -> html.Div:
    t = get_translator(lang)
    return html.Div([
        html.H2(t("safety_title"), id=SIDS.title, className="h4"),
        html.P(t("safety_lead"), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        make_selection_bar(SIDS, state, registry, lang),
        dcc.Store(id=SIDS.state, data=state.to_store()),
        _section(t("sos_title"), ids.SAFETY_SOS),
        dbc.Row([dbc.Col(_section(t("exsos_title"), ids.SAFETY_EXSOS), xl=12)]),
        dbc.Row([dbc.Col(_section(t("soc_soh_title"), ids.SAFETY_SOC_SOH), lg=6),
                 dbc.Col(_section(t("sol_title"), ids.SAFETY_SOL), lg=6)]),
        dbc.Card([dbc.CardHeader(t("socp_title"), className="fw-semibold"), dbc.CardBody([
            dbc.Row([
                dbc.Col([dbc.Label(t("socp_period"), className="small text-muted mb-1"),
                         dbc.Select(id=ids.SAFETY_PERIOD, size="sm", value=state.get("period", "1"),
                                    options=[{"label": t("period_n", n=n), "value": str(n)} for n in (1, 7, 30)])],
                        xs=6, md=2),
                dbc.Col([dbc.Label(t("status"), className="small text-muted mb-1"),
                         dbc.Select(id=ids.SAFETY_STATUS, size="sm", value=state.get("status", "0"),
                                    options=[{"label": t(name), "value": str(i)}
                                             for i, name in enumerate(("charge", "discharge", "rest"))])],
                        xs=6, md=2),
            ], className="g-2 mb-2"),
            dcc.Loading(html.Div(id=ids.SAFETY_SOCP, className="ess-min-h"), delay_show=250),
        ])], className="mb-3 shadow-sm"),
    ])


def check_socp_choice(state: ViewState) -> tuple[ViewState, list[Problem]]:
    """`period` 1/7/30 and `status` 0/1/2 (charge/discharge/rest); others reported and dropped."""
    problems = []
    for key, valid, reason in (("period", ("1", "7", "30"), "problem_period"), ("status", ("0", "1", "2"),
                                                                                 "problem_status")):
        if state.get(key) and state.get(key) not in valid:
            problems.append(Problem(key, state.get(key), reason))
            state = state.with_extra(**{key: None})
    return state, problems


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only: no data is read."""
    if lang is None:
        return build(ViewState(), None, "en", [])
    try:
        registry = get_portal().registry
        state, problems = parse_view_state(query, registry, extra=("period", "status"))
        state, more = check_socp_choice(with_default_range(state))
    except EssError as exc:
        return build(ViewState(), None, lang, [make_error_alert(exc, lang)])
    return build(state, registry, lang, [make_problems_alert(problems + more, lang)])


register_selection_callbacks(SIDS, extra=((ids.SAFETY_PERIOD, "period"), (ids.SAFETY_STATUS, "status")))


def _graph(fig: Any, lang: str) -> dcc.Graph:
    return dcc.Graph(figure=fig, config=graph_config(lang))


@callback(Output(ids.SAFETY_SOS, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_sos(data: dict[str, Any], lang: str) -> Any:
    """A gauge per rack of the bank (newest analysed 10 minutes of the range) and the
    SoS/factor series of the chosen rack."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    try:
        site, tr = site_and_range(state)
        engine = get_portal().app_db
        rows = get_sos(engine, site, state.bank, state.rack, tr)
        gauges = get_rack_sos(engine, site, state.bank, tr)
        lowest = get_rack_lowest_sos(engine, site, state.bank, tr)
    except EssError as exc:
        return make_error_alert(exc, lang)
    if not rows:
        return make_no_data_alert(None, lang)
    return html.Div([make_gauge_row(gauges, lowest, state.rack, lang), _graph(make_sos_figure(rows, lang), lang)])


def make_gauge_row(gauges: dict[int, float | None], lowest: dict[int, float], chosen: int | None,
                   lang: str) -> html.Div:
    """One gauge per rack: the newest SoS of the range (the dial and number) and the lowest
    of the range (a mark on the dial, and written under it), the level in words above."""
    t = get_translator(lang)
    cols = []
    for rack, value in gauges.items():
        low = lowest.get(rack)
        level = sos_level(value)
        head = html.Div([html.Span(t("rack_n", n=rack), className="fw-semibold me-1"),
                         html.Span(t(level) if level != "nodata" else t("level_nodata"),
                                   className=f"ess-gauge-level sos-{level}")], className="small text-center")
        foot = html.Div([html.Span(t("sos_lowest_in_range") + " "),
                         html.Span("—" if low is None else f"{low:.3f}",
                                   className=f"fw-semibold sos-{sos_level(low)}")],
                        className="small text-center text-muted")
        cols.append(dbc.Col(html.Div([head, dcc.Graph(figure=make_sos_gauge(value, lang, lowest=low),
                                                      config={"displayModeBar": False}), foot],
                                     className="ess-gauge" + (" ess-gauge-chosen" if rack == chosen else ""),
                                     id=f"safety-gauge-{rack}"), xs=6, md=4, xl=2))
    legend = html.Div(t("gauge_legend"), className="small text-muted mb-2")
    return html.Div([dbc.Row(cols, className="g-2 mb-1"), legend])


@callback(Output(ids.SAFETY_EXSOS, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_exsos(data: dict[str, Any], lang: str) -> Any:
    """ExSoS of the rack per 10-minute window, and the membership curves."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    try:
        site, tr = site_and_range(state)
        rows, curves = get_exsos(get_portal().app_db, site, state.bank, state.rack, tr)
    except EssError as exc:
        return make_error_alert(exc, lang)
    if not rows:
        return make_no_data_alert(None, lang)
    detail = rows[-1].get("membership_degree_detail")
    return dbc.Row([dbc.Col(_graph(make_exsos_figure(rows, lang), lang), lg=7),
                    dbc.Col(_graph(make_membership_figure(curves, lang, detail), lang), lg=5)])


@callback(Output(ids.SAFETY_SOC_SOH, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_soc_soh(data: dict[str, Any], lang: str) -> Any:
    """The BMS's SoC and SoH of the rack (downsampled like the explorer)."""
    state = ViewState.from_store(data)
    if state.site is None or not state.start:
        return make_no_data_alert(None, lang) if state.site is not None else None
    try:
        store = get_portal().store(state.site)
        sel = make_selector(store, "rack", state.bank, state.rack)
        tr = get_time_range(state, store.site)
        assert tr is not None
        series = get_series(sel, tr, ["rack_soc", "rack_soh"], max_points=600)
        meta = {f.api_name: f for f in store.fields("rack")}
    except EssError as exc:
        return make_error_alert(exc, lang)
    if series.points == 0:
        return make_no_data_alert(None, lang)
    return _graph(make_series_figure(series, meta, lang, x_range=(state.start, state.end or "")), lang)


@callback(Output(ids.SAFETY_SOL, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_sol(data: dict[str, Any], lang: str) -> Any:
    """SoL of the bank with its forecast band and the expected end of life."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    t = get_translator(lang)
    try:
        site, _tr = site_and_range(state)
        engine = get_portal().app_db
        rows, today, eol = get_sol(engine, site, state.bank)
        fit = get_sol_fit(engine, site, state.bank)
    except EssError as exc:
        return make_error_alert(exc, lang)
    if not rows:
        return make_no_data_alert(None, lang)
    withheld = sol_withheld(fit, sum(1 for r in rows if not r.get("observed")))
    notes = [html.Div(t("sol_per_bank", bank=state.bank), className="small text-muted")]
    if withheld is not None:
        key, values = withheld
        notes.append(dbc.Alert(t(key, **values), color="secondary", className="py-1 px-2 mb-1 small ess-sol-reason"))
    elif eol:
        notes.append(html.Div(t("eol_date", date=eol.isoformat()), className="small text-muted"))
    if fit.get("fitted_days") is not None:  # the analytics' own note (English) is the line's tooltip
        notes.append(html.Div(t("sol_fit", days=fit["fitted_days"], first=fit.get("first_date", "—"),
                                last=fit.get("last_date", "—")), className="small text-muted ess-sol-fit",
                              title=str(fit.get("note") or "")))
    if fit.get("note") and lang != "ko":
        notes.append(html.Div([html.Span(t("sol_api_note") + " "), html.Q(str(fit["note"]))],
                              className="small text-muted ess-sol-note"))
    figure = make_sol_figure(rows, lang, today, eol, bank=state.bank, show_forecast=withheld is None)
    return html.Div([_graph(figure, lang), *notes])


@callback(Output(ids.SAFETY_SOCP, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_socp(data: dict[str, Any], lang: str) -> Any:
    """Which cell keeps being the extreme one, per SoC band, with flagged cells."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    t = get_translator(lang)
    try:
        site, tr = site_and_range(state)
        counts, cells, flagged, day = get_socp(get_portal().app_db, site, state.bank, state.rack, tr,
                                               int(state.get("period", "1") or 1), int(state.get("status", "0") or 0))
    except EssError as exc:
        return make_error_alert(exc, lang)
    if not counts:
        return make_no_data_alert(None, lang)
    note = t("flagged_cells", cells=", ".join(map(str, flagged))) if flagged else t("no_flagged_cells")
    return html.Div([html.Div(t("socp_day", day=day), className="small text-muted"),
                     _graph(make_socp_heatmap(counts, cells, flagged, lang), lang), html.Div(note, className="small")])
