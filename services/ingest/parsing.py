"""Ingestion parsing: columns bound to the table, values parsed and checked per batch."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from tqdm import tqdm

from services.core import catalogue
from services.core.errors import IngestError
from services.core.registry import Site
from services.ingest.problems import MAX_LISTED, Collected, Flag, format_listing
from services.ingest.sources import Source
from services.storage.schema import key_columns

NULL_TOKENS: tuple[str, ...] = ("", "NULL", "null", "None", "NaN", "nan")


INT32 = (-(2**31), 2**31 - 1)
NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds

# Physical ranges by catalogue unit (inclusive). Wide on purpose: they catch scale errors,
# register garbage and sign slips, never a genuine reading. `get_range` adds name rules.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "%": (0, 100),  # SoC, SoH, humidity, trip levels (THD is exempt, see get_range)
    "°C": (-40, 100),  # cells, modules, rooms, PCS
    "V": (0, 2000),  # rack, bank, DC link and AC voltages (cell voltages: CELL_VOLTAGE_RANGE)
    "A": (-10_000, 10_000),
    "kW": (-10_000, 10_000),
    "kVA": (-10_000, 10_000),
    "kVAR": (-10_000, 10_000),
    "W": (-10_000_000, 10_000_000),
    "Hz": (0, 100),  # 0 while the PCS is stopped
    "kWh": (0, math.inf),  # counters (and their high/low words)
    "Wh": (0, math.inf),
}
CELL_VOLTAGE_RANGE = (0.0, 5.0)  # any column with unit V and CELL_VOLTAGE in its name
FLAG_RANGE = (0, 3)  # integer *FAULT*, *WARNING*, *STATUS* columns (site-1 charge status is 1..3)
FLAG_WORDS = ("FAULT", "WARNING", "STATUS")

_NUMBER_RE = r"(?i)[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:inf|infinity|nan)"
_TS_RE = (r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
          r"(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?$")
_TS_PROBLEMS = ("", "not a timestamp (expected ISO 8601, e.g. 2022-09-01 10:00:00 or 2022-09-01T10:00:00+09:00)",
                "fractional seconds (the natural key is per second)", "not a valid local time in {tz}",
                "missing value (key column)")


@dataclass(frozen=True)
class BoundColumn:
    """One file column bound to a table column."""

    position: int  # in the file
    label: str  # as spelt in the file
    name: str  # as spelt in the table
    kind: str  # timestamp, int, float, json or text
    unit: str  # from the catalogue, for messages
    bounds: tuple[float, float] | None


@dataclass
class _Parsed:
    """One column of one batch: values ready for the frame, NULL mask and problems."""

    values: np.ndarray
    null: np.ndarray
    problems: list[tuple[np.ndarray, str]] = field(default_factory=list)


def get_range(field_: catalogue.Field, kind: str, site: Site) -> tuple[float, float] | None:
    """Inclusive physical range checked for a column, None when only type and finiteness are
    checked: name rules first (THD exempt, positions, cell voltages, integer flags), then
    UNIT_RANGES by unit, then the 32-bit range for other integers."""
    name = field_.name.upper()
    if "THD" in name:  # harmonic distortion of a near-zero current is unbounded
        return None
    if name.endswith("CELL_VOLTAGE_POSITION"):
        return (0, site.cells_per_rack)
    if name.endswith("CELL_TEMPERATURE_POSITION"):
        return (0, site.temperature_sensors_per_rack)
    if "POSITION" in name:
        return (0, math.inf)
    if field_.unit == "V" and "CELL_VOLTAGE" in name:
        return CELL_VOLTAGE_RANGE
    if kind == "int" and any(w in name for w in FLAG_WORDS):
        return FLAG_RANGE
    return UNIT_RANGES.get(field_.unit) or (INT32 if kind == "int" else None)


# ----- columns ---------------------------------------------------------------------------
def _column_kind(column: sa.Column[Any]) -> str:
    """How values of a reflected column are parsed (the database type is authoritative)."""
    if column.name.upper() == "TIMESTAMP":
        return "timestamp"
    if isinstance(column.type, sa.JSON):
        return "json"
    if isinstance(column.type, sa.Integer):
        return "int"
    if isinstance(column.type, (sa.Float, sa.Numeric)):
        return "float"
    return "text"


def bind_columns(site: Site, component: str, table: sa.Table, source: Source) -> list[BoundColumn]:
    """Match file columns to table columns; IngestError for unknown, duplicated or missing key columns."""
    by_upper = {c.name.upper(): c for c in table.columns}
    variant = site.column_sets.get(component, "")
    bound: dict[str, BoundColumn] = {}
    problems: list[tuple[str, str]] = []
    for position, label in enumerate(source.names):
        column = by_upper.get(label.strip().upper())
        if label.startswith("__index_level_"):  # a pandas index saved in Parquet
            continue
        if column is None:
            problems.append((label, "unnamed column" if not label.strip() else
                             f"unknown column (not in table {table.name})"))
        elif column.name in bound:
            problems.append((label, f"duplicate column (same as {bound[column.name].label})"))
        else:
            kind, described = _column_kind(column), catalogue.describe(component, variant, column.name)
            bound[column.name] = BoundColumn(position, label, column.name, kind, described.unit,
                                         get_range(described, kind, site))
    key = key_columns(component, [c.name for c in table.columns])
    problems += [(k, "missing key column") for k in key if k not in bound]
    if problems:
        where = f"{source.path}:{source.header_location}"
        lines = [f"{where}: column {c}: {m}" for c, m in problems]
        raise IngestError(format_listing(source.path, lines, len(problems)), code="ingest_invalid",
                          invalid_params=[{"name": c, "reason": m, "location": where} for c, m in problems])
    return list(bound.values())


# ----- parsing ---------------------------------------------------------------------------
def _is_text(arr: pa.Array) -> bool:
    """True for (large) string arrays: every CSV column, text columns of Parquet."""
    return pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)


def _null_mask(arr: pa.Array) -> np.ndarray:
    """True where the raw value is NULL (a null, or a NULL token in text)."""
    mask = pc.is_null(arr)
    if _is_text(arr):
        mask = pc.or_(mask, pc.is_in(arr, value_set=pa.array(NULL_TOKENS)))
    return mask.to_numpy(zero_copy_only=False)


def _encode(arr: pa.Array) -> tuple[pd.Series, np.ndarray]:
    """Distinct non-null values (a Series) and, per row, the index of its value (-1 for null)."""
    encoded = pc.dictionary_encode(arr)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return pd.Series(encoded.dictionary.to_pylist(), dtype=object), codes


def _floats_slowly(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Error path: parse distinct values against a decimal-number pattern; (values, not-a-number mask)."""
    uniques, codes = _encode(arr)
    numeric = uniques.str.fullmatch(_NUMBER_RE).fillna(False).to_numpy(dtype=bool)
    parsed = np.full(len(uniques) + 1, np.nan)
    parsed[:-1][numeric] = uniques[numeric].astype(float).to_numpy()
    return parsed[codes], np.append(~numeric, False)[codes]


def _to_floats(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN for NULL) and the mask of values that are not numbers."""
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(arr), bool)
    if not _is_text(arr):
        return np.full(len(arr), np.nan), ~_null_mask(arr)
    try:  # the happy path: no NULL tokens other than NaN, nothing to report
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(arr), bool)
    except pa.ArrowInvalid:
        pass
    arr = pc.if_else(pa.array(_null_mask(arr)), pa.scalar(None, arr.type), arr)
    try:
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), np.zeros(len(arr), bool)
    except pa.ArrowInvalid:
        return _floats_slowly(arr)


def _parse_number(arr: pa.Array, column: BoundColumn, _site: Site) -> _Parsed:
    """float64 values (int columns too: converted when the frame is built) with type and range checks;
    NaN in any spelling is NULL."""
    values, bad = _to_floats(arr)
    null = np.isnan(values) & ~bad
    finite = np.isfinite(values)
    problems = [(bad, "not a number"), (np.isinf(values), "not a finite number")]
    if column.kind == "int":
        problems.append((finite & (values != np.round(values)), "not an integer"))
    if column.bounds is not None:
        low, high = column.bounds
        problems.append((finite & ((values < low) | (values > high)), f"out of range {_span(low, high, column.unit)}"))
    if not finite.all():
        values = np.where(finite, values, np.nan)
    return _Parsed(values, null, problems)


def _span(low: float, high: float, unit: str) -> str:
    """A range as people write it: `0–100 %`, `≥ 0 kWh`."""
    text = f"≥ {low:g}" if math.isinf(high) else f"{low:g}–{high:g}"
    return f"{text} {unit}" if unit else text


def _parse_timestamp(arr: pa.Array, _column: BoundColumn, site: Site) -> _Parsed:
    """UTC epoch nanoseconds (int64; NaT where there is a problem) from ISO 8601 text or Parquet timestamps."""
    null = _null_mask(arr)
    if pa.types.is_timestamp(arr.type):
        ns, code = _arrow_timestamps(arr, site)
    elif _is_text(arr):
        uniques, codes = _encode(arr)
        unique_ns, unique_code = _parse_unique_timestamps(uniques, site)
        ns, code = np.append(unique_ns, NAT)[codes], np.append(unique_code, 4)[codes]
    else:
        ns, code = np.full(len(arr), NAT), np.where(null, 4, 1)
    messages = [m.format(tz=site.timezone) for m in _TS_PROBLEMS]
    return _Parsed(ns, null, [(code == k, messages[k]) for k in range(1, len(messages))])


def _parse_unique_timestamps(texts: pd.Series, site: Site) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct text: UTC epoch ns and a code into _TS_PROBLEMS (0 = fine)."""
    parts = texts.str.extract(_TS_RE)
    base = pd.to_datetime(parts["date"] + " " + parts["time"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    aware = parts["tz"].notna().to_numpy()
    offset = _offset_minutes(parts["tz"])
    utc = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns, UTC]")
    utc[aware] = (base[aware] - pd.to_timedelta(offset[aware], unit="min")).dt.tz_localize("UTC")
    utc[~aware] = base[~aware].dt.tz_localize(site.tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    code = np.zeros(len(texts), dtype=np.int8)
    code[~parts["frac"].fillna("").str.fullmatch(r"(?:\.0*)?").to_numpy(dtype=bool)] = 2
    code[~aware & base.notna().to_numpy() & utc.isna().to_numpy()] = 3
    code[base.isna().to_numpy() | (aware & offset.isna().to_numpy())] = 1
    code[texts.isin(NULL_TOKENS).to_numpy()] = 4
    return pd.DatetimeIndex(utc).as_unit("ns").asi8, code


def _offset_minutes(offsets: pd.Series) -> pd.Series:
    """Minutes east of UTC of `Z`, `±HH`, `±HHMM`, `±HH:MM`; NaN when absent or impossible."""
    text = offsets.fillna("").str.replace(":", "", regex=False).str.upper()
    digits = text.str[1:].str.ljust(4, "0")
    hours, minutes = pd.to_numeric(digits.str[:2]), pd.to_numeric(digits.str[2:4])
    total = pd.Series(np.where(text.str[:1] == "-", -1, 1), index=offsets.index) * (hours * 60 + minutes)
    return total.where((text != "") & (hours <= 14) & (minutes < 60))


def _arrow_timestamps(arr: pa.Array, site: Site) -> tuple[np.ndarray, np.ndarray]:
    """Parquet timestamps: tz-aware as stored, naive in the site's time zone; (UTC ns, problem codes)."""
    values = pd.Series(arr.to_pandas())
    if arr.type.tz is None:
        values = values.dt.tz_localize(site.tz, ambiguous="NaT", nonexistent="NaT")
    ns = pd.DatetimeIndex(values.dt.tz_convert("UTC")).as_unit("ns").asi8
    null = pc.is_null(arr).to_numpy(zero_copy_only=False)
    code = np.where(null, 4, np.where(ns == NAT, 3, np.where(ns % 10**9 != 0, 2, 0)))
    return ns, code


def _parse_json(arr: pa.Array, _column: BoundColumn, _site: Site) -> _Parsed:
    """JSON text, stored as written; validity checked once per distinct value."""
    null = _null_mask(arr)
    if not _is_text(arr):  # Parquet struct/list values: serialise them
        values = np.array([None if v is None else json.dumps(v) for v in arr.to_pylist()], dtype=object)
        return _Parsed(values, null)
    uniques, codes = _encode(arr)
    valid = np.array([_is_json(v) for v in uniques] + [True], dtype=bool)
    values = np.append(uniques.to_numpy(dtype=object), np.array([None], dtype=object))[codes]
    values[null] = None
    return _Parsed(values, null, [(~valid[codes] & ~null, "invalid JSON")])


def _is_json(text: str) -> bool:
    """True when `text` parses as JSON."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _parse_text(arr: pa.Array, _column: BoundColumn, _site: Site) -> _Parsed:
    """Text columns (not typed by the catalogue): stored as written, NULL tokens as NULL."""
    null = _null_mask(arr)
    values = np.array([v if v is None or isinstance(v, str) else str(v) for v in arr.to_pylist()], dtype=object)
    values[null] = None
    return _Parsed(values, null)


_PARSERS: dict[str, Callable[[pa.Array, BoundColumn, Site], _Parsed]] = {
    "timestamp": _parse_timestamp, "int": _parse_number, "float": _parse_number,
    "json": _parse_json, "text": _parse_text,
}


def _check_keys(parsed: dict[str, _Parsed], columns: list[BoundColumn], site: Site) -> None:
    """Add problems for missing BANK_ID/RACK_ID values and for banks and racks the site lacks."""
    names = {c.name.upper(): c.name for c in columns}
    bank, rack = parsed.get(names.get("BANK_ID", "")), parsed.get(names.get("RACK_ID", ""))
    for key in (bank, rack):
        if key is not None:
            key.problems.append((key.null, "missing value (key column)"))
    if bank is None:
        return
    known_bank = np.isin(bank.values, site.bank_ids)
    bank.problems.append((~np.isnan(bank.values) & ~known_bank, f"no such bank at site {site.id}"))
    if rack is not None:
        pairs = np.array([b * 100_000 + r for b, r in site.rack_keys], dtype=float)
        known = np.isin(bank.values * 100_000 + rack.values, pairs)
        message = f"no such rack in that bank at site {site.id}"
        rack.problems.append((known_bank & ~np.isnan(rack.values) & ~known, message))


# ----- collecting ------------------------------------------------------------------------
def collect(source: Source, columns: list[BoundColumn], site: Site, keep_rejects: bool,
             progress: bool) -> Collected:
    """Parse every batch: parsed columns, problems and (with keep_rejects) the raw bad rows."""
    collected = Collected(columns={c.name: [] for c in columns})
    with tqdm(total=source.total, unit="row", desc=f"{source.path.name} read", disable=not progress) as bar:
        for batch in source.batches():
            _collect_batch(batch, columns, site, collected, keep_rejects)
            collected.rows += batch.num_rows
            bar.update(batch.num_rows)
    source.total = collected.rows
    return collected


def _collect_batch(batch: pa.RecordBatch, columns: list[BoundColumn], site: Site, collected: Collected,
                   keep_rejects: bool) -> None:
    """Parse one batch into `collected` (row indices made file-wide)."""
    parsed = {c.name: _PARSERS[c.kind](_plain(batch.column(c.position)), c, site) for c in columns}
    _check_keys(parsed, columns, site)
    limit = None if keep_rejects else MAX_LISTED
    bad = np.zeros(batch.num_rows, dtype=bool)
    for column in columns:
        if keep_rejects or not collected.flags:  # a failing file keeps only its problems
            collected.columns[column.name].append(parsed[column.name].values)
        for mask, message in parsed[column.name].problems:
            if mask.any():
                bad |= mask
                rows = np.flatnonzero(mask)
                raw = _texts(batch.column(column.position).take(pa.array(rows[:limit])))
                collected.flags.append(Flag(column.label, column.position, rows + collected.rows, message, raw))
    if keep_rejects and bad.any():
        rows = np.flatnonzero(bad)
        taken = batch.take(pa.array(rows))
        fields = zip(*(_texts(taken.column(i)) for i in range(taken.num_columns)), strict=True)
        collected.rejects.update({int(r) + collected.rows: list(f) for r, f in zip(rows, fields, strict=True)})


def _plain(arr: pa.Array) -> pa.Array:
    """Dictionary-encoded Parquet columns (pandas categories) as plain arrays."""
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _texts(arr: pa.Array) -> list[str]:
    """Raw values as text ('' for null): exact for CSV, str() of the stored value for Parquet."""
    return ["" if v is None else str(v) for v in arr.to_pylist()]
