"""Pure figure builders for time series (Explorer, SoC/SoH): a row per unit, the
bucket min–max as a band and the mean as a line, so every spike stays visible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from services.core.catalogue import Field
from services.core.i18n import get_translator, normalize_lang
from services.telemetry.series import Series

ROW_HEIGHT_PX = 260


def make_empty_figure(message: str = "", height: int = 320) -> go.Figure:
    """A blank chart carrying a message (used next to an alert, never alone)."""
    fig = go.Figure()
    fig.update_layout(template=theme.TEMPLATE, height=height, xaxis={"visible": False}, yaxis={"visible": False})
    if message:
        fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                           font={"color": theme.MUTED, "size": 14})
    return fig


def _floats(values: Sequence[float | None] | None) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values or ()], dtype=float)


def describe_width(width_s: int, lang: str) -> str:
    """`1 min`, `30 s`, `2 h`, `1 d` (Korean: `1분`, `30초`, `2시간`, `1일`)."""
    ko = normalize_lang(lang) == "ko"
    for size, en, kr in ((86400, " d", "일"), (3600, " h", "시간"), (60, " min", "분")):
        if width_s % size == 0:
            return f"{width_s // size}{kr if ko else en}"
    return f"{width_s}{'초' if ko else ' s'}"


def make_series_figure(series: Series, meta: Mapping[str, Field], lang: str,
                       x_range: tuple[str, str] | None = None) -> go.Figure:
    """One row per unit; per field a min–max band (bucketed data) and the mean/sample
    line; `x_range` is the requested range in site-local wall time."""
    t = get_translator(lang)
    units: list[str] = []
    for fs in series.fields:
        unit = meta[fs.name].unit if fs.name in meta else ""
        if unit not in units:
            units.append(unit)
    fig = make_subplots(rows=len(units) or 1, cols=1, shared_xaxes=True, vertical_spacing=0.07)
    for i, fs in enumerate(series.fields):
        f = meta.get(fs.name)
        row = units.index(f.unit if f else "") + 1
        colour = theme.series_colour(i)
        x = np.asarray(fs.time)  # one array for the three traces: plotly validates arrays far faster than lists
        y = _floats(fs.value)
        hover = "%{y:.5g}"
        custom = None
        if fs.low is not None and fs.high is not None:
            low, high = _floats(fs.low), _floats(fs.high)
            edge = {"width": 0.6, "color": theme.rgba(colour, 0.45)}  # thin edges: a lone spike is still a line
            fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line=edge, hoverinfo="skip",
                                     showlegend=False, legendgroup=fs.name, name=f"{fs.name} max"), row=row, col=1)
            fig.add_trace(go.Scatter(x=x, y=low, mode="lines", line=edge, fill="tonexty",
                                     fillcolor=theme.rgba(colour, theme.BAND_ALPHA), hoverinfo="skip",
                                     showlegend=False, legendgroup=fs.name, name=f"{fs.name} {t('band')}"),
                          row=row, col=1)
            custom = np.column_stack([low, high])
            hover = f"{t('mean')} %{{y:.5g}} ({t('band')} %{{customdata[0]:.5g}} – %{{customdata[1]:.5g}})"
        unit = f" {f.unit}" if f and f.unit else ""
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"color": colour, "width": 1.4},
                                   name=f"{fs.name}{f' ({f.unit})' if f and f.unit else ''}", legendgroup=fs.name,
                                   customdata=custom, hovertemplate=hover + unit + "<extra>" + fs.name + "</extra>"),
                      row=row, col=1)
    for r, unit in enumerate(units, start=1):
        fig.update_yaxes(title_text=unit or None, row=r, col=1)
    fig.update_layout(template=theme.TEMPLATE, height=max(320, ROW_HEIGHT_PX * len(units) + 80),
                      hovermode="x unified", margin={"t": 40})
    if x_range:
        fig.update_xaxes(range=list(x_range))
    return fig
