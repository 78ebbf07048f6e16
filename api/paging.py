"""The paged envelope of the original ({count, next, previous, results}) for every paged
route: page size, page number or keyset cursor from the query, and the next/previous links
(this request's URL with `cursor` or `page` changed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request

from api.params import get_int
from services.telemetry.rows import Cursor, Page


def get_paging(args: Mapping[str, str], default_size: int, max_size: int) -> dict[str, Any]:
    """`page_size`, `page` and `cursor` as keyword arguments of the services' page readers."""
    return {"page_size": get_int(args, "page_size", default_size, 1, max_size),
            "page": get_int(args, "page", 1, 1),
            "cursor": Cursor.decode(args["cursor"]) if args.get("cursor") else None}


def page_link(**changes: str | None) -> str:
    """This request's URL with parameters set (None removes one)."""
    args = dict(request.args.items(multi=False))
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return request.base_url + ("?" + urlencode(args) if args else "")


def envelope(page: Page, results: list[dict[str, Any]] | None = None) -> Response:
    """The page as the original's envelope; `results` replaces its rows (renamed ones)."""
    nxt = page_link(cursor=page.next_cursor.encode(), page=None) if page.next_cursor else None
    prev = None
    if page.page > 1:
        prev = page_link(cursor=None, page=str(page.page - 1) if page.page > 2 else None)
    return jsonify({"count": page.count, "next": nxt, "previous": prev,
                    "results": page.rows if results is None else results})
