"""Builders of the alarms page: counts per bucket stacked by level, table rows of events
and episodes (shapes of the protection-map API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from components import theme
from components.formats import describe_code, format_age, format_measured
from components.links import make_episode_url
from services.core.i18n import MESSAGES, get_translator, normalize_lang

LEVELS = {1: "warning", 2: "fault"}


def make_counts_figure(rows: Sequence[Mapping[str, Any]], lang: str,
                       x_range: tuple[str, str] | None = None) -> go.Figure:
    """Events per bucket, one stacked bar colour per level, over the page's range."""
    t = get_translator(lang)
    fig = go.Figure()
    for level, name in LEVELS.items():
        part = [r for r in rows if int(r.get("level", 0)) == level]
        fig.add_trace(go.Bar(x=[str(r["time"])[:19] for r in part], y=[r.get("level_count", 0) for r in part],
                             name=t(f"level_{name}"), marker={"color": theme.LEVEL_COLOURS[name]}))
    fig.update_layout(template=theme.TEMPLATE, barmode="stack", height=260, bargap=0.1, hovermode="x unified")
    fig.update_yaxes(title_text=t("count"))
    if x_range:
        fig.update_xaxes(range=list(x_range))
    return theme.localize_figure(fig, lang)


def _level_id(value: Any) -> int:
    return int(value.get("id", 0) if isinstance(value, Mapping) else value or 0)


def _text(item: Mapping[str, Any], lang: str) -> str:
    if normalize_lang(lang) == "ko":
        return str(item.get("description") or item.get("description_eng") or "")
    return str(item.get("description_eng") or item.get("description") or "")


def describe_sources(source: Any, lang: str) -> str:
    """`threshold`, `bms` (or both, for an episode seen by either) in the page's language."""
    t = get_translator(lang)
    names = source if isinstance(source, list | tuple) else str(source or "").replace("+", ",").split(",")
    return " + ".join(t(f"source_{n.strip()}") if f"source_{n.strip()}" in MESSAGES else n.strip()
                      for n in names if str(n).strip())


def _code_id(code: Any) -> int | None:
    value = code.get("id") if isinstance(code, Mapping) else code
    return None if value is None else int(value)


def make_event_rows(events: Sequence[Mapping[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Flat table rows of events (level as text, the value with its unit, description in
    the page's language)."""
    t = get_translator(lang)
    out = []
    for e in events:
        level = _level_id(e.get("level"))
        code = _code_id(e.get("error_code"))
        out.append({"time": str(e.get("timestamp", ""))[:19].replace("T", " "),
                    "level": t(f"level_{LEVELS.get(level, 'warning')}"), "level_id": level, "code": code,
                    "bank": e.get("bank_id"), "rack": e.get("rack_id"),
                    "source": describe_sources(e.get("source"), lang),
                    "value": format_measured(code, e.get("value"), e.get("unit")), "description": _text(e, lang)})
    return out


def make_episode_rows(site_id: int, episodes: Sequence[Mapping[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Flat table rows of episodes: duration, peak with its unit, samples, the error
    code's text, and a link to the Explorer at that moment."""
    t = get_translator(lang)
    out = []
    for e in episodes:
        level = _level_id(e.get("level"))
        code = e.get("error_code")
        seconds = e.get("duration_s")
        out.append({"start": str(e.get("start", ""))[:19].replace("T", " "),
                    "end": str(e.get("end", ""))[:19].replace("T", " "),
                    "duration": "" if seconds is None else format_age(float(seconds), lang),
                    "level": t(f"level_{LEVELS.get(level, 'warning')}"), "level_id": level,
                    "code": _code_id(code), "bank": e.get("bank_id"), "rack": e.get("rack_id"),
                    "source": describe_sources(e.get("sources") or e.get("source"), lang),
                    "peak": format_measured(_code_id(code), e.get("peak_value"), e.get("unit")),
                    "samples": e.get("sample_count"), "description": describe_code(code, lang),
                    "explore": f"[{t('explore_moment')}]({make_episode_url(site_id, e)})",
                    "open": "●" if e.get("open") else ""})
    return out


def level_styles() -> list[dict[str, Any]]:
    """DataTable conditional styles colouring the level column."""
    return [{"if": {"filter_query": f"{{level_id}} = {lv}", "column_id": "level"},
             "color": theme.LEVEL_COLOURS[name], "fontWeight": "600"} for lv, name in LEVELS.items()]
