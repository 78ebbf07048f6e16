"""Pure figure builders of the forecasts page (shapes of the analytics API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from dash import html

from components import theme
from services.core.i18n import get_translator


def _wall(t: Any) -> str:
    return str(t)[:19]


def model_label(model: str, best: str | None) -> str:
    """The legend entry of a model: its name, ★ for the model the backtest chose."""
    return model + (" ★" if model == best else "")


def beats(mase: Any) -> bool:
    """A MASE that beats persistence as the table shows it: below 1.00 at two decimals (a
    model 0.01 % better is no better for an operator)."""
    return isinstance(mase, int | float) and round(float(mase), 2) < 1.0


def beats_persistence(accuracy: Mapping[str, Mapping[str, Any]]) -> bool:
    """Some model other than persistence beats it in the backtest."""
    return any(beats(a.get("mase")) for m, a in accuracy.items() if m != "persistence")


def _metric(value: Any, digits: str = ".3g") -> str:
    return "—" if value is None else format(float(value), digits)


def make_accuracy_table(accuracy: Mapping[str, Mapping[str, Any]], best: str | None, unit: str, lang: str
                        ) -> html.Table:
    """Per model: MASE (MAE relative to persistence, < 1 beats it), MAE and RMSE with the
    target's unit and the number of issue times, best MASE first; the chosen model ★."""
    t = get_translator(lang)
    suffix = f" ({unit})" if unit else ""
    head = html.Thead(html.Tr([html.Th(t("model")), html.Th("MASE", title=t("mase_title")),
                               html.Th("MAE" + suffix), html.Th("RMSE" + suffix), html.Th(t("issue_times"))]))
    order = sorted(accuracy.items(), key=lambda kv: (kv[1].get("mase") is None, kv[1].get("mase") or 0, kv[0]))
    body = []
    for model, a in order:
        mase = a.get("mase")
        good = beats(mase)
        body.append(html.Tr([html.Td(model_label(model, best), className="fw-semibold" if model == best else ""),
                             html.Td(_metric(mase, ".2f"), className="ess-mase-good" if good else ""),
                             html.Td(_metric(a.get("mae"))), html.Td(_metric(a.get("rmse"))),
                             html.Td(str(a.get("count", "—")))]))
    return html.Table([head, html.Tbody(body)], className="table table-sm mb-0 ess-accuracy")


def make_backtest_note(accuracy: Mapping[str, Mapping[str, Any]], period: tuple[str, str], lang: str) -> list[Any]:
    """`Backtest: 37 issue times, 2022-09-02 09:00 – 15:06 (the page's range)`, and "no
    model beats persistence here" when none has a MASE below 1."""
    t = get_translator(lang)
    count = max((int(a.get("count") or 0) for a in accuracy.values()), default=0)
    out: list[Any] = [html.Div(t("backtest_period", n=count, start=period[0].replace("T", " "),
                                 end=period[1].replace("T", " ")), className="small text-muted mb-1")]
    if accuracy and not beats_persistence(accuracy):
        out.append(html.Div(t("no_model_beats_persistence"), className="small fw-semibold ess-no-skill mb-1"))
    return out


def make_forecast_figure(rows: Sequence[Mapping[str, Any]], accuracy: Mapping[str, Mapping[str, Any]],
                         best: str | None, title: str, unit: str, lang: str) -> go.Figure:
    """Observed at the target time against each model's forecast issued 10 minutes
    earlier; the best model's interval as a band; the newest forecast horizon (from its
    issue time to its target time) shaded and labelled."""
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
                                 name=model_label(model, best),
                                 line={"width": 2 if model == best else 1, "color": theme.series_colour(i),
                                       "dash": None if model == best else "dot"},
                                 visible=True if model in (best, "persistence") else "legendonly"))
    observed = [r.get("observed", (r.get("values") or {}).get("observed")) for r in rows]
    fig.add_trace(go.Scatter(x=x, y=observed, mode="lines", name=t("observed"),
                             line={"color": theme.OBSERVED, "width": 1.6}))
    if rows:
        add_horizon_span(fig, rows, t("forecast_horizon"))
    fig.update_yaxes(title_text=unit or None)
    fig.update_layout(template=theme.TEMPLATE, height=380, hovermode="x unified", title={"text": title},
                      legend={"y": -0.18, "yanchor": "top"}, margin={"b": 10})
    return theme.localize_figure(fig, lang)


def add_horizon_span(fig: go.Figure, rows: Sequence[Mapping[str, Any]], label: str) -> None:
    """The newest forecast's horizon, from its issue time to its target time, shaded and
    outlined (the outline keeps a 10-minute horizon visible on a day-long axis), with the
    axis reaching its end."""
    first, last = rows[0], rows[-1]
    x0, x1 = _wall(last["time"]), _wall(last["target_time"])
    fig.add_vrect(x0=x0, x1=x1, fillcolor=theme.FORECAST_WINDOW, line={"color": theme.SERIES[0], "width": 1,
                                                                         "dash": "dot"},
                  layer="below", name="forecast-horizon")
    fig.add_annotation(x=x1, y=1, xref="x", yref="paper", text=label, showarrow=False, xanchor="right",
                       yanchor="bottom", font={"size": 10, "color": theme.SERIES[0]})
    fig.update_xaxes(range=[_wall(first["target_time"]), x1])


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
                                       "dash": None if i == 0 else "dot"},
                                 visible=True if model in (default, "persistence") else "legendonly"))
    if values.get("observed"):
        fig.add_trace(go.Scatter(x=x, y=values["observed"], mode="lines", name=t("observed"),
                                 line={"color": theme.OBSERVED, "width": 1.6}))
    fig.update_yaxes(title_text=unit or None)
    fig.update_layout(template=theme.TEMPLATE, height=340, hovermode="x unified")
    return theme.localize_figure(fig, lang)
