"""voice: the channel of messages and escalations; outbox texts to callers (no escalation)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 03:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default: rows written before this migration were all texts.
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=8), server_default='sms', nullable=False))
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=8), server_default='sms', nullable=False))
    # A text a caller asked for on the phone goes through the same outbox, without an escalation.
    with op.batch_alter_table('alert_outbox', schema=None) as batch_op:
        batch_op.alter_column('escalation_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM alert_outbox WHERE escalation_id IS NULL")
    with op.batch_alter_table('alert_outbox', schema=None) as batch_op:
        batch_op.alter_column('escalation_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_column('channel')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_column('channel')
