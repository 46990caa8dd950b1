"""endpoint health: skipped deliveries, hook failure tracking, notify_url and the notification outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # batch mode: SQLite can only change a table by copying it; PostgreSQL alters in place
    with op.batch_alter_table('webhook_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_url', sa.String(length=2000), nullable=True))
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_failure_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_hooks_failing_since', ['failing_since'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('skipped_reason', sa.String(length=255), nullable=True))
    op.create_table(
        'notifications',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('group_id', sa.String(length=36), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=1000), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['group_id'], ['webhook_groups.id'],
                                name='fk_notifications_group_id_webhook_groups'),
        sa.PrimaryKeyConstraint('id', name='pk_notifications'),
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_notifications_group_id', ['group_id'], unique=False)


def _drop_columns(table, columns):
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops a column in place; batch mode's copy would have to drop a table
        # other rows still reference (deliveries -> hooks), which foreign keys refuse
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.drop_column(column)


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_group_id')
        batch_op.drop_index('ix_notifications_due')
    op.drop_table('notifications')
    op.drop_index('ix_hooks_failing_since', table_name='hooks')
    _drop_columns('deliveries', ['skipped_reason'])
    _drop_columns('hooks', ['failing_since', 'last_failure_at'])
    _drop_columns('webhook_groups', ['notify_url'])
