"""API: where the interactive documentation is, and copyable examples for the chosen site."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask import request

from components import ids
from components.alerts import make_error_alert, make_problems_alert
from components.controls import make_selection_bar
from components.urlstate import ViewState, parse_view_state
from pages._selection import get_portal, register_selection_callbacks
from services.core.access import may_read_raw
from services.core.errors import EssError
from services.core.i18n import get_translator
from services.core.registry import Registry, Site

dash.register_page(__name__, path="/api-guide", name="API", order=7, nav_key="nav_api", title="API · ESS portal")

SIDS = ids.API


def make_examples(site: Site, host: str, raw: bool = True) -> list[tuple[str, str]]:
    """(message key, absolute URL) pairs for one site; `raw` False: only routes a
    de-identified token may call (rows and CSV from /di/, no snapshot or latest)."""
    if not raw:
        di = {"ex_rows": ("/api/ess/operating-sites/", "/api/ess/di/operating-sites/"),
              "ex_csv": ("/api/ess/download/", "/api/ess/download/di/")}
        return [(key, url.replace(*di[key]) if key in di else url) for key, url in make_examples(site, host)
                if key not in ("ex_snapshot", "ex_latest")]
    base = f"{host}/api/ess/operating-sites/{site.id}"
    bank = site.banks[0].id
    rack = site.banks[0].racks[0]
    day = site.demo_anchor.isoformat() if site.demo_anchor else "2022-09-01"
    rack_path = f"{base}/banks/{bank}/racks/{rack}"
    return [
        ("ex_sites", f"{host}/api/ess/operating-sites/"),
        ("ex_snapshot", f"{base}/snapshot/"),
        ("ex_latest", f"{rack_path}/latest/"),
        ("ex_rows", f"{rack_path}/?fields=timestamp,rack_soc,rack_max_cell_voltage"
                    f"&start-time={day}T10:00:00&end-time={day}T11:00:00"),
        ("ex_stats", f"{rack_path}/stats/?fields=rack_max_cell_voltage&agg=min,max,avg&time-bucket-width=1hour"
                     f"&date={day}"),
        ("ex_csv", f"{host}/api/ess/download/operating-sites/{site.id}/rack/?date={day}&bank-id={bank}"),
    ]


def build(state: ViewState, registry: Registry | None, lang: str, top: list[Any], host: str) -> html.Div:
    t = get_translator(lang)
    site = next((s for s in (registry.sites if registry else ()) if s.id == state.site), None)
    examples = []
    raw = registry is None or may_read_raw(get_portal())
    for i, (key, url) in enumerate(make_examples(site, host, raw) if site else []):
        code_id = f"api-example-{i}"
        examples.append(html.Div([
            html.Div(t(key), className="small fw-semibold mb-1"),
            html.Div([html.Code(f"curl -s '{url}'", id=code_id, className="ess-url"),
                      dcc.Clipboard(target_id=code_id, title=t("copy"), className="ess-copy")],
                     className="d-flex align-items-start gap-2"),
        ], className="mb-3"))
    return html.Div([
        html.H2(t("api_title"), id=SIDS.title, className="h4"),
        html.P(t("api_lead"), className="text-muted small"),
        html.Div(top, id=SIDS.alert),
        html.Div([dbc.Button(t("api_docs"), href="/api/docs/", external_link=True, color="primary", className="me-2"),
                  dbc.Button(t("api_openapi"), href="/api/openapi.json", external_link=True, color="secondary",
                             outline=True)], className="mb-3"),
        make_selection_bar(SIDS, state, registry, lang, bank=False, rack=False, time=False),
        dcc.Store(id=SIDS.state, data=state.to_store()),
        dbc.Card([dbc.CardHeader(t("api_examples", site=state.site or ""), className="fw-semibold"),
                  dbc.CardBody(html.Div(examples, id=ids.API_EXAMPLES) if examples else html.Div(id=ids.API_EXAMPLES)),
                  dbc.CardFooter(t("api_note"), className="small text-muted")], className="shadow-sm"),
    ])


def layout(lang: str | None = None, **query: str) -> html.Div:
    """Without `lang` (Dash's validation pass) the skeleton only."""
    if lang is None:
        return build(ViewState(), None, "en", [], "")
    try:
        registry = get_portal().registry
    except EssError as exc:
        return build(ViewState(), None, lang, [make_error_alert(exc, lang)], "")
    state, problems = parse_view_state(query, registry)
    return build(state, registry, lang, [make_problems_alert(problems, lang)], request.host_url.rstrip("/"))


register_selection_callbacks(SIDS, pickers=("site",), time=False)
