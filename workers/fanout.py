"""fan_out: store a trigger once and create one delivery per matching hook."""

import datetime
import hashlib
import json
import logging
import uuid

from storage import queries

log = logging.getLogger(__name__)
EPOCH = datetime.datetime(1970, 1, 1)


def parse_time(text):
    """An ISO time as naive UTC (how the ledger stores time)."""
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def ordering_key(group_id, endpoint, entity_kind, entity_id):
    """Deliveries sharing this key go out one after another, in trigger order."""
    text = json.dumps([group_id, endpoint, entity_kind, entity_id])
    return hashlib.sha256(text.encode()).hexdigest()


def fan_out(engine, record, now):
    """Store the trigger and its deliveries in one transaction; return the ids to enqueue.

    A trigger_id seen before returns no ids: its deliveries exist already, and any whose
    message was lost are re-enqueued by the scheduler.
    """
    occurred_at = parse_time(record["occurred_at"])
    trigger = {
        "trigger_id": record["trigger_id"], "type": record["type"],
        "organization_id": record["organization_id"], "event_id": record["event_id"],
        "event_guide_id": record.get("event_guide_id"), "entity_kind": record["entity_kind"],
        "entity_id": record["entity_id"], "occurred_at": occurred_at, "received_at": now,
        "entity": json.dumps(record["entity"], separators=(",", ":"), ensure_ascii=False),
        "delivery_count": 0,
    }
    sequence = int((occurred_at - EPOCH).total_seconds() * 1_000_000)
    with engine.begin() as conn:
        trigger_pk, created = queries.store_trigger(conn, trigger)
        if not created:
            log.info("trigger seen before, not fanned out again", extra={"trigger_id": record["trigger_id"]})
            return []
        rows = [{
            "id": str(uuid.uuid4()), "trigger_pk": trigger_pk, "hook_id": hook.id, "group_id": hook.group_id,
            "organization_id": record["organization_id"], "type": record["type"], "endpoint": hook.endpoint,
            "entity_kind": record["entity_kind"], "entity_id": record["entity_id"],
            "ordering_key": ordering_key(hook.group_id, hook.endpoint, record["entity_kind"], record["entity_id"]),
            "sequence": sequence, "status": "pending", "attempts": 0, "next_attempt_at": now,
            "enqueued_at": now, "created_at": now, "updated_at": now,
        } for hook in queries.matching_hooks(conn, record["organization_id"], record["type"],
                                             record["event_id"], record.get("event_guide_id"))]
        queries.insert_deliveries(conn, rows, trigger_pk)
    log.info("trigger fanned out to %d hook(s)", len(rows), extra={"trigger_id": record["trigger_id"]})
    return [row["id"] for row in rows]
