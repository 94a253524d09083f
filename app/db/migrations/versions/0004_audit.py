"""audit and feedback: the audit trail in the shared database (until now a SQLite file per server,
audit.sqlite3, whose chain app/audit/store.py copies in once), append-only by trigger on both backends.

On PostgreSQL the trigger lets a DELETE through only inside a transaction that set
``cxr.audit_retention = 'on'`` (SET LOCAL: the retention sweep, app/audit/store.py); on SQLite the sweep
drops and re-creates the DELETE trigger inside its write transaction, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")
SQLITE_GUARDS = (
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
)
POSTGRES_GUARDS = (
    """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('cxr.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only';
END $$""",
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
)


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("model", sa.Text),
        sa.Column("input_sha256", sa.String(64)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("audit_time", "audit", ["time"])
    op.create_index("audit_outcome", "audit", ["outcome", "seq"])
    op.create_index("audit_model", "audit", ["model", "seq"])
    op.create_index("audit_input", "audit", ["input_sha256", "seq"])
    op.create_table(
        "feedback",
        sa.Column("record_seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("reader", sa.Text, primary_key=True),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("audit_seq", SEQ, nullable=False),
    )
    for statement in POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else SQLITE_GUARDS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit")
        op.execute("DROP FUNCTION audit_append_only()")
    else:
        op.drop_table("audit")
    op.drop_table("feedback")
