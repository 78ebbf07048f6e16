"""The selection bar shared by the pages: site → bank → rack pickers (options from the
registry, so an invalid combination cannot be picked), data type and fields, time range
with quick ranges. Values come from the page's URL state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from components.ids import SelectionIds
from components.urlstate import ALL, RANGES, ViewState
from services.core.catalogue import Field
from services.core.i18n import get_translator, normalize_lang
from services.core.registry import Registry, Site


def make_site_options(registry: Registry | None, lang: str) -> list[dict[str, str]]:
    ko = normalize_lang(lang) == "ko"
    return [{"label": f"{s.id} · {s.name_ko if ko and s.name_ko else s.name}", "value": str(s.id)}
            for s in (registry.sites if registry else ())]


def make_bank_options(site: Site | None, lang: str) -> list[dict[str, str]]:
    t = get_translator(lang)
    return [{"label": t("bank_n", n=b.id), "value": str(b.id)} for b in (site.banks if site else ())]


def make_rack_options(site: Site | None, bank_id: int | None, lang: str) -> list[dict[str, str]]:
    t = get_translator(lang)
    racks = next((b.racks for b in (site.banks if site else ()) if b.id == bank_id), ())
    return [{"label": t("rack_n", n=r), "value": str(r)} for r in racks]


def make_component_options(site: Site | None, components: Sequence[str], lang: str) -> list[dict[str, str]]:
    t = get_translator(lang)
    return [{"label": t(f"component_{c}"), "value": c} for c in components
            if site is not None and c in site.tables and c in site.column_sets]


def field_label(f: Field, lang: str) -> str:
    """`rack_max_cell_voltage (V) — Max cell voltage ...` in the page's language."""
    desc = f.description_ko if normalize_lang(lang) == "ko" and f.description_ko else f.description
    unit = f" ({f.unit})" if f.unit else ""
    return f"{f.api_name}{unit} — {desc}"


def make_field_options(fields: Sequence[Field], lang: str) -> list[dict[str, str]]:
    """Numeric measurement fields of a component (what can be charted)."""
    return [{"label": field_label(f, lang), "value": f.api_name} for f in fields
            if f.kind in ("float", "int") and f.name.upper() not in ("BANK_ID", "RACK_ID")]


def make_dropdown_labels(lang: str) -> dcc.Dropdown.Labels:
    """dcc.Dropdown's own texts ("3 selected", "Search", ...) in the page's language."""
    t = get_translator(lang)
    return {"select_all": t("dropdown_select_all"), "deselect_all": t("dropdown_deselect_all"),
            "selected_count": t("dropdown_selected_count"), "search": t("dropdown_search"),
            "clear_search": t("dropdown_clear_search"), "clear_selection": t("dropdown_clear_selection"),
            "no_options_found": t("dropdown_no_options_found")}


def _labelled(label: str, control: Any, **col: Any) -> dbc.Col:
    return dbc.Col([dbc.Label(label, className="form-label small text-muted mb-1"), control],
                   className="mb-2", **col)


def _select(id_: str, options: list[dict[str, str]], value: object, disabled: bool = False) -> dbc.Select:
    return dbc.Select(id=id_, options=options, value=None if value is None else str(value), size="sm",
                      disabled=disabled)


def make_selection_bar(sids: SelectionIds, state: ViewState, registry: Registry | None, lang: str, *,
                       bank: bool = True, rack: bool = True, components: Sequence[str] = (),
                       fields: Sequence[Field] | None = None, time: bool = True) -> html.Div:
    """The pickers a page needs, filled from the registry and the page state."""
    t = get_translator(lang)
    site = next((s for s in (registry.sites if registry else ()) if s.id == state.site), None)
    cols = [_labelled(t("site"), _select(sids.site, make_site_options(registry, lang), state.site), xs=12, md=4,
                      lg=3)]
    if components:
        cols.append(_labelled(t("component"), _select(sids.component, make_component_options(site, components, lang),
                                                      state.component), xs=6, md=3, lg=2))
    every = state.optional_ids
    no_ids = bool(components) and state.component in ("pcs", "etc")  # whole-site data: no bank or rack to pick
    if bank:
        options = ([{"label": t("all_banks"), "value": ALL}] if every else []) + make_bank_options(site, lang)
        cols.append(_labelled(t("bank"), _select(sids.bank, options, state.bank if state.bank or not every else ALL,
                                                 no_ids), xs=3, md=2, lg=2 if every else 1))
    if rack:
        options = ([{"label": t("all_racks"), "value": ALL}] if every else []) + make_rack_options(site, state.bank,
                                                                                                  lang)
        value = state.rack if state.rack or not every else ALL
        cols.append(_labelled(t("rack"), _select(sids.rack, options, value, no_ids or state.component == "bank"),
                              xs=3, md=2, lg=2 if every else 1))
    if fields is not None:
        cols.append(_labelled(t("fields"), dcc.Dropdown(
            id=sids.fields, options=make_field_options(fields, lang), value=list(state.fields), multi=True,
            clearable=False, debounce=True, closeOnSelect=False, className="ess-dropdown",
            labels=make_dropdown_labels(lang)), xs=12, lg=True))
    rows = [dbc.Row(cols, className="g-2 align-items-end")]
    if time:
        rows.append(make_time_row(sids, state, site, lang))
    return html.Div(rows, className="ess-selection mb-3")


AUTO_REFRESH_S = 30


def make_time_row(sids: SelectionIds, state: ViewState, site: Site | None, lang: str) -> dbc.Row:
    """From/to boxes, the relative ranges (the chosen one pressed) and the auto-refresh
    switch, which moves a relative range to the newest data every AUTO_REFRESH_S."""
    t = get_translator(lang)
    quick = dbc.ButtonGroup([dbc.Button(t(f"quick_{span}"), id={"type": sids.quick, "span": span}, size="sm",
                                        color="secondary", outline=state.range != span, n_clicks=0,
                                        title=t("quick_title")) for span in RANGES],
                            className="ess-quick me-3")
    refresh = dbc.Switch(id=sids.refresh, label=t("auto_refresh", seconds=AUTO_REFRESH_S), value=False,
                         persistence=True, persistence_type="local", className="d-inline-block small mb-0 ess-refresh")

    def box(id_: str, value: str | None) -> dbc.Input:
        return dbc.Input(id=id_, value=(value or "").replace("T", " "), debounce=True, size="sm", type="text",
                         placeholder=t("time_placeholder"), className="ess-time")

    tz = site.timezone if site else "UTC"
    return dbc.Row([
        _labelled(t("start"), box(sids.start, state.start), xs=6, md=3, lg=2),
        _labelled(t("end"), box(sids.end, state.end), xs=6, md=3, lg=2),
        dbc.Col([html.Div([quick, refresh], className="d-flex flex-wrap align-items-center"),
                 dcc.Interval(id=sids.interval, interval=AUTO_REFRESH_S * 1000, disabled=True, n_intervals=0),
                 html.Div(t("quick_hint") + " " + t("site_local_time", tz=tz), className="small text-muted mt-1")],
                className="mb-2", xs=12, md=6, lg=True),
    ], className="g-2 align-items-end")


def describe_fields(fields: Sequence[Field], lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """Units and descriptions (in the page's language) by API field name."""
    ko = normalize_lang(lang) == "ko"
    units = {f.api_name: f.unit for f in fields}
    labels = {f.api_name: (f.description_ko if ko and f.description_ko else f.description) for f in fields}
    return units, labels
