"""Parsing of query parameters shared by the API adapters (errors are 400 problems)."""

from __future__ import annotations

from collections.abc import Mapping

from services.core.errors import InvalidQuery


def get_int(args: Mapping[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    """An integer parameter within [lo, hi]; InvalidQuery naming it otherwise."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"{name}={raw!r} is not a whole number", code="invalid_parameter",
                           invalid_params=[{"name": name, "reason": "not an integer"}]) from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidQuery(f"{name}={value} must be {bound}", code="invalid_parameter",
                           invalid_params=[{"name": name, "reason": f"must be {bound}"}])
    return value
