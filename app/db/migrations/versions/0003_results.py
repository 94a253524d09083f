"""results: STOW-RS instances and their results, shared by every replica (until now a SQLite file per
server, dicom/results.sqlite3, whose rows app/pacs/results.py copies in once).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "results",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_uid", sa.String(64), nullable=False),
        sa.Column("source_sop_class_uid", sa.String(64), nullable=False),
        sa.Column("source_sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("prediction", sa.Text),
        sa.Column("probability", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("model", sa.Text),
        sa.Column("sc_sop_instance_uid", sa.String(64)),
        sa.Column("sr_sop_instance_uid", sa.String(64)),
        sa.Column("pm_sop_instance_uid", sa.String(64)),
        sa.Column("priority", sa.Text),
        sa.Column("delivery", sa.String(16), nullable=False, server_default="not_configured"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("delivery_error", sa.Text),
        sa.Column("delivered_at", sa.Float),
        sa.Column("fhir_delivery", sa.String(16), nullable=False, server_default="not_configured"),
        sa.Column("fhir_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fhir_next_attempt_at", sa.Float),
        sa.Column("fhir_error", sa.Text),
        sa.Column("fhir_delivered_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("owner", sa.Text),
        sa.Column("claimed_at", sa.Float),
    )
    op.create_index("results_study", "results", ["study_uid"])
    op.create_index("results_source", "results", ["source_sop_instance_uid"])
    op.create_index("results_delivery", "results", ["delivery", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("results")
