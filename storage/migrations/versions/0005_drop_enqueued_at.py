"""deliveries.enqueued_at goes: workers claim due rows from the ledger, nothing is enqueued per delivery

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops a column in place; batch mode's copy would have to drop a table
        # other rows still reference (attempts -> deliveries), which foreign keys refuse
        op.execute("ALTER TABLE deliveries DROP COLUMN enqueued_at")
        return
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('enqueued_at')


def downgrade():
    # it comes back NULL on every row, which to the code before 0005 means "not enqueued":
    # its scheduler enqueues whatever is due
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enqueued_at', sa.DateTime(), nullable=True))
