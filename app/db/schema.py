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
    Column("worker", Text),  # the runner that claimed it (CXR_WORKER_NAME)
    Column("heartbeat_at", String(40)),  # its runner's last sign of life while it runs
    Index("jobs_created", "created_at"),
)

# one row (id 1): the model every replica serves; each follows it (app/inference/catalog.py)
active_model = Table(
    "active_model", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("updated_by", Text),
)
