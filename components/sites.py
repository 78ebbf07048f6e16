"""Builders for the overview's site cards."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html

from components.theme import SAFETY_COLOURS, SERIES, TEMPLATE, rgba
from services.analytics.summaries import SafetySummary
from services.core.i18n import get_translator, normalize_lang
from services.telemetry.series import Series

LIVE_WITHIN_S = 120


def format_age(seconds: float, lang: str) -> str:
    """`42 s`, `5 min`, `3 h`, `12 d`, `4.2 y` (Korean units in Korean)."""
    ko = normalize_lang(lang) == "ko"
    if seconds >= 365 * 86400:
        return f"{seconds / (365.25 * 86400):.1f}{'년' if ko else ' y'}"
    for size, en, kr in ((86400, " d", "일"), (3600, " h", "시간"), (60, " min", "분")):
        if seconds >= size:
            return f"{int(seconds // size)}{kr if ko else en}"
    return f"{int(seconds)}{'초' if ko else ' s'}"


def _fmt(value: Any, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{float(value):.{digits}f} {unit}"


def make_freshness_badge(last: str | None, now: datetime, lang: str) -> dbc.Badge:
    t = get_translator(lang)
    if not last:
        return dbc.Badge(t("no_data"), color="secondary", className="ms-2")
    age = (now - datetime.fromisoformat(last)).total_seconds()
    if age <= LIVE_WITHIN_S:
        return dbc.Badge(t("freshness_live"), color="success", className="ms-2")
    return dbc.Badge(t("freshness_age", age=format_age(age, lang)), color="light", text_color="secondary",
                     className="ms-2 border")


def make_bank_line(bank: Mapping[str, Any] | None, bank_id: int, lang: str) -> html.Div:
    """`Bank 1  [SoC bar]  SoC 45.2 % · power -120.0 kW`."""
    t = get_translator(lang)
    soc = None if bank is None else bank.get("bank_soc")
    power = None if bank is None else bank.get("bank_power")
    bar = dbc.Progress(value=float(soc or 0), className="ess-soc-bar flex-grow-1 mx-2", style={"height": "8px"})
    return html.Div([html.Span(t("bank_n", n=bank_id), className="small fw-semibold ess-bank-label"), bar,
                     html.Span(t("bank_soc_power", soc=_fmt(soc, "%"), power=_fmt(power, "kW")),
                               className="small text-nowrap")], className="d-flex align-items-center mb-1")


def make_soc_sparkline(series: Series, lang: str) -> go.Figure:
    """The site's bank SoC over its last day of data: a small filled line, no axes."""
    t = get_translator(lang)
    fs = series.fields[0]
    fig = go.Figure(go.Scatter(x=fs.time, y=fs.value, mode="lines", fill="tozeroy", line={"color": SERIES[0],
                                                                                           "width": 1.2},
                               fillcolor=rgba(SERIES[0], 0.12), hovertemplate="%{x}<br>SoC %{y:.1f} %<extra></extra>",
                               name=t("soc_trend")))
    fig.update_layout(template=TEMPLATE, height=64, margin={"l": 0, "r": 0, "t": 2, "b": 0}, showlegend=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[0, 100])
    return fig


def make_site_card(site: Mapping[str, Any], snapshot: Mapping[str, Any] | None, now: datetime, lang: str, *,
                   safety: SafetySummary | None = None, episodes: int | None = None,
                   trend: Series | None = None, unreachable: bool = False) -> dbc.Card:
    """One site: name, topology, freshness, latest bank SoC and power with the last day's
    SoC, lowest SoS, open episodes (None = not computed yet) and links into the pages.
    `unreachable`: the site's database cannot be reached; the card says so instead."""
    t = get_translator(lang)
    ko = normalize_lang(lang) == "ko"
    racks = sum(len(b["racks"]) for b in site["banks"])
    last = site["components"].get("rack", {}).get("last_timestamp")
    first = site["components"].get("rack", {}).get("first_timestamp")
    banks = {b.get("bank_id"): b for b in (snapshot or {}).get("banks", []) if b}
    sid = site["id"]
    name, other = (site.get("name_ko") or site["name"], site["name"]) if ko else (site["name"], site.get("name_ko"))
    not_computed = html.Span(t("not_computed_short"), className="text-muted fst-italic")
    sos = not_computed if safety is None else html.Span(
        [f"{safety.value:.3f} ", dbc.Badge(t(safety.level), color=SAFETY_COLOURS.get(safety.level, "secondary")),
         html.Span(" " + t("bank_rack", bank=safety.bank, rack=safety.rack), className="text-muted")])
    links = [("link_live", "/live"), ("link_explorer", "/explorer"), ("link_safety", "/safety"),
             ("link_alarms", "/alarms"), ("link_downloads", "/downloads")]
    return dbc.Card([
        dbc.CardHeader([html.Span(f"{sid} · {name}", className="fw-semibold"),
                        dbc.Badge(t("error_503"), color="danger", className="ms-auto") if unreachable
                        else make_freshness_badge(last, now, lang)],
                       className="d-flex align-items-center"),
        dbc.CardBody([html.Div(other or "", className="text-muted small mb-1"),
                      html.Div(t("hint_503"), className="small")]) if unreachable else dbc.CardBody([
            html.Div(other or "", className="text-muted small mb-1"),
            html.Div(t("topology", banks=len(site["banks"]), racks=racks, cells=site["cells_per_rack"]),
                     className="small mb-1"),
            html.Div(t("data_span", first=(first or "—")[:19].replace("T", " "), last=(last or "—")[:19].replace(
                "T", " ")), className="small text-muted mb-2"),
            html.Div([make_bank_line(banks.get(b["id"]), b["id"], lang) for b in site["banks"]], className="mb-1"),
            html.Div([html.Div(t("soc_trend"), className="small text-muted"),
                      dcc.Graph(figure=make_soc_sparkline(trend, lang), config={"displayModeBar": False},
                                className="ess-sparkline")] if trend is not None and trend.points else [],
                     className="mb-2"),
            html.Div([html.Span(t("lowest_sos") + ": ", className="small fw-semibold"),
                      html.Span(sos, className="small")], className="mb-1"),
            html.Div([html.Span(t("open_episodes") + ": ", className="small fw-semibold"),
                      html.Span(not_computed if episodes is None else str(episodes), className="small")]),
        ]),
        dbc.CardFooter([dbc.CardLink(t(key), href=f"{path}?site={sid}", className="small") for key, path in links],
                       className="d-flex flex-wrap gap-1"),
    ], className="h-100 shadow-sm ess-site-card", id=f"site-card-{sid}")


def make_site_grid(cards: list[dbc.Card]) -> dbc.Row:
    """A responsive grid: one column on phones, two on tablets, three on wide screens."""
    return dbc.Row([dbc.Col(card, md=6, xl=4, className="mb-3") for card in cards])
