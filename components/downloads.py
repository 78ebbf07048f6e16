"""Builders of the downloads page: the estimate table with one streamed-CSV link per type."""

from __future__ import annotations

from collections.abc import Mapping

import dash_bootstrap_components as dbc
from dash import html

from services.core.i18n import get_translator
from services.telemetry.series import DownloadEstimate


def format_bytes(n: int) -> str:
    """`812 B`, `4.7 kB`, `135 MB`, `2.1 GB` (decimal units, as browsers show downloads)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def make_estimate_table(estimates: Mapping[str, DownloadEstimate], urls: Mapping[str, str], lang: str,
                        enabled: bool = True) -> html.Table:
    """Per data type: rows and size before starting, and the link that streams the CSV."""
    t = get_translator(lang)
    rows = []
    for comp, est in estimates.items():
        text = (t("estimate_exact", rows=f"{est.rows:,}", size=format_bytes(est.bytes)) if est.exact
                else t("estimate_line", rows=f"{est.rows:,}", size=format_bytes(est.bytes)))
        button = dbc.Button(t("start_download"), href=urls[comp] if enabled and est.rows else None,
                            external_link=True, size="sm", color="primary", disabled=not enabled or not est.rows,
                            id=f"downloads-link-{comp}")
        rows.append(html.Tr([html.Th(t(f"component_{comp}")), html.Td(text), html.Td(button, className="text-end")]))
    return html.Table(html.Tbody(rows), className="table table-sm align-middle mb-0 ess-estimates")
