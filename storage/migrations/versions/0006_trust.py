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

# plain ALTER TABLE on both databases: SQLite adds (and, from 3.35, drops) a column in place,
# where batch mode's copy would drop tables that other rows still reference
COLUMNS = (
    ('webhook_groups', 'previous_signing_secret_enc', sa.Text()),
    ('webhook_groups', 'previous_signing_until', sa.DateTime()),
    ('webhook_groups', 'max_per_second', sa.Float()),
    ('hooks', 'max_per_second', sa.Float()),
    ('hooks', 'paused_until', sa.DateTime()),
)


def upgrade():
    for table, name, type_ in COLUMNS:
        op.add_column(table, sa.Column(name, type_, nullable=True))


def downgrade():
    for table, name, _ in reversed(COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
