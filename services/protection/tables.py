"""The protection tables of the app database: error codes, levels, events, per-minute
event counts, episodes and the evaluation watermarks. Times are integer epoch seconds (UTC)
on both databases; the API renders the site's offset."""

from __future__ import annotations

import sqlalchemy as sa

from services.core.appdb import metadata

protection_error_code = sa.Table(
    "protection_error_code", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(100), nullable=False),
    sa.Column("description_eng", sa.String(100), nullable=False),
)

protection_level = sa.Table(
    "protection_level", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(100), nullable=False),
    sa.Column("description_eng", sa.String(100), nullable=False),
)

protection_event = sa.Table(
    "protection_event", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("operating_site", sa.Integer, nullable=False),
    sa.Column("bank_id", sa.Integer, nullable=False),
    sa.Column("rack_id", sa.Integer, nullable=False),  # 0 for bank-level events
    sa.Column("error_code", sa.Integer, sa.ForeignKey("protection_error_code.id"), nullable=False),
    sa.Column("level", sa.Integer, sa.ForeignKey("protection_level.id"), nullable=False),
    sa.Column("source", sa.String(10), nullable=False),  # 'threshold' or 'bms'
    sa.Column("value", sa.Double),
    sa.Column("description", sa.String(300), nullable=False),
    sa.Column("description_eng", sa.String(300), nullable=False),
    sa.Column("map_version", sa.String(50)),  # the protection map that judged a threshold event
    # counts per bucket and level (covering) and the newest-first pages of one site
    sa.Index("protection_event_site_time", "operating_site", "timestamp", "level"),
    sa.Index("protection_event_time", "timestamp"),
)

protection_event_count = sa.Table(  # events per minute and key, kept with the events (log-level-count)
    "protection_event_count", metadata,
    sa.Column("operating_site", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("minute", sa.BigInteger, primary_key=True, autoincrement=False),  # epoch seconds, multiple of 60
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("error_code", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source", sa.String(10), primary_key=True),
    sa.Column("bank_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rack_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("events", sa.BigInteger, nullable=False),
)

protection_episode = sa.Table(
    "protection_episode", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("operating_site", sa.Integer, nullable=False),
    sa.Column("bank_id", sa.Integer, nullable=False),
    sa.Column("rack_id", sa.Integer, nullable=False),
    sa.Column("error_code", sa.Integer, sa.ForeignKey("protection_error_code.id"), nullable=False),
    sa.Column("level", sa.Integer, sa.ForeignKey("protection_level.id"), nullable=False),
    sa.Column("source", sa.String(10), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),  # first event
    sa.Column("end_time", sa.BigInteger, nullable=False),  # last event
    sa.Column("peak_value", sa.Double),
    sa.Column("sample_count", sa.BigInteger, nullable=False),
    sa.Column("is_open", sa.Boolean, nullable=False),  # the next run may still extend it
    sa.Index("protection_episode_site_start", "operating_site", "start_time"),
    sa.Index("protection_episode_site_open", "operating_site", "is_open"),
)

protection_watermark = sa.Table(
    "protection_watermark", metadata,
    sa.Column("operating_site", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("component", sa.String(10), primary_key=True),
    sa.Column("last_timestamp", sa.BigInteger),  # newest TIMESTAMP judged; NULL = nothing yet
    sa.Column("samples", sa.BigInteger, nullable=False),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("map_version", sa.String(50)),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

TABLES: tuple[sa.Table, ...] = (protection_error_code, protection_level, protection_event, protection_event_count,
                                protection_episode, protection_watermark)
