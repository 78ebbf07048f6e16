"""Site table shapes: the catalogue's column kinds as SQL types, the natural key, and the
one case-insensitive lookup of the key columns (created tables keep the original's
upper-case names; reflected ones may spell them otherwise)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.core.errors import ConfigError
from services.storage.dialect import time_type

TIME, BANK, RACK = "TIMESTAMP", "BANK_ID", "RACK_ID"
KEY_NAMES = (TIME, BANK, RACK)


def columns_by_name(table: sa.Table) -> dict[str, sa.Column[Any]]:
    """The table's columns by upper-case name."""
    return {c.name.upper(): c for c in table.columns}


def find_column(table: sa.Table, name: str) -> sa.Column[Any] | None:
    """The column called `name` in any case, or None."""
    return columns_by_name(table).get(name.upper())


def time_column(table: sa.Table) -> sa.Column[Any]:
    """The TIMESTAMP column (ConfigError for a table without one)."""
    column = find_column(table, TIME)
    if column is None:
        raise ConfigError(f"table {table.name} has no {TIME} column")
    return column


def is_key_column(column: sa.Column[Any]) -> bool:
    """TIMESTAMP, BANK_ID or RACK_ID: identify a row, never measured."""
    return column.name.upper() in KEY_NAMES


def key_columns(component: str, column_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Natural key of a component table: timestamp, then bank and rack where present."""
    upper = {c.upper(): c for c in column_names}
    key = [upper[TIME]]
    if BANK in upper:
        key.append(upper[BANK])
    if component == "rack" and RACK in upper:
        key.append(upper[RACK])
    return tuple(key)


def sql_type(kind: str, dialect_name: str) -> sa.types.TypeEngine[Any]:
    """The column type of a catalogue kind (timestamp, int, json, float)."""
    if kind == "timestamp":
        return time_type(dialect_name)
    if kind == "int":
        return sa.Integer()
    if kind == "json":
        return sa.JSON()
    return sa.Double()
