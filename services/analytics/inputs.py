"""Site reads for the analytics tasks: raw rack rows, spans and rollup means."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from services.core.errors import ConfigError
from services.storage.dialect import epoch_expr, from_epoch, stored_time
from services.storage.rollups import catch_up
from services.storage.schema import columns_by_name, time_column
from services.storage.sitestore import SiteStore

# ----- reading site data -----------------------------------------------------------------

def _columns(table: sa.Table, wanted: Sequence[str]) -> dict[str, sa.Column[Any]]:
    by_upper = columns_by_name(table)
    missing = [w for w in wanted if w not in by_upper]
    if missing:
        raise ConfigError(f"table {table.name} lacks {', '.join(missing)}, which the analytics need")
    return {w: by_upper[w] for w in wanted}


def read_rack(store: SiteStore, start_s: int, end_s: int, columns: dict[str, str]) -> pd.DataFrame:
    """Rack rows with TIMESTAMP in [start_s, end_s): `t` (epoch s), bank_id, rack_id and
    one float column per key of `columns` (rack column names as values)."""
    table = store.table("rack")
    cols = _columns(table, ["TIMESTAMP", "BANK_ID", "RACK_ID", *columns.values()])
    ts = cols["TIMESTAMP"]
    stmt = (sa.select(epoch_expr(ts, store.dialect), cols["BANK_ID"], cols["RACK_ID"],
                      *(cols[v] for v in columns.values()))
            .where(ts >= from_epoch(start_s), ts < from_epoch(end_s)))
    with store.engine.connect() as conn:
        rows = _fetch_plain(conn, stmt)
    names = ["t", "bank_id", "rack_id", *columns]
    if not rows:
        return pd.DataFrame({n: pd.Series(dtype="int64" if n in names[:3] else "float64") for n in names})
    arr = _float_array(rows)
    frame = pd.DataFrame(arr, columns=names)
    for n in names[:3]:
        frame[n] = frame[n].astype(np.int64)
    return frame.sort_values(["t", "bank_id", "rack_id"], kind="mergesort").reset_index(drop=True)


def _fetch_plain(conn: sa.Connection, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Rows as the driver's plain tuples (the selected columns are numbers, which need no
    result processing): wrapping 10^6 rows in SQLAlchemy Row objects costs seconds."""
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _float_array(rows: Sequence[Any]) -> np.ndarray:
    """Result rows as a float array (None becomes NaN)."""
    return np.array(rows, dtype=float)


def raw_span(store: SiteStore, component: str = "rack") -> tuple[int, int] | None:
    """Epoch seconds of the first and the last row of a component."""
    table = store.table(component)
    ts = time_column(table)
    with store.engine.connect() as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(epoch_expr(ts, store.dialect)),
                                        sa.func.max(epoch_expr(ts, store.dialect)))).one()
    return None if lo is None else (int(lo), int(hi))


def _minutes(rollup: sa.Table, store: SiteStore, start_s: int, end_s: int) -> list[sa.ColumnElement[bool]]:
    """Rollup minutes in [start_s, end_s) (epoch seconds)."""
    lo, hi = (stored_time(from_epoch(e), store.dialect) for e in (start_s, end_s))
    return [rollup.c.bucket >= lo, rollup.c.bucket < hi]


def read_rollup_means(store: SiteStore, component: str, start_s: int, end_s: int,
                      fields: dict[str, str]) -> pd.DataFrame:
    """Per-minute means (sum / count) from the rollups: `bucket` (minute start, epoch s),
    bank_id, rack_id (component rack) and one column per key of `fields`."""
    rollup = catch_up(store, component, create=True)
    assert rollup is not None
    raw = store.table(component)
    names = {c.name.upper(): c.name for c in raw.columns}
    ids = [n for n in ("BANK_ID", "RACK_ID") if n in names]
    bucket = epoch_expr(rollup.c.bucket, store.dialect)
    means = []
    for key, field_name in fields.items():
        col = names[field_name]
        cnt = rollup.c[f"{col}__cnt"]
        means.append((rollup.c[f"{col}__sum"] / sa.func.nullif(cnt, 0)).label(key))
    stmt = (sa.select(bucket.label("bucket"), *(rollup.c[names[i]].label(i.lower()) for i in ids), *means)
            .where(*_minutes(rollup, store, start_s, end_s)))
    with store.engine.connect() as conn:
        rows = _fetch_plain(conn, stmt)
    cols = ["bucket", *(i.lower() for i in ids), *fields]
    frame = pd.DataFrame(_float_array(rows) if rows else np.empty((0, len(cols))), columns=cols)
    for c in ["bucket", *(i.lower() for i in ids)]:
        frame[c] = frame[c].astype(np.int64)
    return frame


def read_rollup_means_sums(store: SiteStore, component: str, start_s: int, end_s: int, field_name: str
                           ) -> pd.DataFrame:
    """Per-minute `sum` and `cnt` of one field from the rollups (bucket, ids, sum, cnt)."""
    rollup = catch_up(store, component, create=True)
    assert rollup is not None
    raw = store.table(component)
    names = {c.name.upper(): c.name for c in raw.columns}
    ids = [n for n in ("BANK_ID", "RACK_ID") if n in names and (n != "RACK_ID" or component == "rack")]
    bucket = epoch_expr(rollup.c.bucket, store.dialect)
    col = names[field_name]
    stmt = (sa.select(bucket, *(rollup.c[names[i]] for i in ids), rollup.c[f"{col}__sum"], rollup.c[f"{col}__cnt"])
            .where(*_minutes(rollup, store, start_s, end_s)))
    with store.engine.connect() as conn:
        rows = _fetch_plain(conn, stmt)
    cols = ["bucket", *(i.lower() for i in ids), "sum", "cnt"]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.astype({"bucket": np.int64, "cnt": float, "sum": float})
