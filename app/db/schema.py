"""The tables, as SQLAlchemy Core sees them. A change here needs a migration in migrations/versions/."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

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

# one row per STOW-RS instance taken in: its inference state and its delivery to each target (app/pacs/results.py)
results = Table(
    "results", metadata,
    Column("id", String(32), primary_key=True),
    Column("study_uid", String(64), nullable=False),
    Column("source_sop_class_uid", String(64), nullable=False),
    Column("source_sop_instance_uid", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("error", Text),
    Column("prediction", Text),
    Column("probability", Float),
    Column("threshold", Float),
    Column("model", Text),
    Column("sc_sop_instance_uid", String(64)),
    Column("sr_sop_instance_uid", String(64)),
    Column("pm_sop_instance_uid", String(64)),
    Column("priority", Text),
    Column("delivery", String(16), nullable=False, server_default="not_configured"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float),
    Column("delivery_error", Text),
    Column("delivered_at", Float),
    Column("fhir_delivery", String(16), nullable=False, server_default="not_configured"),
    Column("fhir_attempts", Integer, nullable=False, server_default="0"),
    Column("fhir_next_attempt_at", Float),
    Column("fhir_error", Text),
    Column("fhir_delivered_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("owner", Text),  # the replica processing it (CXR_WORKER_NAME) while state is processing
    Column("claimed_at", Float),
    Index("results_study", "study_uid"),
    Index("results_source", "source_sop_instance_uid"),
    Index("results_delivery", "delivery", "next_attempt_at"),
)

# the audit trail: append-only (triggers refuse UPDATE and DELETE; retention alone removes a prefix), each
# record's canonical JSON in ``body`` chained by SHA-256 to the one before (app/audit/store.py)
audit = Table(
    "audit", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("time", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("model", Text),
    Column("input_sha256", String(64)),
    Column("body", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Index("audit_time", "time"),
    Index("audit_outcome", "outcome", "seq"),
    Index("audit_model", "model", "seq"),
    Index("audit_input", "input_sha256", "seq"),
)

# each reader's current verdict on a screened record (every verdict is also appended to the trail)
feedback = Table(
    "feedback", metadata,
    Column("record_seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("reader", Text, primary_key=True),
    Column("label", String(32), nullable=False),
    Column("comment", Text),
    Column("time", String(40), nullable=False),
    Column("audit_seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
)
