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

from schemas.types import TYPES
from storage import delivery_log
from storage import groups
from storage import ledger
from storage import triggers
from workers import matching
from workers.matching import in_scope  # noqa: F401  (initialization's scope rule is fan-out's)

DEFAULT_RATE = 50
MAX_RATE = 50


def types_of(entity_kind):
    """Every webhook type that carries this kind of entity (doo's default for ``webhook_type``)."""
    return [t for t, kind in TYPES.items() if kind == entity_kind]


def spacing(rate):
    return datetime.timedelta(seconds=60 / rate)


def plan(snapshots, hooks, start, rate, now):
    """The delivery rows: one per (snapshot, hook in scope), due ``spacing(rate)`` apart from ``start``."""
    rows, step = [], spacing(rate)
    for snapshot in snapshots:
        for hook in hooks:
            if not in_scope(hook, snapshot):
                continue
            rows.append(matching.delivery_row(
                hook, snapshot.id, snapshot.organization_id, snapshot.entity_kind, snapshot.entity_id,
                snapshot.occurred_at, now, source="init", next_attempt_at=start + len(rows) * step))
    return rows


def initialize(conn, entity_kind, now, *, hook_types=None, rate=DEFAULT_RATE, organization_ids=None,
               event_id=None, updated_after=None, updated_before=None, group_id=None):
    """Create the paced deliveries of one initialization; returns (items re-sent, delivery rows).

    ``organization_ids`` None means every organization (the operator's CLI). The rows wait
    in the ledger: the workers' send loops claim each when it falls due.
    """
    if not 1 <= rate <= MAX_RATE:
        raise ValueError(f"max_rate_per_min must be between 1 and {MAX_RATE}")
    snapshots = triggers.latest_snapshots(conn, entity_kind, organization_ids=organization_ids, event_id=event_id,
                                          updated_after=updated_after, updated_before=updated_before)
    hooks = groups.hooks_for_types(conn, organization_ids, hook_types or types_of(entity_kind), group_id)
    if not snapshots or not hooks:
        return 0, []
    queued_until = delivery_log.init_schedule_end(conn, organization_ids)
    start = now if queued_until is None or queued_until < now else queued_until + spacing(rate)
    rows = plan(snapshots, hooks, start, rate, now)
    ledger.add_deliveries(conn, rows)
    return len({row["trigger_pk"] for row in rows}), rows
