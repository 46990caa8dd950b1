"""the trigger inbox: triggers handed to an embedded (standalone) service through its database

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'inbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('record', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_inbox'),
    )


def downgrade():
    op.drop_table('inbox')
