"""Reading site rows for evaluation: read plans, candidate rows, new-row spans and windows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.protection.codes import (
    CHECKS,
    MASTER_COMM,
    MEASURES,
    RACK_FLAGS,
    RACK_TO_MASTER,
    per_rack_comm_rack,
)
from services.protection.judging import racks_of_json, sides_of
from services.protection.maps import ProtectionMap
from services.storage.dialect import epoch_expr, from_epoch, prefer_index_scans, to_epoch
from services.storage.schema import columns_by_name, time_column
from services.storage.sitestore import SiteStore

# ----- reading site rows -------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadPlan:
    """What one component contributes: the columns to read and the candidate-row predicate."""

    component: str
    table: sa.Table
    columns: dict[str, sa.ColumnElement[Any]]  # upper-case name -> expression to select
    candidate: sa.ColumnElement[bool] | None  # rows that may hold an event (None: every row)
    json_column: sa.Column[Any] | None = None  # sites 2/3 bank: filtered by its set values


def rack_plan(table: sa.Table, pmap: ProtectionMap, dialect: str) -> ReadPlan:
    cols = columns_by_name(table)
    wanted = {"BANK_ID", "RACK_ID", *(m.column for m in MEASURES.values()),
              *(p for m in MEASURES.values() for p in m.positions), *RACK_FLAGS}
    select: dict[str, sa.ColumnElement[Any]] = {name: cols[name] for name in sorted(wanted) if name in cols}
    conditions: list[sa.ColumnElement[bool]] = []
    for check in CHECKS:  # the least strict limit of each check, same strict comparison
        limit = pmap.limit("rack", check.field)
        if limit is None or check.field not in cols:
            continue
        bounds = [b for b in sides_of(limit, check.side) if b is not None]
        if not bounds:
            continue
        x = sa.func.abs(cols[check.field]) if limit.absolute else cols[check.field]
        conditions.append(x > min(bounds) if check.side == "above" else x < max(bounds))
    conditions += [cols[f] != 0 for f in RACK_FLAGS if f in cols]
    select["TIMESTAMP"] = epoch_expr(time_column(table), dialect)
    return ReadPlan("rack", table, select, sa.or_(*conditions) if conditions else sa.false())


def bank_plan(table: sa.Table, dialect: str) -> ReadPlan:
    cols = columns_by_name(table)
    select: dict[str, sa.ColumnElement[Any]] = {"BANK_ID": cols["BANK_ID"]}
    conditions: list[sa.ColumnElement[bool]] = []
    json_column = None
    for name, col in cols.items():
        per_rack = per_rack_comm_rack(name) is not None
        if name == RACK_TO_MASTER or per_rack or (name == MASTER_COMM and not isinstance(col.type, sa.JSON)):
            select[name] = col
            conditions.append(col != 0)
        elif name == MASTER_COMM:
            select[name] = sa.cast(col, sa.Text)
            json_column = col
    select["TIMESTAMP"] = epoch_expr(time_column(table), dialect)
    return ReadPlan("bank", table, select, sa.or_(*conditions) if conditions else None, json_column)


def _json_with_faults(conn: Connection, plan: ReadPlan, window: list[Any]) -> list[str]:
    """Distinct JSON texts of the window that name a rack in fault (parsed once each)."""
    assert plan.json_column is not None
    text = sa.cast(plan.json_column, sa.Text)
    distinct = conn.execute(sa.select(text).where(*window).distinct()).scalars().all()
    return [t for t in distinct if t is not None and racks_of_json(pd.Series([t]))[1][0] > 0]


@contextmanager
def _reading(store: SiteStore) -> Iterator[Connection]:
    """A connection for the windowed reads. On PostgreSQL the planner is told to use the
    TIMESTAMP index: a table fresh from a bulk load has no statistics yet, and without them
    it plans a full scan for every window."""
    with store.engine.connect() as conn:
        prefer_index_scans(conn)
        yield conn


def read_candidates(store: SiteStore, plan: ReadPlan, start: int, end: int) -> pd.DataFrame:
    """Rows of [start, end) (epoch seconds) that may hold an event, with the plan's columns."""
    ts = time_column(plan.table)
    window = [ts >= from_epoch(start), ts < from_epoch(end)]
    names = list(plan.columns)
    with _reading(store) as conn:
        conditions = [] if plan.candidate is None else [plan.candidate]
        if plan.json_column is not None:
            faulty = _json_with_faults(conn, plan, window)
            if faulty:
                conditions.append(sa.cast(plan.json_column, sa.Text).in_(faulty))
        if not conditions:
            return pd.DataFrame({n: pd.Series(dtype=object) for n in names})
        stmt = sa.select(*[expr.label(n) for n, expr in plan.columns.items()]).where(*window, sa.or_(*conditions))
        rows = conn.execute(stmt).all()
    return pd.DataFrame.from_records(rows, columns=names, coerce_float=True)


@dataclass(frozen=True)
class Span:
    first: int
    last: int


def new_rows(store: SiteStore, table: sa.Table, after: int | None) -> Span | None:
    """First and last TIMESTAMP after `after` (epoch seconds), None when there is none.
    Bare min/max of the key column: index lookups whatever the table's statistics."""
    ts = time_column(table)
    with store.engine.connect() as conn:
        last = _epoch_of(conn.execute(sa.select(sa.func.max(ts))).scalar())
        if last is None or (after is not None and last <= after):
            return None
        first = _epoch_of(conn.execute(sa.select(sa.func.min(ts)).where(
            *([] if after is None else [ts > from_epoch(after)]))).scalar())
    return None if first is None else Span(first, last)


def count_after(store: SiteStore, table: sa.Table, after: int | None) -> int:
    """Rows with TIMESTAMP after `after` (all rows for None)."""
    ts = time_column(table)
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            *([] if after is None else [ts > from_epoch(after)]))).scalar() or 0)


def _epoch_of(value: Any) -> int | None:
    """Epoch seconds of a TIMESTAMP value as the driver returns it (datetime or integer)."""
    if value is None:
        return None
    return to_epoch(value) if isinstance(value, datetime) else int(value)


def iter_windows(store: SiteStore, table: sa.Table, first: int, last: int,
                 window_s: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, rows) windows [start, end) of a grid of `window_s` seconds from `first`,
    covering the rows up to `last`; empty windows are left out. One grouped count for the
    whole span (an index range scan), instead of queries per window."""
    ts = time_column(table)
    k = ((epoch_expr(ts, store.dialect) - first) // window_s).label("k")
    with _reading(store) as conn:
        counts = conn.execute(sa.select(k, sa.func.count()).where(ts >= from_epoch(first), ts <= from_epoch(last))
                              .group_by(k).order_by(k)).all()
    for index, rows in counts:
        start = first + int(index) * window_s
        yield start, min(start + window_s, last + 1), int(rows)
