"""hook_stats: attempts per hook and hour, counted as batches are recorded (the dashboard's
health at a glance); ix_attempts_started_at goes, nothing reads attempts by time any more and
every attempt paid for it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# the last day and an hour of attempts, so health at a glance is right from the upgrade on
BACKFILL = {
    "postgresql": "date_trunc('hour', a.started_at)",
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', a.started_at)",
}


def upgrade():
    op.create_table(
        'hook_stats',
        sa.Column('hook_id', sa.Integer(), nullable=False),
        sa.Column('hour', sa.DateTime(), nullable=False),
        sa.Column('succeeded', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('last_at', sa.DateTime(), nullable=False),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error_kind', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['hook_id'], ['hooks.id'], name='fk_hook_stats_hook_id_hooks'),
        sa.PrimaryKeyConstraint('hook_id', 'hour', name='pk_hook_stats'),
    )
    bind = op.get_bind()
    hour = BACKFILL[bind.dialect.name]
    since = "now() - interval '25 hours'" if bind.dialect.name == "postgresql" else "datetime('now', '-25 hours')"
    op.execute(f"""
        INSERT INTO hook_stats (hook_id, hour, succeeded, failed, last_at, last_status_code, last_error_kind)
        SELECT hook_id, hour, sum(ok), sum(1 - ok), max(started_at),
               (array_agg(status_code ORDER BY started_at DESC))[1],
               (array_agg(error_kind ORDER BY started_at DESC))[1]
        FROM (SELECT d.hook_id, {hour} AS hour, a.started_at, a.status_code, a.error_kind,
                     CASE WHEN a.error_kind IS NULL THEN 1 ELSE 0 END AS ok
              FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
              WHERE a.started_at >= {since}) AS recent
        GROUP BY hook_id, hour
    """ if bind.dialect.name == "postgresql" else f"""
        INSERT INTO hook_stats (hook_id, hour, succeeded, failed, last_at, last_status_code, last_error_kind)
        SELECT hook_id, hour, sum(ok), sum(1 - ok), max(started_at), NULL, NULL
        FROM (SELECT d.hook_id, {hour} AS hour, a.started_at,
                     CASE WHEN a.error_kind IS NULL THEN 1 ELSE 0 END AS ok
              FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
              WHERE a.started_at >= {since}) AS recent
        GROUP BY hook_id, hour
    """)
    op.drop_index('ix_attempts_started_at', table_name='attempts')


def downgrade():
    op.create_index('ix_attempts_started_at', 'attempts', ['started_at'])
    op.drop_table('hook_stats')
