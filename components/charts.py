"""Pure figure builders for time series (Explorer, SoC/SoH): a row per unit, the
bucket min–max as a band and the mean as a line, so every spike stays visible."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from services.core.catalogue import Field
from services.core.i18n import get_translator, normalize_lang
from services.protection.maps import Limit
from services.telemetry.series import FieldSeries, Series

ROW_HEIGHT_PX = 260
DASHES = (None, "dot", "dash", "dashdot")


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


def field_legend(name: str, f: Field | None, lang: str) -> str:
    """A field's legend entry: its API name in English, its short Korean description in
    Korean (the text before `;` or `(`), with the unit either way."""
    label = name
    if f is not None and normalize_lang(lang) == "ko" and f.description_ko:
        label = re.split(r"[;(]", f.description_ko)[0].strip() or name
    return f"{label} ({f.unit})" if f and f.unit else label


def _add_field(fig: go.Figure, fs: FieldSeries, f: Field | None, row: int, colour: str, name: str, group: str,
               lang: str, dash: str | None = None, band_alpha: float = theme.BAND_ALPHA) -> None:
    """A field's min–max band (bucketed data) and its mean/sample line."""
    t = get_translator(lang)
    x = np.asarray(fs.time)  # one array for the three traces: plotly validates arrays far faster than lists
    y = _floats(fs.value)
    hover = "%{y:.5g}"
    custom = None
    if fs.low is not None and fs.high is not None:
        low, high = _floats(fs.low), _floats(fs.high)
        edge = {"width": 0.6, "color": theme.rgba(colour, 0.45)}  # thin edges: a lone spike is still a line
        fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line=edge, hoverinfo="skip",
                                 showlegend=False, legendgroup=group, name=f"{group} max"), row=row, col=1)
        fig.add_trace(go.Scatter(x=x, y=low, mode="lines", line=edge, fill="tonexty",
                                 fillcolor=theme.rgba(colour, band_alpha), hoverinfo="skip",
                                 showlegend=False, legendgroup=group, name=f"{group} {t('band')}"), row=row, col=1)
        custom = np.column_stack([low, high])
        hover = f"{t('mean')} %{{y:.5g}} ({t('band')} %{{customdata[0]:.5g}} – %{{customdata[1]:.5g}})"
    unit = f" {f.unit}" if f and f.unit else ""
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line={"color": colour, "width": 1.4, "dash": dash},
                             name=name, legendgroup=group, customdata=custom,
                             hovertemplate=hover + unit + "<extra>" + name + "</extra>"), row=row, col=1)


def add_limit_lines(fig: go.Figure, limits: Mapping[str, Limit], rows: Mapping[str, int], lang: str) -> int:
    """The protection map's warning and fault limits of the charted fields as dashed lines
    on their rows (both signs for limits on the absolute value); returns how many."""
    t = get_translator(lang)
    drawn: set[tuple[int, float, str]] = set()
    for name, row in rows.items():
        limit = limits.get(name.upper())
        if limit is None:
            continue
        sides = [("warning", limit.warning_above), ("fault", limit.fault_above), ("warning", limit.warning_below),
                 ("fault", limit.fault_below)]
        for level, value in sides:
            for v in ((value, -value) if limit.absolute and value is not None else (value,)):
                if v is None or (row, v, level) in drawn:
                    continue
                drawn.add((row, v, level))
                fig.add_hline(y=v, row=row, col=1, line={"color": theme.LEVEL_COLOURS[level], "width": 1.1,
                                                         "dash": "dash" if level == "warning" else "solid"},
                              annotation={"text": f"{t(f'limit_{level}')} {v:g}", "font": {
                                  "size": 10, "color": theme.LEVEL_COLOURS[level]},
                                  # warning labels at the left, fault labels at the right: close limits stay legible
                                  "xanchor": "left" if level == "warning" else "right",
                                  "x": 0 if level == "warning" else 1, "yanchor": "bottom",
                                  "bgcolor": "rgba(255,255,255,0.6)"},
                              name=f"limit-{level}", exclude_empty_subplots=False)
    return len(drawn)


def add_episode_spans(fig: go.Figure, episodes: Sequence[Mapping[str, Any]], lang: str,
                      x_range: tuple[str, str] | None = None) -> int:
    """Alarm episodes as shaded spans over every row, coloured by level (fault on top),
    each at least 1/250 of the range wide so a 5-second fault still shows on a week."""
    t = get_translator(lang)
    count = 0
    least = timedelta(seconds=1)
    if x_range and x_range[0] and x_range[1]:
        span = datetime.fromisoformat(x_range[1]) - datetime.fromisoformat(x_range[0])
        least = max(least, span / 250)
    for e in sorted(episodes, key=lambda e: _level_number(e.get("level"))):
        level = "fault" if _level_number(e.get("level")) == 2 else "warning"
        start, end = datetime.fromisoformat(str(e["start"])[:19]), datetime.fromisoformat(str(e["end"])[:19])
        if end - start < least:
            middle = start + (end - start) / 2
            start, end = middle - least / 2, middle + least / 2
        x0, x1 = start.isoformat(), end.isoformat()
        fig.add_vrect(x0=x0, x1=x1, fillcolor=theme.LEVEL_COLOURS[level], opacity=0.16 if level == "fault" else 0.12,
                      line_width=0, layer="below", row="all", col=1, name=f"episode-{level}",
                      exclude_empty_subplots=False)
        count += 1
    if count:  # one legend entry per level shown, so the shading explains itself
        for level in ("warning", "fault"):
            if any((_level_number(e.get("level")) == 2) == (level == "fault") for e in episodes):
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=t(f"episode_{level}"),
                                         marker={"symbol": "square", "size": 12, "color": theme.rgba(
                                             theme.LEVEL_COLOURS[level], 0.35)}, hoverinfo="skip"))
    return count


def _level_number(value: Any) -> int:
    return int(value.get("id", 0) if isinstance(value, Mapping) else value or 0)


def make_series_figure(series: Series, meta: Mapping[str, Field], lang: str,
                       x_range: tuple[str, str] | None = None, *, limits: Mapping[str, Limit] | None = None,
                       episodes: Sequence[Mapping[str, Any]] = (),
                       overlays: Sequence[tuple[str, Series]] = (), label: str = "") -> go.Figure:
    """One row per unit; per field a min–max band (bucketed data) and the mean/sample
    line; `x_range` is the requested range in site-local wall time. `limits` (map field
    name -> Limit) draws warning/fault lines, `episodes` shaded spans; `overlays` are
    other racks or banks (label, series) drawn in the same rows, one colour per entity and
    one dash per field, the main series labelled `label`."""
    entities = [(label, series), *overlays]
    units: list[str] = []
    for _, ser in entities:
        for fs in ser.fields:
            unit = meta[fs.name].unit if fs.name in meta else ""
            if unit not in units:
                units.append(unit)
    fig = make_subplots(rows=len(units) or 1, cols=1, shared_xaxes=True, vertical_spacing=0.07)
    rows: dict[str, int] = {}
    compare = len(entities) > 1
    for e, (who, ser) in enumerate(entities):
        for i, fs in enumerate(ser.fields):
            f = meta.get(fs.name)
            row = units.index(f.unit if f else "") + 1
            rows[fs.name] = row
            name = field_legend(fs.name, f, lang)
            if compare:
                _add_field(fig, fs, f, row, theme.series_colour(e), f"{who} · {name}", f"{who}·{fs.name}", lang,
                           dash=DASHES[i % len(DASHES)], band_alpha=theme.BAND_ALPHA / 2)
            else:
                _add_field(fig, fs, f, row, theme.series_colour(i), name, fs.name, lang)
    for r, unit in enumerate(units, start=1):
        fig.update_yaxes(title_text=unit or None, row=r, col=1)
    if limits:
        add_limit_lines(fig, limits, rows, lang)
    add_episode_spans(fig, episodes, lang, x_range)
    fig.update_layout(template=theme.TEMPLATE, height=max(320, ROW_HEIGHT_PX * len(units) + 80),
                      hovermode="x unified", margin={"t": 40})
    if x_range:
        fig.update_xaxes(range=list(x_range))
    return theme.localize_figure(fig, lang)
