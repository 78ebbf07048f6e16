"""Callbacks that write a page's controls into the URL (not a page: Dash Pages skips
modules starting with `_`).

The URL is the one source of page state: a picker, filter, range or zoom change writes
`?site=...` into Dash Pages' location, which pushes a history entry and re-renders the
page from the query. So a bookmark, a shared link and the back button all give exactly
what was on screen, and a page never holds state the URL lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import dash
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx
from flask import current_app

from components import ids
from components.ids import SelectionIds
from components.urlstate import (
    DEFAULT_SPAN,
    ViewState,
    apply_changes,
    get_time_range,
    make_quick_range,
    normalize_time_text,
    parse_zoom,
)
from services.core.errors import NotFound
from services.core.portal import Portal
from services.core.registry import Site
from services.telemetry.rows import Selector, make_selector
from services.telemetry.series import get_newest_time, get_oldest_time
from services.telemetry.timerange import TimeRange


def get_portal() -> Portal:
    portal: Portal = current_app.extensions["ess"]
    return portal


def selector_of(state: ViewState) -> Selector:
    """The rows the state selects (bank and rack only where the data type has them)."""
    component = state.component or "rack"
    return make_selector(get_portal().store(state.site or 0), component,
                         state.bank if component in ("bank", "rack") else None,
                         state.rack if component == "rack" else None)


def site_and_range(state: ViewState) -> tuple[Site, TimeRange | None]:
    """The state's site and range (None without one); NotFound / InvalidQuery when bad."""
    site = get_portal().registry.get_site(state.site or 0)
    return site, get_time_range(state, site)


def search_or_no_update(new: ViewState, old: ViewState) -> Any:
    """The new query string, or no_update when the page already shows that state.

    Compared with the page's state, not with the address: Dash re-fires these callbacks
    when it re-renders a page whose components keep their ids, and a URL that leaves
    defaults out (no `component=`, no range) must not gain a history entry from that."""
    search = new.to_search()
    return dash.no_update if search == old.to_search() else search


def quick_range_search(state: ViewState, span: str) -> Any:
    """The URL of the relative range `span` (1h, 24h, 7d, all): the page resolves it to the
    newest data of its selection on every load and auto-refresh."""
    return search_or_no_update(apply_changes(state, get_portal().registry, range=span), state)



def register_selection_callbacks(sids: SelectionIds, *, pickers: Sequence[str] = ("site", "bank", "rack"),
                                 extra: Sequence[tuple[str, str]] = (), time: bool = True,
                                 graph: str | None = None) -> None:
    """Wire a page's selection bar to the URL. `pickers` names the SelectionIds
    properties present on the page; `extra` is (component id, URL key) of page filters;
    `graph` is a dcc.Graph whose x zoom becomes the range."""
    names = list(pickers) + [key for _, key in extra]
    inputs = [Input(getattr(sids, p), "value") for p in pickers] + [Input(cid, "value") for cid, _ in extra]
    location = Output(ids.PAGES_LOCATION, "search", allow_duplicate=True)

    @callback(location, *inputs, State(sids.state, "data"), prevent_initial_call=True)
    def pickers_to_url(*args: Any) -> Any:
        values, state = args[:-1], ViewState.from_store(args[-1])
        return search_or_no_update(apply_changes(state, get_portal().registry, **dict(zip(names, values, strict=True))),
                                   state)

    if time:
        @callback(location, Input(sids.start, "value"), Input(sids.end, "value"),
                  Input({"type": sids.quick, "span": ALL}, "n_clicks"), State(sids.state, "data"),
                  prevent_initial_call=True)
        def range_to_url(start: str | None, end: str | None, _clicks: list[int], data: dict[str, Any]) -> Any:
            state = ViewState.from_store(data)
            trigger = ctx.triggered_id
            if isinstance(trigger, dict) and trigger.get("type") == sids.quick:
                clicked = any(t["value"] for t in ctx.triggered)  # a re-render reports n_clicks 0: not a click
                return quick_range_search(state, str(trigger["span"])) if clicked else dash.no_update
            if (normalize_time_text(start or ""), normalize_time_text(end or "")) == (state.start, state.end):
                return dash.no_update  # the boxes now show what an auto-refresh resolved: not a user's change
            return search_or_no_update(apply_changes(state, get_portal().registry, start=start, end=end), state)

        clientside_callback("function(on) { return !on; }", Output(sids.interval, "disabled"),
                            Input(sids.refresh, "value"))

        @callback(Output(sids.state, "data"), Output(sids.start, "value"), Output(sids.end, "value"),
                  Input(sids.interval, "n_intervals"), State(sids.state, "data"), prevent_initial_call=True)
        def follow_newest(_n: int, data: dict[str, Any]) -> Any:
            """Auto-refresh: a relative range moves to the newest data (the page's data
            callbacks then re-read); an absolute range stays as it is."""
            state = ViewState.from_store(data)
            if not state.range:
                return dash.no_update, dash.no_update, dash.no_update
            new = with_default_range(replace(state, start=None, end=None))
            if (new.start, new.end) == (state.start, state.end):
                return dash.no_update, dash.no_update, dash.no_update
            return new.to_store(), (new.start or "").replace("T", " "), (new.end or "").replace("T", " ")

    if graph:
        @callback(location, Input(graph, "relayoutData"), State(sids.state, "data"), prevent_initial_call=True)
        def zoom_to_url(relayout: dict[str, Any] | None, data: dict[str, Any]) -> Any:
            zoom = parse_zoom(relayout)
            if zoom is None:
                return dash.no_update
            state = ViewState.from_store(data)
            return search_or_no_update(apply_changes(state, get_portal().registry, start=zoom[0], end=zoom[1]),
                                       state)


def with_default_range(state: ViewState) -> ViewState:
    """The state with its relative range resolved against the selection's newest data (and
    oldest, for `all`); without any range in the URL, the last day of data, relative.
    Unchanged when the selection holds no rows."""
    if state.start and state.end and not state.range:
        return state
    span = state.range or DEFAULT_SPAN
    sel = selector_of(state)
    try:
        newest = get_newest_time(sel)
        oldest = get_oldest_time(sel) if span == "all" else None
    except NotFound:
        return state
    start, end = make_quick_range(span, newest, sel.site, oldest)
    return replace(state, start=start, end=end, range=span)


def has_route(prefix: str) -> bool:
    """A route starting with `prefix` is installed (e.g. another module's DI downloads)."""
    return any(r.rule.startswith(prefix) for r in current_app.url_map.iter_rules())
