"""De-identified column names (the original's de-identified columns, with keyed ids).

Every sensitive column (catalogue.is_sensitive: the substring rule plus the explicit
EXTRA_SENSITIVE list) is published as `<prefix>_<id>`: prefix `bk`, `rk`, `ps`, `ec` by
component, id = the first 10 hex digits of HMAC-SHA-256(key = server secret, message =
the upper-case column name). Without the secret the ids cannot be reversed with a
dictionary of column names (the original's unsalted SHA-256 could); with it they are
stable across requests, JSON and CSV. Other columns keep their lower-case names.

Requests name de-identified columns by their published names only: the original name of a
sensitive column is unknown here, and no message repeats it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services.core.catalogue import is_sensitive
from services.core.errors import ConfigError, InvalidQuery
from services.telemetry.rows import Selector, split_field_names

PREFIXES: dict[str, str] = {"bank": "bk", "rack": "rk", "pcs": "ps", "etc": "ec"}
ID_HEX_DIGITS = 10
WITHHELD = "(withheld)"


def deid_id(secret: str, column: str) -> str:
    """First ID_HEX_DIGITS hex digits of HMAC-SHA-256(secret, upper-case column name)."""
    if not secret:
        raise ConfigError("the de-identification secret is empty (set ESS_DEID_SECRET or let the portal make one)")
    digest = hmac.new(secret.encode(), column.upper().encode(), hashlib.sha256).hexdigest()
    return digest[:ID_HEX_DIGITS]


def deid_name(component: str, column: str, secret: str) -> str:
    """The published name of a column: `<prefix>_<id>` when sensitive, else lower case."""
    if is_sensitive(column):
        return f"{PREFIXES[component]}_{deid_id(secret, column)}"
    return column.lower()


@dataclass(frozen=True)
class DeidNaming:
    """Published names of one selection's table, both ways."""

    component: str
    published: dict[str, str]  # table column name -> published name
    columns: dict[str, sa.Column[Any]]  # published name -> table column

    def names(self, columns: Sequence[sa.Column[Any]]) -> list[str]:
        """Published names of `columns`, in order (the CSV header)."""
        return [self.published[c.name] for c in columns]

    def resolve(self, sel: Selector, fields: str | None = None, omit: str | None = None) -> list[sa.Column[Any]]:
        """The columns asked for by published names in `fields`/`omit` (comma lists,
        case-insensitive), in table order. Unknown names are a 400 that lists the valid
        published names and never repeats a sensitive original name."""
        wanted, dropped = self._parse("fields", fields), self._parse("omit", omit)
        cols = [c for name, c in self.columns.items() if (wanted is None or name in wanted)
                and (dropped is None or name not in dropped)]
        if not cols:
            raise InvalidQuery("no fields left to return", code="no_fields",
                               invalid_params=[{"name": "fields", "reason": "selects nothing"}])
        return cols

    def rename_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows keyed by lower-case column names (services.telemetry.render_row) re-keyed
        by published names."""
        keys = {name.lower(): out for name, out in self.published.items()}
        return [{keys[k]: v for k, v in row.items()} for row in rows]

    def _parse(self, param: str, value: str | None) -> list[str] | None:
        if value is None:
            return None
        names = split_field_names(param, value)
        unknown = [n for n in names if n not in self.columns]
        if unknown:
            shown = [WITHHELD if is_sensitive(n) else n for n in unknown]
            raise InvalidQuery(
                f"unknown field(s) {', '.join(shown)} for de-identified {self.component} data; "
                f"valid: {', '.join(self.columns)}",
                code="unknown_field",
                invalid_params=[{"name": param, "reason": f"unknown field {s!r}"} for s in shown])
        return names


def deidentify_field(component: str, field: dict[str, Any], secret: str) -> dict[str, Any]:
    """A field-catalogue entry as a `deidentified` caller sees it: a sensitive field under
    its published name, with its descriptions withheld (they would tie the id to a cell or
    sensor); type and unit stay."""
    if not field.get("sensitive"):
        return field
    return {**field, "name": deid_name(component, field["name"], secret), "description": WITHHELD,
            "description_ko": WITHHELD}


def make_naming(sel: Selector, secret: str) -> DeidNaming:
    """The naming of the selection's table; ConfigError if two published names collide."""
    table = sel.store.table(sel.component)
    published = {c.name: deid_name(sel.component, c.name, secret) for c in table.columns}
    if len(set(published.values())) != len(published):
        raise ConfigError(f"de-identified names collide in {sel.component}: choose another ESS_DEID_SECRET")
    columns = {out: table.c[name] for name, out in published.items()}
    return DeidNaming(sel.component, published, columns)


def drop_sensitive(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A site snapshot (services.snapshot.get_snapshot) without its sensitive columns, for
    callers allowed de-identified data only (the UI shows those columns nowhere then)."""

    def clean(row: Any) -> Any:
        return {k: v for k, v in row.items() if not is_sensitive(k)} if isinstance(row, dict) else row

    return {k: [clean(r) for r in v] if isinstance(v, list) else clean(v) for k, v in snapshot.items()}


def list_public_fields(fields: Sequence[Any]) -> list[Any]:
    """The catalogue fields (services.catalogue.Field) that are not sensitive."""
    return [f for f in fields if not (getattr(f, "sensitive", False) or is_sensitive(f.name))]
