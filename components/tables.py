"""Table builders: DataTable columns with units in the headers, and the common style."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dash.dash_table.DataTable import DataTable

from components import theme
from services.core.catalogue import Field

PAGE_SIZE = 25


def make_columns(names: Sequence[str], meta: Mapping[str, Field],
                 labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """DataTable columns: `name (unit)` headers, numbers right-aligned."""
    cols = []
    for name in names:
        f = meta.get(name)
        label = (labels or {}).get(name, name)
        header = f"{label} ({f.unit})" if f and f.unit else label
        col: dict[str, Any] = {"name": header, "id": name}
        if f and f.kind in ("float", "int"):
            col["type"] = "numeric"
        cols.append(col)
    return cols


def make_data_table(id_: str, *, page_size: int = PAGE_SIZE, custom_paging: bool = True,
                    style_data_conditional: list[dict[str, Any]] | None = None) -> DataTable:
    """An empty table filled by a callback; server-side paging when `custom_paging`."""
    return DataTable(
        id=id_, data=[], columns=[], page_current=0, page_size=page_size,
        page_action="custom" if custom_paging else "native", page_count=1,
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": theme.FONT, "fontSize": "12px", "padding": "4px 8px", "textAlign": "right",
                    "whiteSpace": "nowrap", "border": f"1px solid {theme.GRID}"},
        style_cell_conditional=[{"if": {"column_id": c}, "textAlign": "left"}
                                for c in ("timestamp", "time", "description", "start", "end", "source")],
        style_header={"backgroundColor": "#f3f5f8", "fontWeight": "600", "color": theme.INK},
        style_data_conditional=style_data_conditional or [],
    )
