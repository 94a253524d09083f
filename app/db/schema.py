"""The tables, as SQLAlchemy Core sees them. A change here needs a migration in migrations/versions/."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("started_at", String(40)),
    Column("finished_at", String(40)),
    Column("request", Text, nullable=False),
    Column("progress", Text, nullable=False, server_default="{}"),
    Column("metrics", Text, nullable=False, server_default="[]"),
    Column("error", Text),
    Column("model", Text),
    Column("model_version", Text),
    Column("promoted", Integer),
    Column("promotion_reason", Text),
    Column("cancel_requested", Integer, nullable=False, server_default="0"),
    Column("resume", Integer, nullable=False, server_default="0"),
    Column("pid", Integer),
    Index("jobs_created", "created_at"),
)
