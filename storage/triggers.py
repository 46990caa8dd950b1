"""Stored triggers: stored once (trigger_id is idempotent), fan-outs of one entity serialised,
looked up by id, and each entity's latest trigger (the snapshot initialization re-sends)."""

import sqlalchemy as sa

from storage import statements
from storage.tables import triggers


#: types after which an entity no longer exists: initialization does not re-send it
GONE_TYPES = ("event_removed", "order_removed")


def lock_entity(conn, organization_id, entity_kind, entity_id):
    """Serialise fan-outs of one entity until commit, so each sees the deliveries of the one
    before it (the ordering rule needs them). SQLite's single writer does this already."""
    if conn.dialect.name == "postgresql":
        key = f"{organization_id}:{entity_kind}:{entity_id}"
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


def store_trigger(conn, values):
    """Insert a trigger once; returns (primary key, created) — created is False for a repeat."""
    stmt = statements.insert(conn, triggers).values(**values).on_conflict_do_nothing(index_elements=["trigger_id"])
    pk = conn.execute(stmt.returning(triggers.c.id)).scalar()
    if pk is not None:
        return pk, True
    existing = conn.execute(sa.select(triggers.c.id).where(triggers.c.trigger_id == values["trigger_id"])).scalar_one()
    return existing, False


def store_triggers(conn, rows):
    """Insert many triggers in one statement; a trigger_id stored before (or twice in ``rows``)
    is left as it is. Returns {trigger_id: primary key} of the rows this call created."""
    if not rows:
        return {}
    stmt, params = statements.bulk_insert(conn, triggers, rows)
    stmt = statements.built(("store_triggers", conn.dialect.name, tuple(rows[0])), lambda: stmt.on_conflict_do_nothing(
        index_elements=["trigger_id"]).returning(triggers.c.trigger_id, triggers.c.id))
    return dict(conn.execute(stmt, params).all())


def trigger_by_id(conn, trigger_id):
    return conn.execute(sa.select(triggers).where(triggers.c.trigger_id == trigger_id)).first()


def latest_snapshots(conn, entity_kind, *, organization_ids=None, event_id=None, updated_after=None,
                     updated_before=None):
    """The latest stored trigger of each matching entity (by occurred_at, then arrival), oldest first.

    Entities whose latest trigger removed them are left out: they no longer exist.
    ``updated_after``/``updated_before`` bound that latest trigger's occurred_at (inclusive).
    """
    where = [triggers.c.entity_kind == entity_kind]
    if organization_ids is not None:
        where.append(triggers.c.organization_id.in_(organization_ids))
    if event_id is not None:
        where.append(triggers.c.event_id == event_id)
    ranked = sa.select(
        triggers,
        sa.func.row_number().over(
            partition_by=(triggers.c.organization_id, triggers.c.entity_kind, triggers.c.entity_id),
            order_by=(triggers.c.occurred_at.desc(), triggers.c.id.desc()),
        ).label("rank"),
    ).where(*where).subquery()
    latest = [ranked.c.rank == 1, ranked.c.type.not_in(GONE_TYPES)]
    if updated_after is not None:
        latest.append(ranked.c.occurred_at >= updated_after)
    if updated_before is not None:
        latest.append(ranked.c.occurred_at <= updated_before)
    return conn.execute(sa.select(ranked).where(*latest).order_by(ranked.c.occurred_at, ranked.c.id)).all()
