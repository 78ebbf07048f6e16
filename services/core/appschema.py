"""Every domain's app-database tables in one list, so that `open_app_db` creates them all
(each domain defines its tables on `core.appdb.metadata`; this module only gathers them,
so there is no import circle)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.analytics import tables as analytics_tables
from services.core.appdb import app_meta, metadata
from services.protection import tables as protection_tables
from services.storage.engines import get_engine
from services.tokens import api_token

APP_TABLES: tuple[sa.Table, ...] = (app_meta, *protection_tables.TABLES, *analytics_tables.SITE_TABLES, api_token)


def open_app_db(url: str) -> Engine:
    """Engine of the app database with every table created if absent."""
    engine = get_engine(url)
    metadata.create_all(engine, tables=list(APP_TABLES))
    return engine
