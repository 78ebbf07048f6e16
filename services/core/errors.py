"""Typed errors raised by services; each surface (API, UI, CLI) renders them once."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EssError(Exception):
    """Base class: `code` is stable and machine-readable, `detail` is for people."""

    detail: str
    code: str = "error"
    status: int = 500
    title: str = "Internal error"
    invalid_params: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail


@dataclass
class NotFound(EssError):
    code: str = "not_found"
    status: int = 404
    title: str = "Not found"


@dataclass
class InvalidQuery(EssError):
    code: str = "invalid_query"
    status: int = 400
    title: str = "Invalid query"


@dataclass
class ConfigError(EssError):
    """A registry, protection map or setting that cannot be used; raised at start-up."""

    code: str = "config_error"
    status: int = 500
    title: str = "Configuration error"


@dataclass
class Unavailable(EssError):
    code: str = "unavailable"
    status: int = 503
    title: str = "Service unavailable"


@dataclass
class WriteError(EssError):
    """The database refused a write; nothing of that call was stored."""

    code: str = "write_failed"
    status: int = 500
    title: str = "Write failed"


@dataclass
class IngestError(EssError):
    """A file that failed validation; `detail` names file, line and column."""

    code: str = "ingest_error"
    status: int = 400
    title: str = "Invalid input file"


@dataclass
class NotComputed(EssError):
    """A stored result (an index, a forecast, the protection events) whose job has not run
    for the site yet; `what` names it (sos, exsos, sol, socp, forecasts, events) so that a
    page can say which."""

    code: str = "not_computed"
    status: int = 404
    title: str = "Not computed yet"
    what: str = ""


def site_unavailable(site_id: int | str) -> Unavailable:
    """The one error for a site database that cannot be reached (503 naming the site)."""
    return Unavailable(f"site {site_id} database is unreachable", code="database_unavailable")
