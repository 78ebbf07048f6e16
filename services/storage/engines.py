"""Engines: one pooled SQLAlchemy engine per database URL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.core.errors import ConfigError

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# Server engines: a dead host must fail a request in seconds, not hang a worker. Pre-ping
# tests each connection at checkout (a broken one is replaced, and a disconnect empties the
# whole pool, so no connection from before an outage is reused); connections are recycled
# after half an hour (firewalls and poolers drop idle ones silently); a request waits at
# most POOL_TIMEOUT_S for a free connection.
CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10
POOL_RECYCLE_S = 1800


def engine_options(url: str, pool_size: int = 5) -> dict[str, Any]:
    """create_engine keyword arguments for a server database URL (pooling and timeouts)."""
    options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": pool_size,
                               "pool_timeout": POOL_TIMEOUT_S, "pool_recycle": POOL_RECYCLE_S}
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "ess-portal",
                                   "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                                   "keepalives_count": 3}
    return options


def _tag_error(url: str) -> Callable[[Any], None]:
    def handle(context: Any) -> None:  # lets one error handler name the database that failed
        if context.sqlalchemy_exception is not None:
            context.sqlalchemy_exception.ess_database_url = url
    return handle


def get_engine(url: str, pool_size: int = 5) -> Engine:
    """The process-wide engine for `url` (created once; pre-ping and timeouts on servers).

    Errors raised through it carry `ess_database_url`, so the API can say which database
    is unreachable."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = sa.create_engine(url)
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = sa.create_engine(url, **engine_options(url, pool_size))
            sa.event.listen(engine, "handle_error", _tag_error(url))
            _engines[url] = engine
        return engine


def database_url_of(exc: BaseException) -> str | None:
    """The URL of the engine an SQLAlchemy error came through (None if unknown)."""
    url = getattr(exc, "ess_database_url", None)
    return url if isinstance(url, str) else None


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database of `url` if it does not exist (connecting to the
    server's `postgres` maintenance database); True when it was created. SQLite files and
    existing databases are left alone. Raises ConfigError when the server refuses."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    name = parsed.database
    try:
        with admin.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                return False
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            return True
    except sa.exc.ProgrammingError as exc:  # duplicate (a concurrent run) or no CREATEDB right
        if "already exists" in str(exc.orig):
            return False
        raise ConfigError(f"cannot create database {name!r} on {parsed.host or 'localhost'}: "
                          f"{str(exc.orig).splitlines()[0]}; create it as a role with CREATEDB "
                          f"(CREATE DATABASE {name} OWNER {parsed.username or '<role>'}) and run again") from None
    except sa.exc.OperationalError as exc:
        raise ConfigError(f"cannot reach the maintenance database 'postgres' on {parsed.host or 'localhost'} to "
                          f"create {name!r}: {str(exc.orig).splitlines()[0]}") from None
    finally:
        admin.dispose()


def dispose_engines(after_fork: bool = False) -> None:
    """Close every pooled connection and forget the engines (tests, shutdown).

    `after_fork=True` (gunicorn's post_fork): give each inherited engine a fresh, empty
    pool without closing the parent's connections (closing them from the child would end
    the parent's sessions too); the engines stay registered, so stores keep working."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=not after_fork)
        if not after_fork:
            _engines.clear()
