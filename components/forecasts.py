"""Pure figure builders of the forecasts page (shapes of the analytics API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from components import theme
from services.core.i18n import get_translator


def _wall(t: Any) -> str:
    return str(t)[:19]


def model_label(model: str, accuracy: Mapping[str, Mapping[str, Any]], best: str | None, lang: str) -> str:
    """`drift · MAE 0.0012 · RMSE 0.0021 ★`: the legend carries the stored backtest."""
    a = accuracy.get(model) or {}
    parts = [model]
    if a.get("mae") is not None:
        parts.append(f"MAE {float(a['mae']):.3g}")
    if a.get("rmse") is not None:
        parts.append(f"RMSE {float(a['rmse']):.3g}")
    return " · ".join(parts) + (" ★" if model == best else "")


def make_forecast_figure(rows: Sequence[Mapping[str, Any]], accuracy: Mapping[str, Mapping[str, Any]],
                         best: str | None, title: str, unit: str, lang: str) -> go.Figure:
    """Observed at the target time against each model's forecast issued 10 minutes
    earlier; the best model's interval as a band; the newest forecast window shaded."""
    t = get_translator(lang)
    fig = go.Figure()
    x = [_wall(r["target_time"]) for r in rows]
    models = [m for m in dict.fromkeys(k for r in rows for k in (r.get("values") or {})) if m != "observed"]
    if best and best in models:
        lo = [((r.get("intervals") or {}).get(best) or [None, None])[0] for r in rows]
        hi = [((r.get("intervals") or {}).get(best) or [None, None])[1] for r in rows]
        fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line={"width": 0}, hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=theme.rgba(theme.SERIES[0], 0.15), name=f"{best} {t('interval')}",
                                 hoverinfo="skip"))
    for i, model in enumerate(models):
        fig.add_trace(go.Scatter(x=x, y=[(r.get("values") or {}).get(model) for r in rows], mode="lines",
                                 name=model_label(model, accuracy, best, lang),
                                 line={"width": 2 if model == best else 1, "color": theme.series_colour(i),
                                       "dash": None if model == best else "dot"},
                                 visible=True if model in (best, "persistence") else "legendonly"))
    observed = [r.get("observed", (r.get("values") or {}).get("observed")) for r in rows]
    fig.add_trace(go.Scatter(x=x, y=observed, mode="lines", name=t("observed"),
                             line={"color": theme.OBSERVED, "width": 1.6}))
    if rows:
        last = rows[-1]
        fig.add_vrect(x0=_wall(last["time"]), x1=_wall(last["target_time"]), fillcolor=theme.FORECAST_WINDOW,
                      line_width=0, annotation_text=t("forecast_window"), annotation_position="top left",
                      annotation_font_size=10)
    fig.update_yaxes(title_text=unit or None)
    fig.update_layout(template=theme.TEMPLATE, height=380, hovermode="x unified", title={"text": title},
                      legend={"y": -0.3, "yanchor": "top"}, margin={"b": 10})
    return fig


def make_day_ahead_figure(row: Mapping[str, Any], unit: str, lang: str) -> go.Figure:
    """The 1-day forecast in 10-minute steps (the default model first and solid) with its
    band, and what happened (`values.observed`)."""
    t = get_translator(lang)
    values = row.get("values") or {}
    x = [_wall(v) for v in values.get("time", [])]
    fig = go.Figure()
    if values.get("upper") and values.get("lower"):
        fig.add_trace(go.Scatter(x=x, y=values["upper"], mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=values["lower"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=theme.rgba(theme.SERIES[0], 0.15), name=t("interval"), hoverinfo="skip"))
    default = row.get("default_model")
    models = sorted((k for k in values if k not in ("time", "lower", "upper", "observed")),
                    key=lambda m: m != default)
    for i, model in enumerate(models):
        fig.add_trace(go.Scatter(x=x, y=values[model], mode="lines", name=model + (" ★" if model == default else ""),
                                 line={"color": theme.series_colour(i), "width": 1.6 if i == 0 else 1,
                                       "dash": None if i == 0 else "dot"}))
    if values.get("observed"):
        fig.add_trace(go.Scatter(x=x, y=values["observed"], mode="lines", name=t("observed"),
                                 line={"color": theme.OBSERVED, "width": 1.6}))
    fig.update_yaxes(title_text=unit or None)
    fig.update_layout(template=theme.TEMPLATE, height=340, hovermode="x unified")
    return fig
