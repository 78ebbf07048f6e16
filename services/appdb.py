"""The app database: the portal's own state (secrets, and later events, analytics,
forecasts and tokens). Site databases are only read; this one is written."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.storage import get_engine

metadata = sa.MetaData()

app_meta = sa.Table(
    "app_meta", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def open_app_db(url: str) -> Engine:
    """Engine of the app database with every table created if absent."""
    engine = get_engine(url)
    metadata.create_all(engine)
    return engine


def get_or_create_secret(engine: Engine, key: str, nbytes: int = 32) -> str:
    """A server secret kept in the app database, generated on first use."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(app_meta.c.value).where(app_meta.c.key == key)).first()
        if row is not None:
            return str(row[0])
        value = secrets.token_hex(nbytes)
        conn.execute(sa.insert(app_meta).values(key=key, value=value))
        return value
