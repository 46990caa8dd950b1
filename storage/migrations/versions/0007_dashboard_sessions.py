"""dashboard: sessions, and the indexes its pages read the ledger by

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00

The indexes are built inside the migration's transaction: on a large ledger the deliveries
table is locked for writes while they build (7 to 14 s for all six over a million deliveries on
the benchmark machine, docs/dashboard-explain.txt); run the upgrade at a quiet moment.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INIT_ONLY = "source = 'init'"


def upgrade():
    op.create_table(
        'dashboard_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('credential_id', sa.Integer(), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['credential_id'], ['credentials.id'],
                                name='fk_dashboard_sessions_credential_id_credentials'),
        sa.PrimaryKeyConstraint('id_hash', name='pk_dashboard_sessions'),
    )
    op.create_index('ix_dashboard_sessions_credential_id', 'dashboard_sessions', ['credential_id'])
    op.create_index('ix_deliveries_org_created', 'deliveries', ['organization_id', 'created_at', 'id'])
    # status included: the timeline counts a group's rows by hour and status from the index alone
    op.create_index('ix_deliveries_group_created', 'deliveries', ['group_id', 'created_at', 'id'],
                    postgresql_include=['status'])
    op.create_index('ix_deliveries_org_entity', 'deliveries', ['organization_id', 'entity_id', 'created_at'])
    op.create_index('ix_deliveries_hook_status', 'deliveries', ['hook_id', 'status'])
    op.create_index('ix_deliveries_init', 'deliveries', ['organization_id', 'status'],
                    postgresql_where=sa.text(INIT_ONLY), sqlite_where=sa.text(INIT_ONLY))
    op.create_index('ix_attempts_started_at', 'attempts', ['started_at'])


def downgrade():
    op.drop_index('ix_attempts_started_at', table_name='attempts')
    for name in ('ix_deliveries_init', 'ix_deliveries_hook_status', 'ix_deliveries_org_entity',
                 'ix_deliveries_group_created', 'ix_deliveries_org_created'):
        op.drop_index(name, table_name='deliveries')
    op.drop_index('ix_dashboard_sessions_credential_id', table_name='dashboard_sessions')
    op.drop_table('dashboard_sessions')
