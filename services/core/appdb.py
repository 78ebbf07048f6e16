"""The app database's one SQLAlchemy metadata, on which each domain registers its own
tables (core here, `protection/tables.py`, `analytics/tables.py`, `tokens.py`), and the
portal's secrets. Site databases are only read; this one is written. `core/appschema.py`
gathers every domain's tables and creates them."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

app_meta = sa.Table(
    "app_meta", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def get_or_create_secret(engine: Engine, key: str, nbytes: int = 32) -> str:
    """A server secret kept in the app database, generated on first use. Several processes
    may ask at once (gunicorn workers' first requests): the first insert wins and everyone
    returns the stored value."""
    select = sa.select(app_meta.c.value).where(app_meta.c.key == key)
    with engine.begin() as conn:
        row = conn.execute(select).first()
        if row is not None:
            return str(row[0])
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(app_meta).values(key=key, value=secrets.token_hex(nbytes)))
    except sa.exc.IntegrityError:
        pass  # another process stored it first
    with engine.connect() as conn:
        return str(conn.execute(select).scalar_one())
