"""Retention: deleting delivered deliveries (with their attempts) and triggers no delivery names
any more, a batch at a time."""

import sqlalchemy as sa

from storage import statements
from storage.lifecycle import Status
from storage.tables import attempts
from storage.tables import deliveries
from storage.tables import triggers


def purge_delivered(conn, cutoff, limit):
    """Delete up to ``limit`` deliveries delivered before ``cutoff`` and their attempts; returns how many."""
    ids = conn.execute(statements.skip_locked(conn, sa.select(deliveries.c.id).where(
        deliveries.c.status == Status.DELIVERED, deliveries.c.delivered_at < cutoff).limit(limit))).scalars().all()
    if ids:
        conn.execute(sa.delete(attempts).where(attempts.c.delivery_id.in_(ids)))
        conn.execute(sa.delete(deliveries).where(deliveries.c.id.in_(ids)))
    return len(ids)


def purge_triggers(conn, cutoff, limit, keep_latest=True):
    """Delete up to ``limit`` triggers received before ``cutoff`` that no delivery names.

    ``keep_latest`` keeps each entity's latest trigger: it is the snapshot initialization
    re-sends. Returns how many were deleted.
    """
    newer = triggers.alias("newer")
    where = [triggers.c.received_at < cutoff,
             ~sa.exists().where(deliveries.c.trigger_pk == triggers.c.id)]
    if keep_latest:
        where.append(sa.exists().where(
            newer.c.organization_id == triggers.c.organization_id, newer.c.entity_kind == triggers.c.entity_kind,
            newer.c.entity_id == triggers.c.entity_id,
            sa.or_(newer.c.occurred_at > triggers.c.occurred_at,
                   sa.and_(newer.c.occurred_at == triggers.c.occurred_at, newer.c.id > triggers.c.id))))
    ids = conn.execute(sa.select(triggers.c.id).where(*where).limit(limit)).scalars().all()
    if ids:
        conn.execute(sa.delete(triggers).where(triggers.c.id.in_(ids)))
    return len(ids)


def count_purgeable(conn, cutoff):
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        deliveries.c.status == Status.DELIVERED, deliveries.c.delivered_at < cutoff)).scalar_one()
