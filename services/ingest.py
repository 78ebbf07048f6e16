"""Ingestion of CSV and Parquet files into a site's component tables (DATA.md, "Ingestion").

One file is one transaction: the file is read in batches (pyarrow; every CSV value as a
string, so problems can quote the exact text), each column is parsed and checked with
vectorised code, and only a file without problems (or with its bad rows set aside when the
caller asks for `skip_bad_rows`) reaches `SiteStore.write_frame`, which upserts on the
natural key. Re-ingesting a file therefore changes nothing.

Decisions (documented here because tests and users rely on them):

* Columns match the reflected table case-insensitively (API lower case and the original's
  upper case both work). Unknown, duplicated and missing key columns are file-level
  problems: they fail the file even with `skip_bad_rows`.
* NULL is an empty field or one of NULL_TOKENS. A column absent from the file is NULL.
* Timestamps: ISO 8601 `YYYY-MM-DD[T ]HH:MM:SS[.fff][offset]`, offset `Z`, `±HH`, `±HHMM` or
  `±HH:MM` (honoured); naive values are the site's local time (`site.timezone`); a local time
  that does not exist or is ambiguous (DST) is a problem. A fraction must be zero: the natural
  key is per second, and flooring `10:00:00.6` would silently merge two samples into one key,
  so a non-zero fraction is reported ("fractional seconds"). Parquet timestamp columns follow
  the same rules (tz-aware honoured, naive = site local time).
* Numbers: decimal text as pyarrow parses it (`1`, `-2.5`, `1e3`); `inf` is "not a finite
  number"; integer columns accept `1` and `1.0` but not `1.5`. Ranges: see `get_range`.
* Keys: BANK_ID must be a bank of the site, (BANK_ID, RACK_ID) a rack of the site.
* Locations: CSV problems name the 1-based physical line (header = line 1, quoted newlines
  counted); Parquet problems name `row N` (1-based data row) or `schema`.
* Rows repeating a key inside the file: the last one wins (as `write_frame` does); the count is
  in the report and a warning names the first few superseded lines.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import mmap
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import sqlalchemy as sa
from tqdm import tqdm

from services import catalogue
from services.errors import IngestError
from services.registry import Site
from services.storage import SiteStore, key_columns

log = logging.getLogger(__name__)

NULL_TOKENS: tuple[str, ...] = ("", "NULL", "null", "None", "NaN", "nan")
MAX_LISTED = 20  # problems listed in an IngestError; the rest are counted
MAX_DUPLICATE_LINES = 5  # superseded lines named in the duplicate warning
CSV_BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 65_536
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
_SUFFIXES = (".csv", ".parquet")


@dataclass
class IngestReport:
    """What one file did to the site: counts, the reject file and warnings."""

    file: Path
    component: str
    rows_read: int = 0
    written: int = 0
    skipped: int = 0
    duplicates: int = 0
    reject_file: Path | None = None
    warnings: list[str] = field(default_factory=list)
    time_range: tuple[datetime, datetime] | None = None  # first and last TIMESTAMP written (UTC), for jobs

    def format_summary(self) -> str:
        """One readable line, e.g. for the CLI."""
        text = (f"{self.file.name} → {self.component}: {self.rows_read:,} rows read, {self.written:,} written, "
                f"{self.skipped:,} skipped, {self.duplicates:,} duplicates")
        return text + (f" (rejects in {self.reject_file})" if self.reject_file else "")


@dataclass(frozen=True)
class _Column:
    """One file column bound to a table column."""

    position: int  # in the file
    label: str  # as spelt in the file
    name: str  # as spelt in the table
    kind: str  # timestamp, int, float, json or text
    unit: str  # from the catalogue, for messages
    bounds: tuple[float, float] | None


@dataclass
class _Flag:
    """Rows of one column that share one problem (rows are 0-based data-row indices)."""

    label: str
    position: int
    rows: np.ndarray
    message: str
    values: list[str]  # raw values of the first len(values) rows

    def describe(self, i: int) -> str:
        """`column NAME: problem (value 'x')` for the i-th row of the flag."""
        value = f" (value {_quote(self.values[i])})" if i < len(self.values) else ""
        return f"column {self.label}: {self.message}{value}"


@dataclass
class _Parsed:
    """One column of one batch: values ready for the frame, NULL mask and problems."""

    values: np.ndarray
    null: np.ndarray
    problems: list[tuple[np.ndarray, str]] = field(default_factory=list)


@dataclass
class _Collected:
    """Everything read from a file: parsed columns, problems and the raw bad rows."""

    columns: dict[str, list[np.ndarray]]
    rows: int = 0
    flags: list[_Flag] = field(default_factory=list)
    rejects: dict[int, list[str]] = field(default_factory=dict)


# ----- public API ------------------------------------------------------------------------
def ingest_file(site: Site, component: str | None, path: Path, *, skip_bad_rows: bool = False,
                reject_path: Path | None = None, progress: bool = True) -> IngestReport:
    """Validate one CSV or Parquet file and upsert it into the site's component table in one
    transaction; IngestError (nothing written) names file, line and column of each problem."""
    path = Path(path)
    if reject_path is not None:
        _check_reject_path(path, Path(reject_path))
    component = component or infer_component(site, path)
    store = SiteStore(site)
    table = store.table(component)
    source = _open_source(path)
    columns = _bind_columns(site, component, table, source)
    collected = _collect(source, columns, site, skip_bad_rows, progress)
    malformed = source.malformed()
    report = IngestReport(file=path, component=component, rows_read=collected.rows + len(malformed))
    keep = None
    if collected.flags or malformed:
        if not skip_bad_rows:
            raise _problems_error(source, collected.flags, malformed)
        keep = _keep_mask(collected)
        report.skipped = int((~keep).sum()) + len(malformed)
        report.reject_file = _write_rejects(source, collected, malformed,
                                            reject_path or path.with_name(path.name + ".rejects.csv"))
    frame, index = _build_frame(collected, columns, keep)
    key = key_columns(component, [c.name for c in table.columns])
    frame = _collapse_duplicates(frame, index, key, source, report)
    report.written = _write(store, component, frame, path, progress)
    if report.written:
        ts = frame[next(c.name for c in columns if c.kind == "timestamp")]
        report.time_range = (ts.min().to_pydatetime(), ts.max().to_pydatetime())
    log.info("%s", report.format_summary())
    return report


def _check_reject_path(path: Path, reject_path: Path) -> None:
    """Refuse, before reading anything, a reject file that would overwrite the input or
    that cannot be created (its folder is missing, or it is a folder)."""
    if reject_path.exists() and path.exists() and reject_path.samefile(path):  # also a link to it
        raise IngestError(f"{reject_path}: the reject file is the input file {path}; it would be overwritten",
                          code="ingest_reject_path")
    if reject_path.is_dir() or not reject_path.parent.is_dir():
        raise IngestError(f"{reject_path}: cannot write the reject file there (a folder, or its folder "
                          f"{reject_path.parent} does not exist)", code="ingest_reject_path")


def ingest_paths(site: Site, component: str | None, paths: Iterable[Path], *, skip_bad_rows: bool = False,
                 progress: bool = True) -> list[IngestReport]:
    """Ingest several files, each in its own transaction (rejects beside each file); the first
    failing file raises IngestError: files before it stay written, files after it are not read."""
    return [ingest_file(site, component, Path(p), skip_bad_rows=skip_bad_rows, progress=progress) for p in paths]


def infer_component(site: Site, path: Path) -> str:
    """Component named by `YYYYMMDD_<table>.csv|.parquet`, `<table>.csv|.parquet` or
    `<table>/YYYYMMDD.parquet`; IngestError when the name fits no table of the site."""
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() in _SUFFIXES else path.name
    match = re.fullmatch(r"(?:\d{8}_)?(.+)", stem)
    name = match.group(1) if match else stem
    if re.fullmatch(r"\d{8}|\d{4}-\d{2}-\d{2}", stem):
        name = path.parent.name
    by_table = {table.lower(): comp for comp, table in site.tables.items()}
    if name.lower() in by_table:
        return by_table[name.lower()]
    raise IngestError(f"{path}: cannot tell the component from the file name; expected YYYYMMDD_<table>.csv or "
                      f".parquet with <table> one of {', '.join(sorted(site.tables.values()))}",
                      code="ingest_component_unknown")


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


# ----- sources ---------------------------------------------------------------------------
Malformed = tuple[int, list[str], str]  # (line, fields as split by csv, problem)


class _Source:
    """A file opened for reading: header names, record batches and where data rows are."""

    path: Path
    names: list[str]
    total: int | None  # data rows, when known before reading
    header_location = "1"

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches whose columns are the file's, in file order."""
        raise NotImplementedError

    def locate(self, rows: np.ndarray) -> np.ndarray:
        """Line (CSV) or 1-based row (Parquet) number of 0-based data-row indices."""
        return np.asarray(rows, dtype=np.int64) + 1

    def where(self, number: int) -> str:
        """How a location number is written in messages."""
        return str(number)

    def malformed(self) -> list[Malformed]:
        """Records the reader could not split into the header's columns."""
        return []


class _CsvSource(_Source):
    """CSV read by pyarrow with every value as a string (exact text for messages and rejects)."""

    def __init__(self, path: Path) -> None:
        self.path, self.total = path, None
        self._invalid: list[str] = []  # text of the rows pyarrow could not split
        self._lock = threading.Lock()
        self._layout: tuple[np.ndarray | None, list[Malformed]] | None = None
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
        if not header:
            raise IngestError(f"{path}:1: empty file (no header line)", code="ingest_invalid")
        self.names = header

    def _on_invalid(self, row: Any) -> str:
        with self._lock:  # called from pyarrow's parser threads
            self._invalid.append(row.text)
        return "skip"

    def batches(self) -> Iterator[pa.RecordBatch]:
        names = [f"c{i}" for i in range(len(self.names))]
        try:
            yield from pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=CSV_BLOCK_BYTES),
                parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False,
                                                invalid_row_handler=self._on_invalid),
                convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            if "Could not skip initial" in str(exc):  # a header without a newline and no data
                return
            raise IngestError(f"{self.path}: cannot read the file as UTF-8 CSV: {exc}", code="ingest_invalid") from None

    def locate(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        starts, malformed = self._lines()
        if starts is not None:
            return starts[rows]
        before = np.array([m[0] for m in malformed], dtype=np.int64) - np.arange(len(malformed)) - 2
        return rows + 2 + np.searchsorted(before, rows, side="right")

    def malformed(self) -> list[Malformed]:
        return self._lines()[1] if self._invalid else []

    def _lines(self) -> tuple[np.ndarray | None, list[Malformed]]:
        """(first line of each data record, or None when every record is one line; malformed records)."""
        if self._layout is None:
            one_line_records = self._count_lines() == 1 + (self.total or 0) + len(self._invalid)
            found = self._find_malformed() if one_line_records else None
            self._layout = (None, found) if found is not None else self._scan()
        return self._layout

    def _count_lines(self) -> int:
        """Physical lines in the file (a last line without a newline counts)."""
        count, last = 0, b"\n"
        with self.path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                count, last = count + chunk.count(b"\n"), chunk[-1:]
        return count + (last != b"\n")

    def _find_malformed(self) -> list[Malformed] | None:
        """Lines of the rows pyarrow skipped, found by their text in a one-line-per-record file
        (fast); None when that is not conclusive."""
        wanted = Counter(self._invalid)
        if not wanted:
            return []
        if len(wanted) > 100:
            return None
        starts: list[tuple[int, str]] = []
        with self.path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for text, count in wanted.items():
                found = _find_lines(mm, text.encode())
                if len(found) != count:
                    return None
                starts += [(pos, text) for pos in found]
            malformed, previous, line = [], 0, 1
            for pos, text in sorted(starts):
                line, previous = line + mm[previous:pos].count(b"\n"), pos
                fields = next(csv.reader([text]), [])
                malformed.append((line, fields, f"expected {len(self.names)} fields, found {len(fields)}"))
        return malformed

    def _scan(self) -> tuple[np.ndarray, list[Malformed]]:
        """Slow path (quoted newlines with problems): each record's first line, by the csv module."""
        starts: list[int] = []
        malformed: list[Malformed] = []
        with self.path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            previous = reader.line_num
            for fields in reader:
                if not fields or len(fields) == len(self.names):
                    starts.append(previous + 1)
                else:
                    malformed.append((previous + 1, fields, f"expected {len(self.names)} fields, found {len(fields)}"))
                previous = reader.line_num
        return np.asarray(starts, dtype=np.int64), malformed


def _find_lines(mm: mmap.mmap, text: bytes) -> list[int]:
    """Byte offsets of the lines (after the first) whose whole content is `text`."""
    found, needle, pos = [], b"\n" + text, mm.find(b"\n" + text)
    while pos >= 0:
        end = pos + len(needle)
        if mm[end:end + 1] in (b"\n", b"\r", b""):
            found.append(pos + 1)
        pos = mm.find(needle, pos + 1)
    return found


class _ParquetSource(_Source):
    """Parquet read by pyarrow in batches; columns keep their stored types."""

    header_location = "schema"

    def __init__(self, path: Path) -> None:
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IngestError(f"{path}: cannot read the file as Parquet: {exc}", code="ingest_invalid") from None
        self.path, self.names = path, list(self._file.schema_arrow.names)
        self.total = self._file.metadata.num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield from self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS)

    def where(self, number: int) -> str:
        return f"row {number}"


def _open_source(path: Path) -> _Source:
    """The reader for a .csv or .parquet file; IngestError for anything else."""
    if not path.is_file():
        raise IngestError(f"{path}: no such file", code="ingest_file_missing")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _CsvSource(path)
    if suffix == ".parquet":
        return _ParquetSource(path)
    raise IngestError(f"{path}: unsupported file type {suffix!r} (expected .csv or .parquet)", code="ingest_invalid")


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


def _bind_columns(site: Site, component: str, table: sa.Table, source: _Source) -> list[_Column]:
    """Match file columns to table columns; IngestError for unknown, duplicated or missing key columns."""
    by_upper = {c.name.upper(): c for c in table.columns}
    variant = site.column_sets.get(component, "")
    bound: dict[str, _Column] = {}
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
            bound[column.name] = _Column(position, label, column.name, kind, described.unit,
                                         get_range(described, kind, site))
    key = key_columns(component, [c.name for c in table.columns])
    problems += [(k, "missing key column") for k in key if k not in bound]
    if problems:
        where = f"{source.path}:{source.header_location}"
        lines = [f"{where}: column {c}: {m}" for c, m in problems]
        raise IngestError(_format_listing(source.path, lines, len(problems)), code="ingest_invalid",
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


def _parse_number(arr: pa.Array, column: _Column, _site: Site) -> _Parsed:
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


def _parse_timestamp(arr: pa.Array, _column: _Column, site: Site) -> _Parsed:
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


def _parse_json(arr: pa.Array, _column: _Column, _site: Site) -> _Parsed:
    """JSON text, stored as written; validity checked once per distinct value."""
    null = _null_mask(arr)
    if not _is_text(arr):  # Parquet struct/list values: serialise them
        values = np.array([None if v is None else json.dumps(v) for v in arr.to_pylist()], dtype=object)
        return _Parsed(values, null)
    uniques, codes = _encode(arr)
    valid = np.array([_is_json(v) for v in uniques] + [True], dtype=bool)
    values = np.append(uniques.to_numpy(dtype=object), None)[codes]
    values[null] = None
    return _Parsed(values, null, [(~valid[codes] & ~null, "invalid JSON")])


def _is_json(text: str) -> bool:
    """True when `text` parses as JSON."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _parse_text(arr: pa.Array, _column: _Column, _site: Site) -> _Parsed:
    """Text columns (not typed by the catalogue): stored as written, NULL tokens as NULL."""
    null = _null_mask(arr)
    values = np.array([v if v is None or isinstance(v, str) else str(v) for v in arr.to_pylist()], dtype=object)
    values[null] = None
    return _Parsed(values, null)


_PARSERS: dict[str, Callable[[pa.Array, _Column, Site], _Parsed]] = {
    "timestamp": _parse_timestamp, "int": _parse_number, "float": _parse_number,
    "json": _parse_json, "text": _parse_text,
}


def _check_keys(parsed: dict[str, _Parsed], columns: list[_Column], site: Site) -> None:
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
def _collect(source: _Source, columns: list[_Column], site: Site, keep_rejects: bool,
             progress: bool) -> _Collected:
    """Parse every batch: parsed columns, problems and (with keep_rejects) the raw bad rows."""
    collected = _Collected(columns={c.name: [] for c in columns})
    with tqdm(total=source.total, unit="row", desc=f"{source.path.name} read", disable=not progress) as bar:
        for batch in source.batches():
            _collect_batch(batch, columns, site, collected, keep_rejects)
            collected.rows += batch.num_rows
            bar.update(batch.num_rows)
    source.total = collected.rows
    return collected


def _collect_batch(batch: pa.RecordBatch, columns: list[_Column], site: Site, collected: _Collected,
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
                collected.flags.append(_Flag(column.label, column.position, rows + collected.rows, message, raw))
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


# ----- problems --------------------------------------------------------------------------
def _quote(value: str) -> str:
    """A raw value for messages: quoted, at most 60 characters."""
    text = value if len(value) <= 60 else value[:57] + "..."
    return "'" + text.replace("'", "\\'") + "'"


def _format_listing(path: Path, lines: list[str], total: int) -> str:
    """An IngestError detail: a headline, up to MAX_LISTED problems and how many more."""
    head = f"{path}: {total} problem{'s' if total != 1 else ''}, nothing written"
    more = [f"... and {total - MAX_LISTED} more"] if total > MAX_LISTED else []
    return "\n".join([head, *lines[:MAX_LISTED], *more])


def _problems_error(source: _Source, flags: list[_Flag], malformed: list[Malformed]) -> IngestError:
    """IngestError listing the first problems in file order and counting the rest."""
    firsts = sorted(((int(f.rows[i]), f.position, f, i) for f in flags for i in range(min(MAX_LISTED, len(f.rows)))),
                    key=lambda t: t[:2])[:MAX_LISTED]
    numbers = source.locate(np.array([t[0] for t in firsts], dtype=np.int64))
    entries = [(int(n), pos, flag.label, flag.describe(i))
               for n, (_, pos, flag, i) in zip(numbers, firsts, strict=True)]
    entries += [(line, -1, "", message) for line, _, message in malformed]
    entries.sort(key=lambda e: e[:2])
    lines = [f"{source.path}:{source.where(n)}: {text}" for n, _, _, text in entries]
    params = [{"name": label, "reason": text.removeprefix(f"column {label}: "), "location": source.where(n)}
              for n, _, label, text in entries]
    total = sum(len(f.rows) for f in flags) + len(malformed)
    return IngestError(_format_listing(source.path, lines, total), code="ingest_invalid",
                       invalid_params=params[:MAX_LISTED])


def _keep_mask(collected: _Collected) -> np.ndarray:
    """True for rows without any problem."""
    keep = np.ones(collected.rows, dtype=bool)
    for flag in collected.flags:
        keep[flag.rows] = False
    return keep


def _write_rejects(source: _Source, collected: _Collected, malformed: list[Malformed], reject_path: Path) -> Path:
    """Write the bad rows in file order (raw values, then a `reason` column); return the path."""
    reasons: dict[int, list[str]] = {}
    for flag in collected.flags:
        for i, row in enumerate(flag.rows.tolist()):
            reasons.setdefault(row, []).append(flag.describe(i))
    rows = sorted(collected.rejects)
    width = len(source.names)
    records = [(int(n), collected.rejects[r], "; ".join(reasons[r]))
               for n, r in zip(source.locate(np.array(rows, dtype=np.int64)), rows, strict=True)]
    records += [(line, (fields + [""] * width)[:width], message + _extra(fields[width:]))
                for line, fields, message in malformed]
    with reject_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*source.names, "reason"])
        for number, fields, reason in sorted(records, key=lambda r: r[0]):
            writer.writerow([*fields, f"{_location_word(source)}{source.where(number)}: {reason}"])
    return reject_path


def _extra(fields: list[str]) -> str:
    """Fields beyond the header's width, kept in the reason so that the reject file loses nothing."""
    return f" (extra fields: {', '.join(_quote(f) for f in fields)})" if fields else ""


def _location_word(source: _Source) -> str:
    return "line " if isinstance(source, _CsvSource) else ""


# ----- frame and write -------------------------------------------------------------------
def _finish(values: np.ndarray, kind: str) -> Any:
    """Frame-ready column: aware UTC timestamps, int64 (nullable Int64 when NULLs), floats, text."""
    if kind == "timestamp":
        return pd.to_datetime(values, unit="ns", utc=True)
    if kind != "int":
        return values
    return pd.array(values, dtype="Int64") if np.isnan(values).any() else values.astype(np.int64)


def _build_frame(collected: _Collected, columns: list[_Column],
                 keep: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame to write (bad rows dropped) and the 0-based data-row index of each of its rows."""
    data: dict[str, Any] = {}
    for column in columns:
        parts = collected.columns.pop(column.name)
        empty = np.array([], dtype=np.int64 if column.kind == "timestamp" else float)
        values = np.concatenate(parts) if parts else empty
        data[column.name] = _finish(values if keep is None else values[keep], column.kind)
    index = np.arange(collected.rows) if keep is None else np.flatnonzero(keep)
    return pd.DataFrame(data, copy=False), index  # the arrays are ours: no copy, no consolidation


def _collapse_duplicates(frame: pd.DataFrame, index: np.ndarray, key: Sequence[str], source: _Source,
                         report: IngestReport) -> pd.DataFrame:
    """Drop rows whose key a later row repeats (the last wins, as in write_frame); count and warn."""
    superseded = frame.duplicated(list(key), keep="last").to_numpy()
    report.duplicates = int(superseded.sum())
    if not report.duplicates:
        return frame
    numbers = source.locate(index[superseded][:MAX_DUPLICATE_LINES])
    shown = ", ".join(str(n) for n in numbers) + (", ..." if report.duplicates > len(numbers) else "")
    noun = ("line" if isinstance(source, _CsvSource) else "row") + ("s" if report.duplicates > 1 else "")
    count = "1 row repeats" if report.duplicates == 1 else f"{report.duplicates} rows repeat"
    report.warnings.append(f"{source.path}: {count} the key of a later row, which replaced it ({noun} {shown})")
    log.warning("%s", report.warnings[-1])
    return frame.loc[~superseded].reset_index(drop=True)


def _write(store: SiteStore, component: str, frame: pd.DataFrame, path: Path, progress: bool) -> int:
    """Upsert the frame in one transaction with a progress bar; the number of rows written."""
    with tqdm(total=len(frame), unit="row", desc=f"{path.name} write", disable=not progress) as bar:
        return store.write_frame(component, frame, progress=bar.update).written
