"""The one place for colours, fonts and the Plotly template of every chart."""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from dash import dcc

FONT = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans KR", "Apple SD Gothic Neo", "Malgun Gothic", '
        'sans-serif')

INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e6e9ee"
PAPER = "#ffffff"

# Protection-map levels and safety levels (also used as CSS classes lvl-<name>).
LEVEL_COLOURS = {
    "ok": "#2f9e44",
    "warning": "#f08c00",
    "fault": "#e03131",
    "nodata": "#adb5bd",
}
SAFETY_COLOURS = {"safe": LEVEL_COLOURS["ok"], "warning": LEVEL_COLOURS["warning"], "unsafe": LEVEL_COLOURS["fault"]}
LEVEL_BY_NUMBER = {0: "ok", 1: "warning", 2: "fault"}

# Okabe-Ito, colour-blind safe; the first colour is the default single series.
SERIES = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
FACTOR_COLOURS = ("#0072b2", "#56b4e9", "#d55e00", "#cc79a7", "#e69f00", "#009e73", "#8c6d31")  # never the ink
OBSERVED = INK
BAND_ALPHA = 0.18
FORECAST_WINDOW = "rgba(0, 114, 178, 0.16)"


def rgba(hex_colour: str, alpha: float) -> str:
    """`#rrggbb` as an rgba() string with the given opacity."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def series_colour(i: int) -> str:
    return SERIES[i % len(SERIES)]


TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": FONT, "size": 12, "color": INK},
        paper_bgcolor=PAPER,
        plot_bgcolor=PAPER,
        colorway=list(SERIES),
        margin={"l": 56, "r": 16, "t": 36, "b": 40},
        hoverlabel={"font": {"family": FONT}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0,
                "bgcolor": "rgba(255,255,255,0)"},
        xaxis={"gridcolor": GRID, "linecolor": GRID, "zeroline": False, "ticks": "outside", "tickcolor": GRID},
        yaxis={"gridcolor": GRID, "linecolor": GRID, "zeroline": False},
        title={"font": {"size": 14}, "x": 0, "xanchor": "left"},
    )
)

GRAPH_CONFIG: dcc.Graph.Config = {"displaylogo": False, "responsive": True,
                                  "modeBarButtonsToRemove": ["lasso2d", "select2d", "toggleSpikelines"]}


# Korean dates in numbers and Korean words (Plotly's default multi-format shows "Sep 1, 2022");
# the month names, modebar and other Plotly texts come from the vendored `ko` locale
# (assets/plotly-locale-ko.js) that graph_config() selects.
KO_TICK_FORMATS = [
    {"dtickrange": [None, 1000], "value": "%H:%M:%S.%L"},
    {"dtickrange": [1000, 60000], "value": "%H:%M:%S"},
    {"dtickrange": [60000, 86400000], "value": "%H:%M<br>%-m월 %-d일"},
    {"dtickrange": [86400000, 604800000], "value": "%-m월 %-d일"},
    {"dtickrange": [604800000, "M1"], "value": "%-m월 %-d일"},
    {"dtickrange": ["M1", "M12"], "value": "%Y년 %-m월"},
    {"dtickrange": ["M12", None], "value": "%Y년"},
]


def localize_figure(fig: go.Figure, lang: str) -> go.Figure:
    """Date axes in the page's language: Korean ticks and hover times in Korean date order
    (English keeps Plotly's own formats)."""
    if str(lang or "")[:2].lower() == "ko":
        fig.update_xaxes(tickformatstops=KO_TICK_FORMATS, hoverformat="%Y-%m-%d %H:%M:%S")
    return fig


def graph_config(lang: str) -> dcc.Graph.Config:
    """The dcc.Graph config of a page in `lang` (Plotly's own texts translated in Korean)."""
    config = GRAPH_CONFIG.copy()
    if str(lang or "")[:2].lower() == "ko":
        config["locale"] = "ko"
    return config
