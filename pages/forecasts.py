"""Forecasts of one rack: observed against each model 10 minutes ahead for max/min cell
voltage, max/min cell temperature and SoS, each with the backtest of its models over the
page's range (MASE against persistence, MAE and RMSE with units, the number of issue times;
"no model beats persistence here" where none does), and the 1-day forecast of max cell
voltage."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from components import ids
from components.alerts import make_error_alert, make_no_data_alert, make_problems_alert
from components.controls import make_selection_bar
from components.forecasts import (
    make_accuracy_table,
    make_backtest_note,
    make_day_ahead_figure,
    make_forecast_figure,
)
from components.theme import graph_config
from components.urlstate import ViewState, parse_view_state
from pages._selection import get_portal, register_selection_callbacks, site_and_range, with_default_range
from services.analytics.summaries import get_day_ahead, get_forecasts
from services.core.errors import EssError
from services.core.i18n import get_translator
from services.core.registry import Registry

dash.register_page(__name__, path="/forecasts", name="Forecasts", order=4, nav_key="nav_forecasts",
                   title="Forecasts · ESS portal")

SIDS = ids.FORECASTS
TARGETS = {"max_cell_voltage": "V", "min_cell_voltage": "V", "max_cell_temperature": "°C",
           "min_cell_temperature": "°C", "sos": ""}


def build(state: ViewState, registry: Registry | None, lang: str, top: list[Any]) -> html.Div:
    t = get_translator(lang)
    return html.Div([
        html.H2(t("forecasts_title"), id=SIDS.title, className="h4"),
        html.P(t("forecasts_lead"), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        make_selection_bar(SIDS, state, registry, lang),
        dcc.Store(id=SIDS.state, data=state.to_store()),
        dcc.Loading(html.Div(id=ids.FORECASTS_TARGETS, className="ess-min-h"), delay_show=250),
        dbc.Card([dbc.CardHeader(t("day_ahead"), className="fw-semibold"),
                  dbc.CardBody(dcc.Loading(html.Div(id=ids.FORECASTS_DAY, className="ess-min-h"), delay_show=250))],
                 className="mb-3 shadow-sm"),
    ])


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only: no data is read."""
    if lang is None:
        return build(ViewState(), None, "en", [])
    try:
        registry = get_portal().registry
        state, problems = parse_view_state(query, registry)
        state = with_default_range(state)
    except EssError as exc:
        return build(ViewState(), None, lang, [make_error_alert(exc, lang)])
    return build(state, registry, lang, [make_problems_alert(problems, lang)])


register_selection_callbacks(SIDS)


@callback(Output(ids.FORECASTS_TARGETS, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_targets(data: dict[str, Any], lang: str) -> Any:
    """One chart per target from the stored forecasts and backtests."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    t = get_translator(lang)
    try:  # the forecast task runs for the whole site: every target is computed, or none
        site, tr = site_and_range(state)
        engine = get_portal().app_db
        results = {target: get_forecasts(engine, site, state.bank, state.rack, tr, target) for target in TARGETS}
    except EssError as exc:
        return make_error_alert(exc, lang)
    cols = []
    for target, result in results.items():
        if not result.get("rows"):
            body: Any = make_no_data_alert(None, lang)
        else:
            accuracy = result.get("accuracy") or {}
            body = [dcc.Graph(figure=make_forecast_figure(result["rows"], accuracy, result.get("best"),
                                                          t(f"target_{target}"), TARGETS[target], lang),
                              config=graph_config(lang)),
                    *make_backtest_note(accuracy, (state.start or "", state.end or ""), lang),
                    make_accuracy_table(accuracy, result.get("best"), TARGETS[target], lang)]
        cols.append(dbc.Col(dbc.Card(dbc.CardBody(body), className="mb-3 shadow-sm", id=f"forecast-{target}"), xl=6))
    return dbc.Row(cols)


@callback(Output(ids.FORECASTS_DAY, "children"), Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_day_ahead(data: dict[str, Any], lang: str) -> Any:
    """The newest 1-day forecast of the range against what happened."""
    state = ViewState.from_store(data)
    if state.site is None:
        return None
    try:
        site, tr = site_and_range(state)
        result = get_day_ahead(get_portal().app_db, site, state.bank, state.rack, tr)
    except EssError as exc:
        return make_error_alert(exc, lang)
    if not result.get("row"):
        return make_no_data_alert(None, lang)
    return dcc.Graph(figure=make_day_ahead_figure(result["row"], "V", lang), config=graph_config(lang))
