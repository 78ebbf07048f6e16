"""Builders for the overview's site cards."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html

from components.formats import describe_code, format_age, format_measured
from components.links import make_episode_url
from components.safety import sos_level
from components.theme import SAFETY_COLOURS, SERIES, TEMPLATE, rgba
from services.analytics.summaries import SafetyOverview, SafetySummary
from services.core.i18n import get_translator, normalize_lang
from services.protection.reads import EpisodeSummary
from services.telemetry.series import Series


def _level_id(value: Any) -> int:
    return int(value.get("id", 0) if isinstance(value, Mapping) else value or 0)


def _fmt(value: Any, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{float(value):.{digits}f} {unit}"


def make_freshness(last: str | None, now: datetime, tz: str, stale_after_s: int, lang: str
                   ) -> tuple[dbc.Badge, html.Div]:
    """The header badge (`12 s ago` in green, `stale · 4 h ago` in red past the threshold)
    and the line under it: the newest row's site-local time with its zone."""
    t = get_translator(lang)
    if not last:
        return (dbc.Badge(t("no_data"), color="secondary", className="ms-auto"),
                html.Div(t("no_data"), className="small text-muted"))
    age = max((now - datetime.fromisoformat(last)).total_seconds(), 0.0)
    stale = age > stale_after_s
    ago = t("age_ago", age=format_age(age, lang))
    badge = dbc.Badge(t("stale_badge", age=ago) if stale else ago, color="danger" if stale else "success",
                      className="ms-auto ess-freshness" + (" ess-stale" if stale else ""),
                      title=t("stale_title", seconds=stale_after_s) if stale else "")
    line = html.Div(t("newest_row_at", time=last[:19].replace("T", " "), tz=tz), className="small text-muted")
    return badge, line


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


def _level_badge(level: str, lang: str) -> dbc.Badge:
    t = get_translator(lang)
    return dbc.Badge(t(level), color=SAFETY_COLOURS.get(level, "secondary"), className="ms-1")


def make_safety_block(safety: SafetyOverview | None, lang: str) -> html.Div:
    """SoS now (newest 10 minutes analysed) and the worst of the 24 h before, with its rack
    and minute: a fault yesterday afternoon stays on the card until it is 24 h old."""
    t = get_translator(lang)
    if safety is None:
        return html.Div([html.Span(t("sos_worst_24h") + ": ", className="fw-semibold"),
                         html.Span(t("not_computed_short"), className="text-muted fst-italic")], className="small mb-1")
    worst, now_ = safety.worst, safety.now

    def where(s: SafetySummary) -> str:
        return t("bank_rack", bank=s.bank, rack=s.rack)

    worst_line = html.Div([
        html.Span(t("sos_worst_24h") + ": ", className="fw-semibold"),
        *([html.Span(f"{worst.value:.3f}", className="fw-semibold ess-sos-worst"), _level_badge(worst.level, lang),
           html.Span(" " + where(worst) + " · " + (worst.time or "")[:16].replace("T", " "), className="text-muted")]
          if worst else [html.Span(t("no_data"), className="text-muted")]),
    ], className=f"small mb-1 ess-sos-line sos-{worst.level if worst else 'nodata'}")
    now_line = html.Div([
        html.Span(t("sos_now") + ": ", className="fw-semibold"),
        *([html.Span(f"{now_.value:.3f}"), _level_badge(now_.level, lang),
           html.Span(" " + t("lowest_of_racks", where=where(now_)), className="text-muted")]
          if now_ else [html.Span(t("no_data"), className="text-muted")]),
    ], className="small mb-1")
    return html.Div([worst_line, now_line], id="overview-sos")


def _counts(by_level: dict[int, int], lang: str) -> list[Any]:
    t = get_translator(lang)
    return [html.Span(t("n_faults", n=by_level.get(2, 0)), className="lvl-chip lvl-fault me-1" if by_level.get(2)
                      else "lvl-chip me-1 border"),
            html.Span(t("n_warnings", n=by_level.get(1, 0)), className="lvl-chip lvl-warning" if by_level.get(1)
                      else "lvl-chip border")]


def make_episode_item(site_id: int, e: Mapping[str, Any], lang: str) -> html.Li:
    """`fault · 09-02 13:43–13:48 · bank 1 · rack 3 · Rack over-voltage · peak 4.306 V · SoS 0.040`,
    linked to the Explorer at that moment."""
    t = get_translator(lang)
    level = "fault" if _level_id(e.get("level")) == 2 else "warning"
    code = e.get("error_code") or {}
    start, end = str(e.get("start", "")), str(e.get("end", ""))
    span = f"{start[5:16].replace('T', ' ')}–{end[11:16]}" + (" …" if e.get("open") else "")
    parts: list[Any] = [html.Span(t(f"level_{level}"), className=f"lvl-chip lvl-{level} me-1"),
                        html.Span(span, className="me-1 ess-num"),
                        html.Span(t("bank_rack", bank=e.get("bank_id"), rack=e.get("rack_id")) if e.get("rack_id")
                                  else t("bank_n", n=e.get("bank_id")), className="me-1 text-muted"),
                        html.Span(describe_code(code, lang), className="me-1")]
    peak = format_measured(code.get("id") if isinstance(code, Mapping) else None, e.get("peak_value"), e.get("unit"))
    if peak:
        parts.append(html.Span(t("peak_value", value=peak), className="me-1 text-muted"))
    if e.get("lowest_sos") is not None:
        low = float(e["lowest_sos"])
        parts.append(html.Span([html.Span("SoS ", className="text-muted"), html.Span(f"{low:.3f}",
                                                                                    className="fw-semibold")],
                               className=f"ess-episode-sos sos-{sos_level(low)}"))
    return html.Li(html.A(parts, href=make_episode_url(site_id, e), className="text-reset text-decoration-none",
                          title=t("episode_link_title")), className="small ess-episode")


def make_alarm_block(site_id: int, episodes: EpisodeSummary | None, lang: str) -> html.Div:
    """Open episodes and those of the last 24 h by level, and the most severe recent ones."""
    t = get_translator(lang)
    if episodes is None:
        return html.Div([html.Span(t("open_episodes") + ": ", className="fw-semibold"),
                         html.Span(t("not_computed_short"), className="text-muted fst-italic")], className="small")
    return html.Div([
        html.Div([html.Span(t("open_episodes") + ": ", className="fw-semibold me-1"),
                  *_counts(episodes.open_by_level, lang)], className="small mb-1"),
        html.Div([html.Span(t("episodes_24h") + ": ", className="fw-semibold me-1"),
                  *_counts(episodes.recent_by_level, lang)], className="small mb-1"),
        html.Ul([make_episode_item(site_id, e, lang) for e in episodes.recent],
                className="list-unstyled mb-0 ess-episode-list") if episodes.recent else None,
    ], id=f"overview-episodes-{site_id}")


def make_site_card(site: Mapping[str, Any], snapshot: Mapping[str, Any] | None, now: datetime, lang: str, *,
                   safety: SafetyOverview | None = None, episodes: EpisodeSummary | None = None,
                   trend: Series | None = None, unreachable: bool = False, stale_after_s: int = 120) -> dbc.Card:
    """One site's health at a glance: freshness (age, zone, stale past `stale_after_s`),
    the worst SoS of the last 24 h with its rack and time and the SoS now, open and recent
    episodes by level with the worst ones linked to the Explorer, bank SoC and power with
    the last day's SoC, and links into the pages. `safety`/`episodes` None = not computed
    yet; `unreachable`: the site's database cannot be reached, and the card says so."""
    t = get_translator(lang)
    ko = normalize_lang(lang) == "ko"
    racks = sum(len(b["racks"]) for b in site["banks"])
    last = site["components"].get("rack", {}).get("last_timestamp")
    banks = {b.get("bank_id"): b for b in (snapshot or {}).get("banks", []) if b}
    sid = site["id"]
    name, other = (site.get("name_ko") or site["name"], site["name"]) if ko else (site["name"], site.get("name_ko"))
    links = [("link_live", "/live"), ("link_explorer", "/explorer"), ("link_safety", "/safety"),
             ("link_alarms", "/alarms"), ("link_downloads", "/downloads")]
    badge, fresh_line = make_freshness(last, now, site.get("timezone", "UTC"), stale_after_s, lang)
    worst = safety.worst.level if safety and safety.worst else "safe"
    open_faults = episodes.open_by_level.get(2, 0) if episodes else 0
    state = "fault" if worst == "unsafe" or open_faults else "warning" if worst == "warning" or (
        episodes and (episodes.open_by_level.get(1) or episodes.recent_by_level.get(2))) else "ok"
    header = dbc.CardHeader([html.Span(f"{sid} · {name}", className="fw-semibold me-2"),
                             dbc.Badge(t("error_503"), color="danger", className="ms-auto") if unreachable
                             else badge], className="d-flex align-items-center")
    if unreachable:
        body = dbc.CardBody([html.Div(other or "", className="text-muted small mb-1"),
                             html.Div(t("hint_503"), className="small")])
    else:
        body = dbc.CardBody([
            html.Div(other or "", className="text-muted small"),
            fresh_line,
            html.Div(t("topology", banks=len(site["banks"]), racks=racks, cells=site["cells_per_rack"]),
                     className="small text-muted mb-2"),
            html.Div([make_safety_block(safety, lang)], className="mb-2"),
            html.Div([make_alarm_block(sid, episodes, lang)], className="mb-2"),
            html.Div([make_bank_line(banks.get(b["id"]), b["id"], lang) for b in site["banks"]], className="mb-1"),
            html.Div([html.Div(t("soc_trend"), className="small text-muted"),
                      dcc.Graph(figure=make_soc_sparkline(trend, lang), config={"displayModeBar": False},
                                className="ess-sparkline")] if trend is not None and trend.points else []),
        ])
    return dbc.Card([
        header, body,
        dbc.CardFooter([dbc.CardLink(t(key), href=f"{path}?site={sid}", className="small") for key, path in links],
                       className="d-flex flex-wrap gap-1"),
    ], className=f"h-100 shadow-sm ess-site-card ess-state-{'nodata' if unreachable else state}",
        id=f"site-card-{sid}")


def make_site_grid(cards: list[dbc.Card]) -> dbc.Row:
    """A responsive grid: one column on phones, two on tablets, three on wide screens."""
    return dbc.Row([dbc.Col(card, md=6, xl=4, className="mb-3") for card in cards])
