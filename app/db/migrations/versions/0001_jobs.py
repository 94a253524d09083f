"""jobs: the fine-tuning and calibration job table.

Revision ID: 0001
Revises:
Create Date: 2026-12-07

A job database written before migrations existed (state/jobs.sqlite3, same table) is adopted as it
is: the table is created only where missing, and the model column that older files lack is added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("jobs"):
        op.create_table(
            "jobs",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("created_at", sa.String(40), nullable=False),
            sa.Column("started_at", sa.String(40)),
            sa.Column("finished_at", sa.String(40)),
            sa.Column("request", sa.Text, nullable=False),
            sa.Column("progress", sa.Text, nullable=False, server_default="{}"),
            sa.Column("metrics", sa.Text, nullable=False, server_default="[]"),
            sa.Column("error", sa.Text),
            sa.Column("model", sa.Text),
            sa.Column("model_version", sa.Text),
            sa.Column("promoted", sa.Integer),
            sa.Column("promotion_reason", sa.Text),
            sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
            sa.Column("resume", sa.Integer, nullable=False, server_default="0"),
            sa.Column("pid", sa.Integer),
        )
        op.create_index("jobs_created", "jobs", ["created_at"])
        return
    if "model" not in {c["name"] for c in inspector.get_columns("jobs")}:
        op.add_column("jobs", sa.Column("model", sa.Text))
    if "jobs_created" not in {i["name"] for i in inspector.get_indexes("jobs")}:
        op.create_index("jobs_created", "jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("jobs_created", "jobs")
    op.drop_table("jobs")
