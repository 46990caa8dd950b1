"""The embedded service's broker: trigger records (JSON texts) queued in a table of the same
database, taken in the order they were added."""

import sqlalchemy as sa

from storage.tables import inbox


def add_to_inbox(conn, records, now):
    """Queue trigger records (JSON texts) for an embedded service's intake."""
    if records:
        conn.execute(sa.insert(inbox), [{"record": text, "created_at": now} for text in records])


def take_inbox(conn, limit):
    """The oldest ``limit`` inbox rows (id, record), in the order they were added."""
    return conn.execute(sa.select(inbox.c.id, inbox.c.record).order_by(inbox.c.id).limit(limit)).all()


def drop_from_inbox(conn, ids):
    if ids:
        conn.execute(sa.delete(inbox).where(inbox.c.id.in_(ids)))


def inbox_depth(conn):
    return conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one()
