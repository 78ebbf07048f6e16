"""Writing analytics rows: driver-safe values and bulk inserts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.storage.dialect import insert_tuples

RAW_INSERT_MIN_ROWS = 1000


# ----- values ----------------------------------------------------------------------------

def clean(value: Any) -> Any:
    """JSON- and driver-safe Python values: numpy scalars unwrapped, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def frame_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of `frame` as driver-ready dicts (NaN as None), vectorised per column."""
    cols: dict[str, list[Any]] = {}
    for c in columns:
        s = frame[c]
        if s.dtype.kind == "f":
            arr = s.to_numpy(dtype=float)
            obj = arr.astype(object)
            obj[~np.isfinite(arr)] = None
            cols[c] = obj.tolist()
        elif s.dtype.kind in "iu":
            cols[c] = s.astype(np.int64).tolist()
        elif s.dtype.kind == "b":
            cols[c] = s.astype(bool).tolist()
        else:
            cols[c] = [clean(v) for v in s.tolist()]
    return [dict(zip(columns, row, strict=True)) for row in zip(*(cols[c] for c in columns), strict=True)]


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], chunk: int = 20_000) -> None:
    """Insert dict rows: through SQLAlchemy for a few, through the driver's own batch
    path (sqlite3 executemany, psycopg2 execute_values) for many, which is ~10x faster.
    Identifiers come from the table definition, values are bound, never interpolated."""
    if len(rows) < RAW_INSERT_MIN_ROWS or conn.dialect.name not in ("sqlite", "postgresql"):
        for i in range(0, len(rows), chunk):
            conn.execute(sa.insert(table), rows[i:i + chunk])
        return
    names = list(rows[0])
    json_cols = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    prep = conn.dialect.identifier_preparer
    head = f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(n) for n in names)}) VALUES "
    tuples = [tuple(json.dumps(r[n], separators=(",", ":")) if n in json_cols and r[n] is not None else r[n]
                    for n in names) for r in rows]
    insert_tuples(conn, head, len(names), tuples)


def replace_rows(conn: Connection, table: sa.Table, where: Iterable[Any], rows: list[dict[str, Any]]) -> None:
    """Delete the rows matching `where` and insert `rows` (the caller's transaction, which
    also moves the task's watermark: a re-run replaces exactly what it computes again)."""
    conn.execute(sa.delete(table).where(*where))
    insert_rows(conn, table, rows)
