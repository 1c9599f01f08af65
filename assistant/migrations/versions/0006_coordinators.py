"""the coordinators' web page: users, audit log, sign-in failures, unanswered texts, acknowledgements

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(length=254), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("locales", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("session_version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False, index=True),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=300), nullable=False, index=True),
        sa.Column("at", sa.DateTime(), nullable=False, index=True),
    )
    op.create_table(
        "unanswered_texts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_sid", sa.String(length=64), nullable=False, unique=True),
        sa.Column("received_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_table(
        "acknowledgements",
        sa.Column("escalation_id", sa.Integer(), sa.ForeignKey("escalations.id"), primary_key=True),
        sa.Column("by", sa.String(length=254), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
    )


def downgrade() -> None:
    for table in ("acknowledgements", "unanswered_texts", "sign_in_failures", "audit_log", "users"):
        op.drop_table(table)
