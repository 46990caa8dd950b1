"""Webhook initialization (doo: ``POST /v1/webhooks/init/<resource>``): re-send the latest
known snapshot of every matching entity to the hooks that take it, paced.

The pace is the schedule itself. Each new delivery is due 60 / max_rate_per_min seconds
after the one before, and the scheduler only ever enqueues due rows, so no more than
max_rate_per_min of one initialization fall due in any minute; a worker pool of any size
cannot go faster. A second initialization of the same organizations queues behind the
first rather than doubling the rate.

The snapshots are the stored triggers: this service knows an entity only as the platform
last sent it. Each re-sent delivery keeps its snapshot's sequence, so the ordering rule
puts it where that state belongs among the entity's deliveries: a change made while an
initialization is still pending waits for it, and a receiver never gets an older state
after a newer one.
"""

import datetime
import uuid

from schemas.types import TYPES
from storage import queries
from workers.fanout import ordering_key
from workers.fanout import sequence_of

DEFAULT_RATE = 50
MAX_RATE = 50


def types_of(entity_kind):
    """Every webhook type that carries this kind of entity (doo's default for ``webhook_type``)."""
    return [t for t, kind in TYPES.items() if kind == entity_kind]


def in_scope(hook, snapshot):
    """The group's scope takes the entity: the whole organization, its event, or its event guide."""
    if hook.organization_id != snapshot.organization_id:
        return False
    if hook.group_event_id is None and hook.group_event_guide_id is None:
        return True
    return ((hook.group_event_id is not None and hook.group_event_id == snapshot.event_id)
            or (hook.group_event_guide_id is not None and hook.group_event_guide_id == snapshot.event_guide_id))


def spacing(rate):
    return datetime.timedelta(seconds=60 / rate)


def plan(snapshots, hooks, start, rate, now):
    """The delivery rows: one per (snapshot, hook in scope), due ``spacing(rate)`` apart from ``start``."""
    rows, step = [], spacing(rate)
    for snapshot in snapshots:
        for hook in hooks:
            if not in_scope(hook, snapshot):
                continue
            rows.append({
                "id": str(uuid.uuid4()), "trigger_pk": snapshot.id, "hook_id": hook.id, "group_id": hook.group_id,
                "organization_id": snapshot.organization_id, "type": hook.type, "endpoint": hook.endpoint,
                "entity_kind": snapshot.entity_kind, "entity_id": snapshot.entity_id,
                "ordering_key": ordering_key(hook.group_id, hook.endpoint, snapshot.entity_kind, snapshot.entity_id),
                "sequence": sequence_of(snapshot.occurred_at), "status": "pending", "attempts": 0,
                "attempt_base": 0, "source": "init", "next_attempt_at": start + len(rows) * step,
                "enqueued_at": None, "created_at": now, "updated_at": now,
            })
    return rows


def initialize(conn, entity_kind, now, *, hook_types=None, rate=DEFAULT_RATE, organization_ids=None,
               event_id=None, updated_after=None, updated_before=None, group_id=None):
    """Create the paced deliveries of one initialization; returns (items re-sent, delivery rows).

    ``organization_ids`` None means every organization (the operator's CLI). The rows are
    left for the scheduler (no queue message): it enqueues each when it falls due.
    """
    if not 1 <= rate <= MAX_RATE:
        raise ValueError(f"max_rate_per_min must be between 1 and {MAX_RATE}")
    snapshots = queries.latest_snapshots(conn, entity_kind, organization_ids=organization_ids, event_id=event_id,
                                         updated_after=updated_after, updated_before=updated_before)
    hooks = queries.hooks_for_types(conn, organization_ids, hook_types or types_of(entity_kind), group_id)
    if not snapshots or not hooks:
        return 0, []
    queued_until = queries.init_schedule_end(conn, organization_ids)
    start = now if queued_until is None or queued_until < now else queued_until + spacing(rate)
    rows = plan(snapshots, hooks, start, rate, now)
    queries.add_deliveries(conn, rows)
    return len({row["trigger_pk"] for row in rows}), rows
