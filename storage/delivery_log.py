"""The delivery log operators read and act on: one delivery, a filtered listing, its attempts
and request headers; redelivery and dead-letter replay (a new attempt series); dead
deliveries' details for delivery.exhausted events; when initialization's paced rows end.

Organization scoping is a filter here (``organization_ids``); None means every
organization, for the operator's CLI."""

import sqlalchemy as sa

from storage import lifecycle
from storage.lifecycle import Move
from storage.lifecycle import Status
from storage.tables import attempts
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import triggers
from storage.tables import webhook_groups


def deliveries_of_trigger(conn, trigger_pk):
    return conn.execute(sa.select(deliveries).where(deliveries.c.trigger_pk == trigger_pk)
                        .order_by(deliveries.c.created_at, deliveries.c.id)).all()


def delivery(conn, delivery_id):
    return conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()


def attempts_of(conn, delivery_id):
    return conn.execute(sa.select(attempts).where(attempts.c.delivery_id == delivery_id)
                        .order_by(attempts.c.number)).all()


def summary_columns():
    return (
        deliveries.c.id, deliveries.c.trigger_pk, deliveries.c.hook_id, deliveries.c.group_id,
        deliveries.c.organization_id, deliveries.c.type, deliveries.c.endpoint, deliveries.c.entity_kind,
        deliveries.c.entity_id, deliveries.c.sequence, deliveries.c.status, deliveries.c.attempts,
        deliveries.c.attempt_base, deliveries.c.source, deliveries.c.next_attempt_at,
        deliveries.c.last_status_code, deliveries.c.last_error, deliveries.c.created_at,
        deliveries.c.updated_at, deliveries.c.delivered_at, deliveries.c.skipped_reason,
        triggers.c.trigger_id, hooks.c.position.label("hook_position"),
        hooks.c.disabled_at.label("hook_disabled_at"), hooks.c.removed_at.label("hook_removed_at"),
    )


def where_of(*, organization_ids=None, group_id=None, status=None, hook_type=None, entity_id=None, since=None,
            until=None, live_groups=False):
    """WHERE clauses of the listings (the API's and the dashboard's); ``since``/``until`` bound
    created_at (until exclusive)."""
    where = []
    if organization_ids is not None:
        where.append(deliveries.c.organization_id.in_(organization_ids))
    if group_id is not None:
        where.append(deliveries.c.group_id == group_id)
    if status is not None:
        where.append(deliveries.c.status == status)
    if hook_type is not None:
        where.append(deliveries.c.type == hook_type)
    if entity_id is not None:
        # through the entity's triggers (ix_triggers_org_kind_entity, then ix_deliveries_trigger_pk):
        # an index of the ledger's own for a filter this rare would cost every write
        entity = sa.select(triggers.c.id).where(triggers.c.entity_kind.in_(ENTITY_KINDS), triggers.c.entity_id == entity_id)
        if organization_ids is not None:
            entity = entity.where(triggers.c.organization_id.in_(organization_ids))
        where.append(deliveries.c.trigger_pk.in_(entity))
    if since is not None:
        where.append(deliveries.c.created_at >= since)
    if until is not None:
        where.append(deliveries.c.created_at < until)
    if live_groups:
        where.append(deliveries.c.group_id.in_(
            sa.select(webhook_groups.c.id).where(webhook_groups.c.deleted_at.is_(None))))
    return where


ENTITY_KINDS = ("event", "order", "attendee")


def list_deliveries(conn, limit, offset, **filters):
    """(total, rows) of deliveries matching ``filters`` (see where_of), newest first."""
    where = where_of(**filters)
    total = conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(*where)).scalar_one()
    rows = conn.execute(
        sa.select(*summary_columns())
        .select_from(deliveries.join(triggers).join(hooks))
        .where(*where)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.sequence.desc(), deliveries.c.id.desc())
        .limit(limit).offset(offset)
    ).all()
    return total, rows


def delivery_view(conn, delivery_id):
    """One delivery with its payload, trigger, hook and group state, or None."""
    return conn.execute(
        sa.select(*summary_columns(), deliveries.c.payload, webhook_groups.c.deleted_at.label("group_deleted_at"))
        .select_from(deliveries.join(triggers).join(hooks).join(webhook_groups,
                                                                 webhook_groups.c.id == deliveries.c.group_id))
        .where(deliveries.c.id == delivery_id)
    ).first()


def count_deliveries(conn, **filters):
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                        .where(*where_of(**filters))).scalar_one()


def latest_request_headers(conn, delivery_id):
    """The (redacted) request headers of the delivery's latest attempt that sent a request."""
    return conn.execute(
        sa.select(attempts.c.request_headers)
        .where(attempts.c.delivery_id == delivery_id, attempts.c.request_headers.is_not(None))
        .order_by(attempts.c.number.desc()).limit(1)
    ).scalar()


def restart_series(conn, ids, now, statuses):
    """Give each delivery of ``ids`` that is in one of ``statuses`` a new attempt series.

    Same row, payload and webhook-id; ``attempt_base`` moves to the attempts made so far, so
    the new series again has max_attempts and the attempt numbers go on growing. The row
    keeps its sequence: the ordering rule sorts it among its entity's deliveries.
    The rows are due at once: the workers' next claim takes them (the caller may nudge the
    send loops after the commit). Returns the ids restarted.
    """
    if not ids:
        return []
    return conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.id.in_(ids), deliveries.c.status.in_(statuses))
        .values(status=Status.PENDING, attempt_base=deliveries.c.attempts, next_attempt_at=now,
                delivered_at=None, skipped_reason=None, lease_until=None, updated_at=now)
        .returning(deliveries.c.id)
    ).scalars().all()


def replay_dead(conn, now, limit, **filters):
    """Restart up to ``limit`` dead deliveries of live groups matching ``filters``, oldest
    (by sequence) first; returns their ids in that order."""
    chosen = conn.execute(
        sa.select(deliveries.c.id)
        .where(*where_of(status=Status.DEAD, live_groups=True, **filters))
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk, deliveries.c.id)
        .limit(limit)
    ).scalars().all()
    restarted = set(restart_series(conn, chosen, now, lifecycle.sources(Move.REPLAY)))
    return [i for i in chosen if i in restarted]


def exhausted_details(conn, delivery_ids):
    """Dead deliveries with their trigger and hook (for delivery.exhausted events)."""
    if not delivery_ids:
        return []
    return conn.execute(
        sa.select(deliveries.c.id, deliveries.c.group_id, deliveries.c.type, deliveries.c.endpoint,
                  deliveries.c.entity_kind, deliveries.c.entity_id, deliveries.c.attempts,
                  deliveries.c.last_status_code, deliveries.c.last_error, triggers.c.trigger_id,
                  hooks.c.position.label("hook_position"), hooks.c.removed_at.label("hook_removed_at"))
        .select_from(deliveries.join(triggers).join(hooks))
        .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == Status.DEAD)
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk)
    ).all()


def init_schedule_end(conn, organization_ids):
    """The latest time an open initialization delivery of these organizations is due, or None."""
    stmt = sa.select(sa.func.max(deliveries.c.next_attempt_at)).where(
        deliveries.c.source == "init", deliveries.c.status == Status.PENDING)
    if organization_ids is not None:
        stmt = stmt.where(deliveries.c.organization_id.in_(organization_ids))
    return conn.execute(stmt).scalar()
