"""Ingestion problems: the error listing and the reject file."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.core.errors import IngestError
from services.ingest.sources import CsvSource, Malformed, Source

MAX_LISTED = 20  # problems listed in an IngestError; the rest are counted


@dataclass
class Flag:
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
class Collected:
    """Everything read from a file: parsed columns, problems and the raw bad rows."""

    columns: dict[str, list[np.ndarray]]
    rows: int = 0
    flags: list[Flag] = field(default_factory=list)
    rejects: dict[int, list[str]] = field(default_factory=dict)


# ----- problems --------------------------------------------------------------------------
def _quote(value: str) -> str:
    """A raw value for messages: quoted, at most 60 characters."""
    text = value if len(value) <= 60 else value[:57] + "..."
    return "'" + text.replace("'", "\\'") + "'"


def format_listing(path: Path, lines: list[str], total: int) -> str:
    """An IngestError detail: a headline, up to MAX_LISTED problems and how many more."""
    head = f"{path}: {total} problem{'s' if total != 1 else ''}, nothing written"
    more = [f"... and {total - MAX_LISTED} more"] if total > MAX_LISTED else []
    return "\n".join([head, *lines[:MAX_LISTED], *more])


def problems_error(source: Source, flags: list[Flag], malformed: list[Malformed]) -> IngestError:
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
    return IngestError(format_listing(source.path, lines, total), code="ingest_invalid",
                       invalid_params=params[:MAX_LISTED])


def keep_mask(collected: Collected) -> np.ndarray:
    """True for rows without any problem."""
    keep = np.ones(collected.rows, dtype=bool)
    for flag in collected.flags:
        keep[flag.rows] = False
    return keep


def write_rejects(source: Source, collected: Collected, malformed: list[Malformed], reject_path: Path) -> Path:
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


def _location_word(source: Source) -> str:
    return "line " if isinstance(source, CsvSource) else ""
