"""Ingestion sources: CSV and Parquet files read in batches."""

from __future__ import annotations

import csv
import mmap
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from services.core.errors import IngestError

CSV_BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 65_536


# ----- sources ---------------------------------------------------------------------------
Malformed = tuple[int, list[str], str]  # (line, fields as split by csv, problem)


class Source:
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


class CsvSource(Source):
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


class _ParquetSource(Source):
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


def open_source(path: Path) -> Source:
    """The reader for a .csv or .parquet file; IngestError for anything else."""
    if not path.is_file():
        raise IngestError(f"{path}: no such file", code="ingest_file_missing")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvSource(path)
    if suffix == ".parquet":
        return _ParquetSource(path)
    raise IngestError(f"{path}: unsupported file type {suffix!r} (expected .csv or .parquet)", code="ingest_invalid")
