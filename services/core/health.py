"""Readiness: every configured database (the app database and each site's) answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from services.core.portal import Portal


@dataclass(frozen=True)
class Readiness:
    databases: list[str]  # "app", then "site<N>" per registered site
    unreachable: list[str]

    @property
    def ready(self) -> bool:
        return not self.unreachable


def _answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return False
    return True


def check_readiness(portal: Portal) -> Readiness:
    """One `SELECT 1` per database; the names of those that do not answer."""
    targets = [("app", portal.app_db)] + [(f"site{s.id}", portal.store(s.id).engine) for s in portal.registry.sites]
    return Readiness([name for name, _ in targets], [name for name, engine in targets if not _answers(engine)])
