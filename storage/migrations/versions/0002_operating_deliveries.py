"""operating deliveries: attempt series, delivery source, dead-letter index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    # batch mode: SQLite can only change a table by copying it; PostgreSQL alters in place
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_base', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('source', sa.String(length=16), server_default='trigger', nullable=False))
        batch_op.create_index('ix_deliveries_org_status_created', ['organization_id', 'status', 'created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_org_status_created')
        batch_op.drop_column('source')
        batch_op.drop_column('attempt_base')
