"""senders.reply_locale: the language of the last reply, which MORE goes on in

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.add_column(sa.Column("reply_locale", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("senders") as batch:
        batch.drop_column("reply_locale")
