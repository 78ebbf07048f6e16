"""Who may see what: the scope and sensitivity decisions shared by the API and the pages.

No Flask here. The adapter that knows the request (api/auth.py: a Bearer token, or the
UI's signed session) is installed on the Portal as `identify_caller` by the app factory;
routes and page callbacks ask this module, never api/auth.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.core.catalogue import is_sensitive
from services.telemetry.rows import split_field_names

if TYPE_CHECKING:
    from services.core.portal import Portal
    from services.tokens import Principal

RAW_SCOPES = frozenset({"raw", "admin"})


def current_principal(portal: Portal) -> Principal | None:
    """The caller of the current request (None: nobody signed in, or outside a request)."""
    return portal.identify_caller()


def current_scope(portal: Portal) -> str | None:
    """The caller's scope; `admin` when access control is off (everything is open)."""
    if not portal.settings.auth:
        return "admin"
    principal = current_principal(portal)
    return principal.scope if principal else None


def may_read_raw(portal: Portal) -> bool:
    """True when the caller may see raw operating data (scope raw or admin, or auth off)."""
    return current_scope(portal) in RAW_SCOPES


def sensitive_fields(fields_text: str) -> list[str]:
    """The sensitive names in a `fields=` value: their aggregates under the real name would
    undo de-identification, so they need scope raw."""
    return [f for f in split_field_names("fields", fields_text) if is_sensitive(f)]
