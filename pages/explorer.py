"""Explorer: any field of a bank, rack, PCS or sensor over any range. The chart is
downsampled on the server (min/max/mean per round bucket, at most ~1500 per field);
zooming writes the new range into the URL, which fetches finer data."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html
from flask import request

from components import ids
from components.alerts import make_error_alert, make_no_data_alert, make_problems_alert
from components.charts import describe_width, make_empty_figure, make_series_figure
from components.controls import make_dropdown_labels, make_selection_bar
from components.links import make_download_url, make_rows_url, make_stats_url
from components.tables import make_columns, make_data_table
from components.theme import graph_config
from components.urlstate import Problem, ViewState, get_time_range, parse_view_state
from pages._selection import (
    get_portal,
    has_route,
    register_selection_callbacks,
    selector_of,
    site_and_range,
    with_default_range,
)
from services.core.access import may_read_raw
from services.core.catalogue import Field, is_sensitive
from services.core.errors import ConfigError, EssError, NotComputed, NotFound
from services.core.i18n import get_translator
from services.core.registry import Registry
from services.protection.events import EventFilter
from services.protection.maps import Limit, load_protection_map
from services.protection.reads import get_episodes
from services.storage.dialect import to_epoch
from services.telemetry.deid import list_public_fields
from services.telemetry.rows import Selector, fetch_page, resolve_columns
from services.telemetry.series import Series, choose_width, get_newest_time, get_series
from services.telemetry.timerange import TimeRange

dash.register_page(__name__, path="/explorer", name="Explorer", order=2, nav_key="nav_explorer",
                   title="Explorer · ESS portal")

SIDS = ids.EXPLORER
COMPONENTS = ("rack", "bank", "pcs", "etc")
DEFAULT_FIELDS = {"rack": ("rack_soc", "rack_max_cell_voltage", "rack_min_cell_voltage"),
                  "bank": ("bank_soc", "bank_power"), "etc": ("sensor1_temperature", "sensor1_humidity")}


MAX_COMPARE = 6


def compare_options(state: ViewState, registry: Registry | None, lang: str) -> list[dict[str, str]]:
    """Other racks of the site (`bank-rack`) for a rack chart, other banks for a bank chart."""
    t = get_translator(lang)
    site = next((s for s in (registry.sites if registry else ()) if s.id == state.site), None)
    if site is None or state.component not in ("rack", "bank"):
        return []
    if state.component == "bank":
        return [{"label": t("bank_n", n=b.id), "value": str(b.id)} for b in site.banks if b.id != state.bank]
    return [{"label": t("bank_rack", bank=b.id, rack=r), "value": f"{b.id}-{r}"} for b in site.banks
            for r in b.racks if (b.id, r) != (state.bank, state.rack)]


def compared(state: ViewState) -> list[tuple[int, int | None]]:
    """The URL's `compare` entities that exist on the site, as (bank, rack or None), at
    most MAX_COMPARE; unknown ones are left out."""
    site = get_portal().registry.get_site(state.site or 0)
    out: list[tuple[int, int | None]] = []
    for item in (state.get("compare") or "").split(","):
        parts = item.strip().split("-")
        try:
            bank, rack = int(parts[0]), (int(parts[1]) if len(parts) > 1 else None)
        except ValueError:
            continue
        ok = (state.component == "rack" and rack is not None and (bank, rack) in site.rack_keys) or (
            state.component == "bank" and rack is None and bank in site.bank_ids)
        if ok and (bank, rack) != (state.bank, state.rack if state.component == "rack" else None):
            out.append((bank, rack))
    return list(dict.fromkeys(out))[:MAX_COMPARE]


def resolve_fields(state: ViewState, fields: list[Field]) -> tuple[ViewState, list[Problem]]:
    """Keep the URL's chartable fields; unknown ones are a problem; none = the defaults."""
    chartable = [f.api_name for f in fields if f.kind in ("float", "int") and f.name not in ("BANK_ID", "RACK_ID")]
    unknown = [f for f in state.fields if f not in chartable]
    kept = tuple(f for f in state.fields if f in chartable)
    problems = [Problem("fields", ",".join(unknown), "problem_field")] if unknown else []
    if not kept:
        kept = tuple(f for f in DEFAULT_FIELDS.get(state.component or "", ()) if f in chartable) or tuple(
            chartable[:2])
    return replace(state, fields=kept), problems


def resolve_state(query: dict[str, str], registry: Registry) -> tuple[ViewState, list[Problem], list[Field]]:
    """The URL's state with fields and a default range (the last day of data) filled in."""
    state, problems = parse_view_state(query, registry, components=COMPONENTS, extra=("compare",))
    fields = get_portal().store(state.site or 0).fields(state.component or "rack")
    if not may_read_raw(get_portal()):  # de-identified access: sensitive columns are not offered (nor accepted)
        fields = list_public_fields(fields)
    state, more = resolve_fields(state, fields)
    return with_default_range(state), problems + more, fields


def make_links(state: ViewState, lang: str, di_available: bool, host: str) -> html.Div:
    t = get_translator(lang)
    raw = may_read_raw(get_portal())
    width = choose_width(get_time_range_seconds(state)) if state.start else 1
    chart = (make_rows_url(state, state.fields, deidentified=not raw) if width <= 1
             else make_stats_url(state, state.fields, width))
    chart_url = host + chart
    rows_url = host + make_rows_url(state, state.fields, deidentified=not raw)

    def url_box(label: str, id_: str, url: str) -> dbc.Col:
        return dbc.Col([html.Div(label, className="small text-muted"),
                        html.Div([html.Code(url, id=id_, className="ess-url"),
                                  dcc.Clipboard(target_id=id_, title=t("copy"), className="ess-copy")],
                                 className="d-flex align-items-start gap-2")], md=6, className="mb-2")

    di = dbc.Button(t("download_csv_di"), id=ids.EXPLORER_DOWNLOAD_DI, href=make_download_url(
        state, state.fields, deidentified=True) if di_available else None, external_link=True, color="secondary",
        outline=True, size="sm", disabled=not di_available, title="" if di_available else t("di_unavailable"))
    note = None if raw else html.Div(t("scope_di_note"), className="alert alert-info py-2 small",
                                     id=ids.EXPLORER_SCOPE_NOTE)
    raw_button = dbc.Button(t("download_csv"), id=ids.EXPLORER_DOWNLOAD, href=make_download_url(state, state.fields),
                            external_link=True, color="primary", size="sm", className="me-2") if raw else None
    return html.Div([
        note,
        html.Div([raw_button, di], className="mb-2"),
        dbc.Row([url_box(t("api_url_chart"), ids.EXPLORER_API_URL, chart_url),
                 url_box(t("api_url_rows"), ids.EXPLORER_ROWS_URL, rows_url)]),
    ], className="ess-links")


def readable_state(data: dict[str, Any]) -> ViewState:
    """The page state from the browser, without sensitive fields when the caller may
    read de-identified data only (the store is client data: never trust its field list)."""
    state = ViewState.from_store(data)
    if may_read_raw(get_portal()):
        return state
    return replace(state, fields=tuple(f for f in state.fields if not is_sensitive(f)))


def get_time_range_seconds(state: ViewState) -> int:
    _site, tr = site_and_range(state)
    return tr.seconds if tr else 86400


def build(state: ViewState, registry: Registry | None, lang: str, fields: list[Field],
          top: list[Any], links: Any) -> html.Div:
    t = get_translator(lang)
    options = compare_options(state, registry, lang)
    chosen = [v for v in (state.get("compare") or "").split(",") if v in {o["value"] for o in options}]
    compare = dbc.Row(dbc.Col([
        dbc.Label(t("compare_banks" if state.component == "bank" else "compare_racks"),
                  className="form-label small text-muted mb-1"),
        dcc.Dropdown(id=ids.EXPLORER_COMPARE, options=options, value=chosen, multi=True, debounce=True,
                     closeOnSelect=False, className="ess-dropdown", placeholder=t("compare_placeholder"),
                     disabled=not options, labels=make_dropdown_labels(lang))], lg=6), className="mb-2")
    empty = make_empty_figure()
    return html.Div([
        html.H2(t("explorer_title"), id=SIDS.title, className="h4"),
        html.P(t("explorer_lead"), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        make_selection_bar(SIDS, state, registry, lang, components=COMPONENTS, fields=fields),
        compare,
        dcc.Store(id=SIDS.state, data=state.to_store()),
        html.Div(id=ids.EXPLORER_DATA_ALERT),
        dbc.Card(dbc.CardBody([
            # The box has the figure's height in CSS: a responsive graph then resizes its width
            # with the window and never measures a collapsed parent (0 px after 1400 -> 820 px).
            html.Div(dcc.Loading(dcc.Graph(id=ids.EXPLORER_GRAPH, figure=empty, config=graph_config(lang),
                                           style={"height": "100%"}), delay_show=250, type="default",
                                 parent_style={"height": "100%"}),
                     id=ids.EXPLORER_CHART_BOX, className="ess-chart-box", style=chart_box_style(empty)),
            html.Div(id=ids.EXPLORER_CAPTION, className="small text-muted"),
        ]), className="mb-3"),
        html.Div(links, className="mb-3"),
        html.H3(t("table_title"), className="h6"),
        html.Div(id=ids.EXPLORER_TABLE_ALERT),
        dcc.Loading(make_data_table(ids.EXPLORER_TABLE), delay_show=250),
    ])


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only: no data is read."""
    if lang is None:
        return build(ViewState(), None, "en", [], [], None)
    portal = get_portal()
    try:
        registry = portal.registry
        state, problems, fields = resolve_state(query, registry)
        links = make_links(state, lang, has_route("/api/ess/download/di/"), request.host_url.rstrip("/"))
    except EssError as exc:
        return build(ViewState(), None, lang, [], [make_error_alert(exc, lang)], None)
    return build(state, registry, lang, fields, [make_problems_alert(problems, lang)], links)


register_selection_callbacks(SIDS, pickers=("site", "component", "bank", "rack", "fields"), graph=ids.EXPLORER_GRAPH,
                             extra=((ids.EXPLORER_COMPARE, "compare"),))


def chart_box_style(fig: Any) -> dict[str, str]:
    """The chart box's CSS height: the figure's own height in px."""
    return {"height": f"{int(fig.layout.height or 320)}px"}


def get_context(state: ViewState, sel: Selector, tr: TimeRange) -> tuple[dict[str, Limit], list[dict[str, Any]]]:
    """The protection map's limits of the data type and the alarm episodes of the rack (or
    bank) overlapping the range; none where the map is unusable or events not computed."""
    try:
        limits = load_protection_map(sel.site).limits.get(sel.component, {})
    except ConfigError:
        limits = {}
    if sel.component not in ("rack", "bank"):
        return limits, []
    try:
        episodes = get_episodes(get_portal(), EventFilter(
            site_ids=(sel.site.id,), start=to_epoch(tr.start), end=to_epoch(tr.end), bank_id=state.bank,
            rack_id=state.rack if sel.component == "rack" else None), limit=200)
    except NotComputed:
        episodes = []
    return limits, episodes


def get_overlays(state: ViewState, tr: TimeRange, lang: str) -> list[tuple[str, Series]]:
    """The compared racks' (or banks') series of the same fields and range."""
    t = get_translator(lang)
    out = []
    for bank, rack in compared(state):
        other = replace(state, bank=bank, rack=rack)
        label = t("bank_rack", bank=bank, rack=rack) if rack is not None else t("bank_n", n=bank)
        out.append((label, get_series(selector_of(other), tr, state.fields)))
    return out


def _empty(message: str, alert: Any) -> tuple[Any, dict[str, str], str, Any]:
    fig = make_empty_figure(message)
    return fig, chart_box_style(fig), "", alert


@callback(Output(ids.EXPLORER_GRAPH, "figure"), Output(ids.EXPLORER_CHART_BOX, "style"),
          Output(ids.EXPLORER_CAPTION, "children"), Output(ids.EXPLORER_DATA_ALERT, "children"),
          Input(SIDS.state, "data"), State(ids.LANG, "value"))
def update_chart(data: dict[str, Any], lang: str) -> tuple[Any, dict[str, str], str, Any]:
    """The downsampled series of the page state and of the compared racks, with the map's
    limits and the range's alarm episodes."""
    t = get_translator(lang)
    state = readable_state(data)
    if state.site is None:
        return _empty("", None)
    try:
        sel = selector_of(state)
        tr = get_time_range(state, sel.site)
        if tr is None:
            return _empty(t("chart_empty"), make_no_data_alert(None, lang))
        series = get_series(sel, tr, state.fields)
        overlays = get_overlays(state, tr, lang)
        limits, episodes = get_context(state, sel, tr)
        meta = {f.api_name: f for f in sel.store.fields(sel.component)}
    except EssError as exc:
        return _empty(t("chart_empty"), make_error_alert(exc, lang))
    if series.points == 0 and not any(o.points for _, o in overlays):
        return _empty(t("chart_empty"), make_no_data_alert(newest_text(sel), lang))
    caption = (t("caption_raw", points=series.points) if series.raw else
               t("caption_buckets", points=series.points, width=describe_width(series.width_s, lang)))
    if any(f.upper() in limits for f in state.fields):
        caption += " " + t("caption_limits")
    if episodes:
        caption += " " + t("caption_episodes", n=len(episodes))
    label = (t("bank_rack", bank=state.bank, rack=state.rack) if sel.component == "rack"
             else t("bank_n", n=state.bank))
    fig = make_series_figure(series, meta, lang, x_range=(state.start or "", state.end or ""), limits=limits,
                             episodes=episodes, overlays=overlays, label=label)
    return fig, chart_box_style(fig), caption, None


def newest_text(sel: Selector) -> str | None:
    try:
        return get_newest_time(sel).astimezone(sel.site.tz).strftime("%Y-%m-%d %H:%M:%S")
    except NotFound:
        return None


@callback(Output(ids.EXPLORER_TABLE, "data"), Output(ids.EXPLORER_TABLE, "columns"),
          Output(ids.EXPLORER_TABLE, "page_count"), Output(ids.EXPLORER_TABLE_ALERT, "children"),
          Input(SIDS.state, "data"), Input(ids.EXPLORER_TABLE, "page_current"), State(ids.LANG, "value"))
def update_table(data: dict[str, Any], page_current: int | None, lang: str) -> tuple[list[Any], list[Any], int, Any]:
    """One page of the rows behind the chart, newest range first page = oldest rows."""
    state = readable_state(data)
    if state.site is None or not state.start:
        return [], [], 1, None
    try:
        sel = selector_of(state)
        tr = get_time_range(state, sel.site)
        assert tr is not None
        names = ["timestamp", *state.fields]
        page = fetch_page(sel, tr, resolve_columns(sel, ",".join(names)), page_size=25, page=(page_current or 0) + 1)
        meta = {f.api_name: f for f in sel.store.fields(sel.component)}
    except EssError as exc:
        return [], [], 1, make_error_alert(exc, lang)
    return page.rows, make_columns(names, meta), max(1, math.ceil(page.count / 25)), None
