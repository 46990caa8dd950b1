"""The status columns hold only the lifecycle's statuses (storage.lifecycle): a CHECK constraint
on PostgreSQL; on SQLite, which cannot add one to an existing table, triggers that refuse the same

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 15:00:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# the statuses of this revision, written out: a migration describes the schema of its own time
CHECKS = (
    ("deliveries", "ck_deliveries_status",
     ("pending", "in_flight", "retrying", "delivered", "dead", "cancelled", "skipped")),
    ("notifications", "ck_notifications_status", ("pending", "sent", "failed", "cancelled")),
)


def _allowed(statuses):
    return ", ".join(f"'{s}'" for s in statuses)


def upgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, name, statuses in CHECKS:
        condition = f"status IN ({_allowed(statuses)})"
        if not sqlite:
            op.create_check_constraint(name, table, condition)
            continue
        for event in ("INSERT", "UPDATE OF status"):
            op.execute(
                f"CREATE TRIGGER {name}_{event.split()[0].lower()} BEFORE {event} ON {table} "
                f"WHEN NEW.status NOT IN ({_allowed(statuses)}) "
                f"BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {name}'); END")


def downgrade():
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, name, _ in reversed(CHECKS):
        if not sqlite:
            op.drop_constraint(name, table, type_="check")
            continue
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}_{event}")
