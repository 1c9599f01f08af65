"""catalog_reviews: who reviewed which exact wording of a translation, and when

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("english_sha", sa.String(length=64), nullable=False),
        sa.Column("translation_sha", sa.String(length=64), nullable=False),
        sa.Column("reviewed_by", sa.String(length=120), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_catalog_reviews_entry", "catalog_reviews", ["locale", "key"])


def downgrade() -> None:
    op.drop_index("ix_catalog_reviews_entry", table_name="catalog_reviews")
    op.drop_table("catalog_reviews")
