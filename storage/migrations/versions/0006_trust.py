"""Trust: a rotated signing secret keeps signing for a grace period; per-endpoint rate
limits (max_per_second on a group and on a hook); a receiver's Retry-After pauses a hook

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_signing_secret_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('previous_signing_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('max_per_second', sa.Float(), nullable=True))
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_per_second', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('paused_until', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.drop_column('paused_until')
        batch_op.drop_column('max_per_second')
    with op.batch_alter_table('webhook_groups', schema=None) as batch_op:
        batch_op.drop_column('max_per_second')
        batch_op.drop_column('previous_signing_until')
        batch_op.drop_column('previous_signing_secret_enc')
