"""Access tokens: created, listed and revoked by the CLI, verified on every request.

A token is `ess_` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256
is stored (table `api_token` of the app database, services/appdb.py); the plaintext is shown once, when it
is created. A fast hash is right here: the token has 256 bits of entropy, so the stored
hash cannot be reversed by guessing, and verification must stay cheap (1000 req/s).

Scopes are ordered: `deidentified` < `raw` < `admin` (each implies the ones before it).

Verification goes through an in-process cache (hash -> principal, CACHE_TTL_S seconds),
so a request costs no database round trip and a short outage of the app database does not
fail known tokens (a stale entry is used for up to STALE_GRACE_S more seconds while the
database cannot be read). Consequence: a revoked token keeps working for at most
CACHE_TTL_S seconds in other processes (immediately in the process that revoked it).
`last_used` is written at most once per LAST_USED_EVERY_S per token and process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.core.appdb import metadata
from services.core.errors import InvalidQuery, NotFound, Unavailable

api_token = sa.Table(
    "api_token", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # hex SHA-256; never the token
    sa.Column("scope", sa.String(20), nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),  # epoch seconds (UTC)
    sa.Column("last_used", sa.BigInteger),
    sa.Column("revoked", sa.BigInteger),  # epoch seconds of the revocation; NULL = valid
)

SCOPES = ("deidentified", "raw", "admin")
TOKEN_PREFIX = "ess_"
TOKEN_BYTES = 32
CACHE_TTL_S = 30.0
STALE_GRACE_S = 600.0
LAST_USED_EVERY_S = 60
MAX_CACHED = 10_000
MAX_TOKEN_CHARS = 200
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and scope."""

    name: str
    scope: str

    def allows(self, required_scope: str | None) -> bool:
        """True when this scope includes `required_scope` (None = open to everyone)."""
        if required_scope is None:
            return True
        return SCOPES.index(self.scope) >= SCOPES.index(check_scope(required_scope))


@dataclass
class _Entry:
    principal: Principal | None
    checked: float  # monotonic time of the database read
    last_used_written: float


_cache: dict[tuple[str, str], _Entry] = {}
_cache_lock = threading.Lock()
_schema_ready: set[str] = set()
_schema_lock = threading.Lock()


def check_scope(scope: str) -> str:
    """`scope` if it is one of SCOPES, else InvalidQuery naming the valid ones."""
    if scope not in SCOPES:
        raise InvalidQuery(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}", code="invalid_scope",
                           invalid_params=[{"name": "scope", "reason": f"one of {', '.join(SCOPES)}"}])
    return scope


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token (what the table stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _ensure_table(engine: Engine) -> None:
    """Create `api_token` once per database (open_app_db creates it too; this covers
    engines made elsewhere, e.g. by tests)."""
    key = str(engine.url)
    if key in _schema_ready:
        return
    with _schema_lock:
        if key not in _schema_ready:
            api_token.create(engine, checkfirst=True)
            _schema_ready.add(key)


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def create_token(engine: Engine, name: str, scope: str) -> str:
    """Store a new token under `name` and return its plaintext (the only time it is shown).

    Raises InvalidQuery for a bad scope, a bad name or a name already used (revoked tokens
    keep their name, so the audit trail stays unambiguous)."""
    check_scope(scope)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidQuery(f"invalid token name {name!r}: 1 to 64 characters, letters, digits and . _ @ -, "
                           "starting with a letter or digit", code="invalid_name",
                           invalid_params=[{"name": "name", "reason": "letters, digits, . _ @ -"}])
    _ensure_table(engine)
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with engine.begin() as conn:
        taken = conn.execute(sa.select(api_token.c.name).where(api_token.c.name == name)).first()
        if taken is not None:
            raise InvalidQuery(f"a token named {name!r} already exists (revoked tokens keep their name); "
                               "choose another name", code="token_exists",
                               invalid_params=[{"name": "name", "reason": "already used"}])
        conn.execute(sa.insert(api_token).values(name=name, token_hash=hash_token(token), scope=scope,
                                                 created=int(time.time()), last_used=None, revoked=None))
    return token


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    """Every token (revoked ones too) by name: name, scope, created, last_used, revoked
    (bool) and revoked_at; times ISO 8601 UTC. Never the hash."""
    _ensure_table(engine)
    cols = [api_token.c.name, api_token.c.scope, api_token.c.created, api_token.c.last_used, api_token.c.revoked]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*cols).order_by(api_token.c.name)).all()
    return [{"name": r.name, "scope": r.scope, "created": _iso(r.created), "last_used": _iso(r.last_used),
             "revoked": r.revoked is not None, "revoked_at": _iso(r.revoked)} for r in rows]


def revoke_token(engine: Engine, name: str) -> None:
    """Revoke the token `name` (NotFound if there is none; revoking twice is harmless).
    Takes effect at once in this process, within CACHE_TTL_S seconds in others."""
    _ensure_table(engine)
    with engine.begin() as conn:
        found = conn.execute(sa.select(api_token.c.revoked).where(api_token.c.name == name)).first()
        if found is None:
            raise NotFound(f"no token named {name!r}", code="token_not_found")
        if found.revoked is None:
            conn.execute(sa.update(api_token).where(api_token.c.name == name).values(revoked=int(time.time())))
    with _cache_lock:
        for key, entry in list(_cache.items()):
            if entry.principal is not None and entry.principal.name == name and key[0] == str(engine.url):
                del _cache[key]


def _lookup(engine: Engine, key: str, read: Any) -> Principal | None:
    """The cached principal for `key`, re-read with `read(conn)` after CACHE_TTL_S."""
    ckey = (str(engine.url), key)
    now = time.monotonic()
    with _cache_lock:
        entry = _cache.get(ckey)
    if entry is None or now - entry.checked > CACHE_TTL_S:
        try:
            _ensure_table(engine)
            with engine.connect() as conn:
                principal = read(conn)
        except sa.exc.SQLAlchemyError as exc:
            if entry is not None and entry.principal is not None and now - entry.checked <= CACHE_TTL_S + STALE_GRACE_S:
                return entry.principal
            raise Unavailable("the token store (app database) is unreachable; try again shortly",
                              code="auth_unavailable") from exc
        entry = _Entry(principal, now, entry.last_used_written if entry and entry.principal == principal else 0.0)
        with _cache_lock:
            if len(_cache) >= MAX_CACHED:
                _cache.clear()
            _cache[ckey] = entry
    return entry.principal


def verify_token(engine: Engine, token: str | None) -> Principal | None:
    """The principal of a valid, unrevoked token, else None.

    Cached per process for CACHE_TTL_S; while the app database cannot be read, a token
    seen before stays valid for STALE_GRACE_S, and an unknown one raises Unavailable."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        return None
    digest = hash_token(token)

    def read(conn: Any) -> Principal | None:
        row = conn.execute(sa.select(api_token.c.name, api_token.c.scope, api_token.c.token_hash)
                           .where(api_token.c.token_hash == digest, api_token.c.revoked.is_(None))).first()
        if row is None or not hmac.compare_digest(str(row.token_hash), digest):
            return None
        return Principal(str(row.name), str(row.scope))

    principal = _lookup(engine, digest, read)
    if principal is not None:
        _maybe_touch(engine, digest, principal.name)
    return principal


def get_principal(engine: Engine, name: str) -> Principal | None:
    """The principal of the unrevoked token `name`, else None (a UI session names its
    token; cached like verify_token, so revocation ends sessions within CACHE_TTL_S)."""

    def read(conn: Any) -> Principal | None:
        row = conn.execute(sa.select(api_token.c.name, api_token.c.scope)
                           .where(api_token.c.name == name, api_token.c.revoked.is_(None))).first()
        return None if row is None else Principal(str(row.name), str(row.scope))

    return _lookup(engine, "name:" + name, read)


def _maybe_touch(engine: Engine, digest: str, name: str) -> None:
    """Write `last_used` at most once per LAST_USED_EVERY_S (best effort: a failed write
    never fails a request)."""
    now = time.monotonic()
    with _cache_lock:
        entry = _cache.get((str(engine.url), digest))
        if entry is None or now - entry.last_used_written < LAST_USED_EVERY_S:
            return
        entry.last_used_written = now
    try:
        with engine.begin() as conn:
            conn.execute(sa.update(api_token).where(api_token.c.name == name).values(last_used=int(time.time())))
    except sa.exc.SQLAlchemyError:
        pass


def clear_cache() -> None:
    """Forget every cached verification (tests; after restoring a database)."""
    with _cache_lock:
        _cache.clear()
