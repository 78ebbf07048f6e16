"""Small text formats shared by the pages: ages, measured values with their unit, error
codes in the page's language (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.core.i18n import normalize_lang
from services.protection.codes import ERROR_CODES, MEASURES


def format_age(seconds: float, lang: str) -> str:
    """`42 s`, `5 min`, `3 h`, `12 d`, `4.2 y` (Korean units in Korean)."""
    ko = normalize_lang(lang) == "ko"
    if seconds >= 365 * 86400:
        return f"{seconds / (365.25 * 86400):.1f}{'년' if ko else ' y'}"
    for size, en, kr in ((86400, " d", "일"), (3600, " h", "시간"), (60, " min", "분")):
        if seconds >= size:
            return f"{int(seconds // size)}{kr if ko else en}"
    return f"{int(seconds)}{'초' if ko else ' s'}"


def format_measured(code: int | None, value: Any, unit: str | None = None) -> str:
    """An event's value or an episode's peak with the unit and decimals of what its error
    code measures (`4.306 V`, `52.0 °C`; `unit` when the reading gives its own); "" for no
    value and for flag-only codes (relay, fuse, communication: the value is the flag)."""
    if value is None or value == "":
        return ""
    measure = MEASURES.get(int(code)) if code is not None else None
    if measure is None:
        return f"{float(value):g} {unit}" if unit else ""
    return f"{float(value):.{measure.decimals}f} {unit or measure.unit}"


def describe_code(code: Mapping[str, Any] | int | None, lang: str) -> str:
    """The error code's text in the page's language (`Rack over-voltage`, `랙 과전압`)."""
    if isinstance(code, Mapping):
        cid = code.get("id")
        ko, en = code.get("description"), code.get("description_eng")
    else:
        cid, ko, en = code, None, None
    known = ERROR_CODES.get(int(cid)) if cid is not None else None
    if known is not None:
        ko, en = ko or known.description, en or known.description_eng
    return str((ko if normalize_lang(lang) == "ko" else en) or en or ko or "")
