"""Pure figure builders of the safety page. Inputs have the shapes of the analytics API
(the `/api/ess/stats/` routes' shapes): rows with `time` and values, as the services return them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from services.core.i18n import get_translator

SOS_WARNING = 0.8
SOS_UNSAFE = 0.8**4  # 0.4096
FACTORS = ("over_voltage", "under_voltage", "voltage_unbalance", "over_current", "over_temperature",
           "under_temperature", "temperature_unbalance")
CLASSES = ("negligible", "marginal", "neutral", "critical", "catastrophic")
CLASS_COLOURS = ("#2f9e44", "#94d82d", "#fcc419", "#f76707", "#c92a2a")
SOC_BANDS = tuple(f"{lo}-{lo + 10}" for lo in range(0, 100, 10))
_FACTOR_KEYS = {f"factor_{n}" for n in FACTORS} | {"factor_voltage_imbalance", "factor_temperature_imbalance"}


def sos_level(value: float | None) -> str:
    """safe / warning / unsafe (spec: ≥ 0.8 safe, ≥ ζ⁴ warning, else unsafe); nodata."""
    if value is None or np.isnan(value):
        return "nodata"
    tol = 1e-9  # 0.8**4 is 0.40960000000000013 in floating point
    return "safe" if value >= SOS_WARNING - tol else "warning" if value >= SOS_UNSAFE - tol else "unsafe"


def _wall(t: str) -> str:
    return str(t)[:19]


def make_sos_gauge(value: float | None, lang: str, title: str = "", lowest: float | None = None) -> go.Figure:
    """A 0–1 gauge of the newest SoS with the unsafe (< 0.4096), warning (< 0.8) and safe
    bands, and the lowest SoS of the shown range as a red mark on the dial. The rack and
    the level are written above the graph by the page (no title inside: it clipped)."""
    level = sos_level(value)
    colour = theme.SAFETY_COLOURS.get(level, theme.LEVEL_COLOURS["nodata"])
    gauge: dict[str, Any] = {
        "axis": {"range": [0, 1], "tickvals": [0, SOS_UNSAFE, SOS_WARNING, 1], "ticktext": ["0", "0.41", "0.8", "1"]},
        "bar": {"color": theme.INK, "thickness": 0.25},
        "steps": [{"range": [0, SOS_UNSAFE], "color": theme.rgba(theme.SAFETY_COLOURS["unsafe"], 0.35)},
                  {"range": [SOS_UNSAFE, SOS_WARNING], "color": theme.rgba(theme.SAFETY_COLOURS["warning"], 0.35)},
                  {"range": [SOS_WARNING, 1], "color": theme.rgba(theme.SAFETY_COLOURS["safe"], 0.35)}]}
    if lowest is not None:
        gauge["threshold"] = {"line": {"color": theme.SAFETY_COLOURS.get(sos_level(lowest), theme.INK), "width": 4},
                              "thickness": 0.9, "value": lowest}
    fig = go.Figure(go.Indicator(mode="gauge+number", value=value if value is not None else 0,
                                 number={"valueformat": ".3f", "font": {"color": colour, "size": 26}}, gauge=gauge,
                                 title={"text": title} if title else None))
    fig.update_layout(template=theme.TEMPLATE, height=150, margin={"l": 26, "r": 26, "t": 14 if not title else 40,
                                                                   "b": 4})
    return fig


def _bands(fig: go.Figure, row: int) -> None:
    for lo, hi, level in ((0, SOS_UNSAFE, "unsafe"), (SOS_UNSAFE, SOS_WARNING, "warning"), (SOS_WARNING, 1.0, "safe")):
        fig.add_hrect(y0=lo, y1=hi, fillcolor=theme.SAFETY_COLOURS[level], opacity=0.12, line_width=0, row=row, col=1,
                      exclude_empty_subplots=False)


def make_sos_figure(rows: Sequence[Mapping[str, Any]], lang: str) -> go.Figure:
    """SoS over time with its safety bands, and the seven factors below it."""
    t = get_translator(lang)
    times = [_wall(r["time"]) for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.45, 0.55])
    _bands(fig, 1)
    fig.add_trace(go.Scatter(x=times, y=[r.get("sos_score") for r in rows], name=t("sos"), mode="lines",
                             line={"color": theme.INK, "width": 1.5}), row=1, col=1)
    for i, name in enumerate(FACTORS):
        fig.add_trace(go.Scatter(x=times, y=[r.get(name) for r in rows], name=t(f"factor_{name}"), mode="lines",
                                 line={"color": theme.FACTOR_COLOURS[i], "width": 1.2}), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1, title_text=t("sos"))
    fig.update_yaxes(range=[0, 1.02], row=2, col=1, title_text="f")
    fig.update_layout(template=theme.TEMPLATE, height=500, hovermode="x unified",
                      legend={"y": -0.08, "yanchor": "top"}, margin={"t": 16})
    return theme.localize_figure(fig, lang)


def make_exsos_figure(rows: Sequence[Mapping[str, Any]], lang: str) -> go.Figure:
    """Integrated safety per window, and the five class degrees stacked below (class
    names matched case-insensitively: the service spells them `Negligible`, ...)."""
    t = get_translator(lang)
    times = [_wall(r["time"]) for r in rows]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.5, 0.5])
    fig.add_trace(go.Scatter(x=times, y=[r.get("integrated_safety") for r in rows], name=t("integrated_safety"),
                             mode="lines+markers", marker={"size": 4}, line={"color": theme.INK, "width": 1.4}),
                  row=1, col=1)
    for name, colour in zip(CLASSES, CLASS_COLOURS, strict=True):
        degrees = [{k.lower(): v for k, v in (r.get("membership_degree") or {}).items()} for r in rows]
        fig.add_trace(go.Bar(x=times, y=[d.get(name) for d in degrees], name=t(f"class_{name}"),
                             marker={"color": colour}), row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=2, col=1)
    fig.update_layout(template=theme.TEMPLATE, height=420, barmode="stack", bargap=0.05, hovermode="x unified")
    return theme.localize_figure(fig, lang)


def make_membership_figure(curves: Sequence[Mapping[str, Any]], lang: str,
                           detail: Mapping[str, Any] | None = None) -> go.Figure:
    """The membership curves of the inputs of one state (charge, discharge or rest; two
    inputs each), in the API's `static-chart-data` shape; `detail` (the newest window's
    `membership_degree_detail`) picks the state and marks its measured input values."""
    t = get_translator(lang)
    state = (detail or {}).get("state")
    chosen = [c for c in curves if state is None or c.get("state") == state] or list(curves)
    fig = make_subplots(rows=1, cols=max(1, len(chosen)), horizontal_spacing=0.1,
                        subplot_titles=[t(f"factor_{c.get('name', '').removesuffix('_safety')}")
                                        if f"factor_{c.get('name', '').removesuffix('_safety')}" in _FACTOR_KEYS
                                        else str(c.get("name", "")) for c in chosen])
    for k, curve in enumerate(chosen, start=1):
        points = curve.get("values") or []
        for name, colour in zip(CLASSES, CLASS_COLOURS, strict=True):
            fig.add_trace(go.Scatter(x=[p.get(f"{name}_x") for p in points], y=[p.get(f"{name}_y") for p in points],
                                     mode="lines", name=t(f"class_{name}"), line={"color": colour, "width": 1.5},
                                     legendgroup=name, showlegend=k == 1), row=1, col=k)
        value = (detail or {}).get(str(curve.get("input")))
        if value is not None:
            fig.add_vline(x=float(value), line={"color": theme.INK, "dash": "dot", "width": 1.2}, row=1, col=k)
        fig.update_xaxes(title_text=curve.get("unit") or None, row=1, col=k)
    fig.update_yaxes(range=[0, 1.05])
    fig.update_layout(template=theme.TEMPLATE, height=300, legend={"y": -0.3, "yanchor": "top"})
    fig.update_annotations(font_size=11)
    return fig


def make_sol_figure(rows: Sequence[Mapping[str, Any]], lang: str, today: date | None = None,
                    end_of_life: date | None = None, bank: int | None = None, show_forecast: bool = True
                    ) -> go.Figure:
    """Observed SoL of the bank (solid) and, with `show_forecast`, its forecast (dashed)
    with the interval and the expected end of life; a line at today. Without a forecast
    the x axis ends at the observed days (no ten-year empty axis)."""
    t = get_translator(lang)
    obs = [r for r in rows if r.get("observed")]
    fc = [r for r in rows if not r.get("observed")] if show_forecast else []
    fig = go.Figure()
    if fc:
        x = [str(r["date"]) for r in fc]
        fig.add_trace(go.Scatter(x=x, y=[r.get("top_limit_value") for r in fc], mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=[r.get("bottom_limit_value") for r in fc], mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor=theme.rgba(theme.SERIES[0], 0.15), name=t("interval")))
        fig.add_trace(go.Scatter(x=x, y=[r.get("value") for r in fc], mode="lines", name=t("forecast"),
                                 line={"color": theme.SERIES[0], "dash": "dash"}))
    fig.add_trace(go.Scatter(x=[str(r["date"]) for r in obs], y=[r.get("value") for r in obs],
                             mode="lines+markers" if len(obs) < 30 else "lines", marker={"size": 5},
                             name=t("sol_observed_bank", bank=bank) if bank is not None else t("observed"),
                             line={"color": theme.INK, "width": 1.6}))
    for moment, label in ((today, t("today")), (end_of_life if fc else None, t("end_of_life_short"))):
        if moment is not None:
            fig.add_vline(x=str(moment), line={"color": theme.MUTED, "dash": "dot", "width": 1})
            fig.add_annotation(x=str(moment), y=1, yref="paper", text=label, showarrow=False, yanchor="bottom",
                               font={"size": 11, "color": theme.MUTED})
    fig.update_yaxes(title_text="SoL (%)", range=[0, 105])
    fig.update_layout(template=theme.TEMPLATE, height=320, hovermode="x unified", showlegend=True)
    return theme.localize_figure(fig, lang)


def make_socp_heatmap(counts: Mapping[int, Mapping[int, int]], cells: int, flagged: Sequence[int],
                      lang: str) -> go.Figure:
    """Cell position × SoC band heatmap of how often each cell was the extreme one;
    flagged cells marked with a triangle above the map. `counts`: band index → cell → n."""
    t = get_translator(lang)
    z = np.zeros((len(SOC_BANDS), cells))
    for band, per_cell in counts.items():
        for cell, n in per_cell.items():
            if 1 <= int(cell) <= cells and 0 <= int(band) < len(SOC_BANDS):
                z[int(band), int(cell) - 1] = n
    fig = go.Figure(go.Heatmap(z=z, x=list(range(1, cells + 1)), y=[f"{b} %" for b in SOC_BANDS],
                               colorscale="Blues", colorbar={"title": {"text": t("count")}},
                               hovertemplate=t("cell") + " %{x} · %{y}: %{z}<extra></extra>"))
    if flagged:
        fig.add_trace(go.Scatter(x=list(flagged), y=[f"{SOC_BANDS[-1]} %"] * len(flagged), mode="markers",
                                 marker={"symbol": "triangle-down", "size": 11, "color": theme.LEVEL_COLOURS["fault"]},
                                 name=t("flagged_cells", cells=", ".join(map(str, flagged))), cliponaxis=False))
    fig.update_xaxes(title_text=t("cell"))
    fig.update_yaxes(title_text=t("soc_band"), automargin=True, title_standoff=10)
    fig.update_layout(template=theme.TEMPLATE, height=360, margin={"l": 96})
    return fig
