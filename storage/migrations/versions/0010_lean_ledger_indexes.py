"""Lean ledger indexes: the dashboard reads by the ledger's own indexes (storage/dashboard.py),
so three of 0007's go, and ix_deliveries_group_id too (ix_deliveries_group_created begins with
group_id). Every delivery is inserted once and updated twice, and each update writes an entry
into every index of the table: an index here is paid on every delivery.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:00:00
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

DROPPED = (
    ('ix_deliveries_org_created', ['organization_id', 'created_at', 'id']),
    ('ix_deliveries_org_entity', ['organization_id', 'entity_id', 'created_at']),
    ('ix_deliveries_hook_status', ['hook_id', 'status']),
    ('ix_deliveries_group_id', ['group_id']),
)


def upgrade():
    for name, _ in DROPPED:
        op.drop_index(name, table_name='deliveries')


def downgrade():
    for name, columns in reversed(DROPPED):
        op.create_index(name, 'deliveries', columns)
