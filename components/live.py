"""Builders of the live page: bank tiles, the rack × field grid coloured by the
protection map, room sensors and the event list. Inputs are a site snapshot
(services.telemetry.snapshot.get_snapshot) and the map's limits; nothing here queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from components.formats import format_age
from components.theme import LEVEL_BY_NUMBER
from services.core.i18n import get_translator
from services.protection.maps import Limit

STALE_AFTER_S = 30
RACK_FIELDS = ("rack_soc", "rack_current", "rack_voltage", "rack_max_cell_voltage", "rack_min_cell_voltage",
               "rack_cell_voltage_gap", "rack_max_cell_temperature", "rack_min_cell_temperature",
               "rack_cell_temperature_gap")
BANK_FIELDS = ("bank_soc", "bank_power", "bank_dc_volt", "bank_dc_current", "max_cell_voltage_of_bank",
               "min_cell_voltage_of_bank", "max_cell_temperature_of_bank", "min_cell_temperature_of_bank")
SHORT_LABELS = {
    "rack_soc": "SoC", "rack_current": "I", "rack_voltage": "V", "rack_max_cell_voltage": "V max",
    "rack_min_cell_voltage": "V min", "rack_cell_voltage_gap": "ΔV", "rack_max_cell_temperature": "T max",
    "rack_min_cell_temperature": "T min", "rack_cell_temperature_gap": "ΔT",
    "bank_soc": "SoC", "bank_power": "P", "bank_dc_volt": "V", "bank_dc_current": "I",
    "max_cell_voltage_of_bank": "V max", "min_cell_voltage_of_bank": "V min",
    "max_cell_temperature_of_bank": "T max", "min_cell_temperature_of_bank": "T min",
}


def newest_time(snapshot: Mapping[str, Any]) -> str | None:
    """The newest timestamp anywhere in the snapshot (ISO, site-local)."""
    rows = [*snapshot.get("banks", []), *snapshot.get("racks", []), snapshot.get("pcs"), snapshot.get("etc")]
    times = [r["timestamp"] for r in rows if r and r.get("timestamp")]
    return max(times, key=datetime.fromisoformat) if times else None


def judge(value: Any, limit: Limit | None) -> str:
    """ok / warning / fault for a value against its limit; neutral without a limit;
    nodata without a value."""
    if value is None:
        return "nodata"
    if limit is None:
        return "neutral"
    return LEVEL_BY_NUMBER[limit.level(float(value))]


def format_value(value: Any, unit: str = "") -> str:
    """A reading with the decimals its unit carries: cell voltages to the millivolt
    (`3.402`, as the bank tile shows them), rack and bank voltages, currents, powers,
    temperatures and percentages to one decimal; other values to 4 significant digits."""
    if value is None:
        return "—"
    v = float(value)
    if unit == "V":
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    if unit in ("A", "kW", "kWh", "°C", "%"):
        return f"{v:.1f}"
    return f"{v:.4g}" if abs(v) < 10000 else f"{v:.0f}"


def make_rack_grid(snapshot: Mapping[str, Any], limits: Mapping[str, Limit], units: Mapping[str, str],
                   lang: str) -> html.Div:
    """Racks × key fields; each cell coloured ok / warning / fault / no data. A rack whose
    newest row is more than STALE_AFTER_S behind the site's newest is all `no data`."""
    t = get_translator(lang)
    racks = [r for r in snapshot.get("racks", []) if r]
    fields = [f for f in RACK_FIELDS if any(f in r for r in racks)] or list(RACK_FIELDS)
    newest = newest_time(snapshot)
    head = html.Thead(html.Tr([html.Th(t("rack"))] + [
        html.Th([SHORT_LABELS.get(f, f), html.Span(f" {units.get(f, '')}", className="text-muted fw-normal")],
                title=f) for f in fields]))
    body = []
    for row in racks:
        stale = newest is not None and (datetime.fromisoformat(newest)
                                        - datetime.fromisoformat(row["timestamp"])).total_seconds() > STALE_AFTER_S
        cells: list[html.Th | html.Td] = [html.Th(t("bank_rack", bank=row.get("bank_id"), rack=row.get("rack_id")),
                                                  className="text-nowrap")]
        for f in fields:
            level = "nodata" if stale else judge(row.get(f), limits.get(f.upper()))
            cells.append(html.Td(format_value(None if stale else row.get(f), units.get(f, "")),
                                 className=f"lvl-cell lvl-{level}",
                                 title=t(f"level_{level}") if level != "neutral" else f))
        body.append(html.Tr(cells, id=f"live-rack-{row.get('bank_id')}-{row.get('rack_id')}"))
    legend = html.Div([html.Span(t(f"level_{lv}"), className=f"lvl-chip lvl-{lv} me-1")
                       for lv in ("ok", "warning", "fault", "nodata")], className="small mt-2")
    table = html.Table([head, html.Tbody(body)], className="table table-sm ess-grid mb-0")
    return html.Div([html.Div(table, className="table-responsive"), legend])


def make_bank_tiles(snapshot: Mapping[str, Any], units: Mapping[str, str], lang: str) -> dbc.Row:
    """One tile per bank with its key values."""
    t = get_translator(lang)
    tiles = []
    for row in snapshot.get("banks", []):
        if not row:
            continue
        items = [html.Div([html.Div(SHORT_LABELS.get(f, f), className="ess-kv-k"),
                           html.Div([format_value(row.get(f), units.get(f, "")),
                                     html.Span(f" {units.get(f, '')}", className="ess-unit")],
                                    className="ess-kv-v")], className="ess-kv", title=f)
                 for f in BANK_FIELDS if f in row]
        tiles.append(dbc.Col(dbc.Card(dbc.CardBody([html.Div(t("bank_n", n=row.get("bank_id")),
                                                             className="fw-semibold mb-2"),
                                                    html.Div(items, className="ess-kv-grid")]),
                                      className="h-100 shadow-sm"), md=6, xl=4, className="mb-3"))
    return dbc.Row(tiles)


def make_room_panel(etc: Mapping[str, Any] | None, units: Mapping[str, str], labels: Mapping[str, str],
                    lang: str) -> html.Div:
    """Room temperature and humidity sensors and the PV/meter values of the ETC row,
    labelled with the catalogue's description in the page's language."""
    t = get_translator(lang)
    if not etc:
        return html.Div(t("level_nodata"), className="text-muted small")
    items = [html.Div([html.Div(labels.get(k, k), className="ess-kv-k", title=k),
                       html.Div([format_value(v, units.get(k, "")), html.Span(f" {units.get(k, '')}",
                                                                               className="ess-unit")],
                                className="ess-kv-v")], className="ess-kv")
             for k, v in etc.items() if k not in ("timestamp", "bank_id") and not isinstance(v, dict | list)]
    return html.Div(items, className="ess-kv-grid")


def make_updated_text(newest: str | None, now: datetime, lang: str) -> list[Any]:
    """`2022-09-01 23:59:59` and its age."""
    t = get_translator(lang)
    if newest is None:
        return [t("level_nodata")]
    age = (now - datetime.fromisoformat(newest)).total_seconds()
    return [html.Span(newest[:19].replace("T", " "), className="ess-updated-time"),
            html.Span(f" ({format_age(max(age, 0), lang)})", className="text-muted")]


def make_event_list(events: Sequence[Mapping[str, Any]], lang: str) -> html.Div | html.Ul:
    """The newest events, newest first, coloured by level."""
    t = get_translator(lang)
    if not events:
        return html.Div(t("live_no_events"), className="text-muted small")
    items = []
    for e in events:
        level = LEVEL_BY_NUMBER.get(int(e.get("level", {}).get("id", 1) if isinstance(e.get("level"), dict)
                                        else e.get("level", 1)), "warning")
        text = e.get("description") if lang == "ko" else e.get("description_eng") or e.get("description")
        items.append(html.Li([html.Span(str(e.get("timestamp", ""))[:19].replace("T", " "),
                                        className="text-muted me-2"),
                              html.Span(t(f"level_{level}"), className=f"lvl-chip lvl-{level} me-2"),
                              html.Span(t("bank_rack", bank=e.get("bank_id"), rack=e.get("rack_id")),
                                        className="me-2"), html.Span(str(text or ""))],
                             className="list-group-item small py-1"))
    return html.Ul(items, className="list-group list-group-flush ess-events")
