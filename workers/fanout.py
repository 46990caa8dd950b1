"""fan_out: store a trigger once and create one delivery per matching hook."""

import datetime
import hashlib
import json
import logging
import uuid

from storage import queries
from workers import rules

log = logging.getLogger(__name__)
EPOCH = datetime.datetime(1970, 1, 1)


def parse_time(text):
    """An ISO time as naive UTC (how the ledger stores time)."""
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def sequence_of(occurred_at):
    """The ordering position of a trigger: its occurred_at in microseconds."""
    return int((occurred_at - EPOCH).total_seconds() * 1_000_000)


def ordering_key(group_id, endpoint, entity_kind, entity_id):
    """Deliveries sharing this key go out one after another, in trigger order."""
    text = json.dumps([group_id, endpoint, entity_kind, entity_id])
    return hashlib.sha256(text.encode()).hexdigest()


def fan_out(engine, record, now, first_attempt_at=None, enqueued=True):
    """Store the trigger and its deliveries in one transaction; return the ids to enqueue.

    A trigger_id seen before returns no ids: its deliveries exist already, and any whose
    message was lost are re-enqueued by the scheduler. ``first_attempt_at`` (default now)
    holds the new deliveries back (see DOO_WEBHOOKS_ORDERING_DELAY); ``enqueued=False``
    says no message will be sent for them, so the scheduler's next sweep takes them.
    """
    ids, _ = fan_out_and_claim(engine, record, now, first_attempt_at=first_attempt_at, enqueued=enqueued)
    return ids


def fan_out_and_claim(engine, record, now, lease_seconds=None, claim_limit=0, first_attempt_at=None,
                      enqueued=True):
    """Like fan_out, but up to ``claim_limit`` new deliveries are claimed in the same
    transaction (in flight, attempt 1) for the caller to send at once.

    Returns (ids to enqueue, claimed rows as storage.queries.claimed_details gives them).
    A delivery whose entity still owes an earlier one to the same receiver is never claimed.
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
    sequence = sequence_of(occurred_at)
    with engine.begin() as conn:
        queries.lock_entity(conn, record["organization_id"], record["entity_kind"], record["entity_id"])
        trigger_pk, created = queries.store_trigger(conn, trigger)
        if not created:
            log.info("trigger seen before, not fanned out again", extra={"trigger_id": record["trigger_id"]})
            return [], []
        # A disabled hook gets a skipped row: recorded, terminal, never blocking its entity's
        # order; POST /v1/deliveries/<id>/redeliver sends it should the organizer want it.
        rows = [{
            "id": str(uuid.uuid4()), "trigger_pk": trigger_pk, "hook_id": hook.id, "group_id": hook.group_id,
            "organization_id": record["organization_id"], "type": record["type"], "endpoint": hook.endpoint,
            "entity_kind": record["entity_kind"], "entity_id": record["entity_id"],
            "ordering_key": ordering_key(hook.group_id, hook.endpoint, record["entity_kind"], record["entity_id"]),
            "sequence": sequence, "attempts": 0, "lease_until": None, "created_at": now, "updated_at": now,
            **({"status": "pending", "next_attempt_at": first_attempt_at or now,
                "enqueued_at": now if enqueued else None, "skipped_reason": None}
               if hook.disabled_at is None else
               {"status": "skipped", "next_attempt_at": now, "enqueued_at": None,
                "skipped_reason": rules.skipped_reason(hook.disabled_reason)}),
        } for hook in queries.matching_hooks(conn, record["organization_id"], record["type"],
                                             record["event_id"], record.get("event_guide_id"))]
        claimed = []
        if claim_limit and rows:
            blocked = queries.blocked_keys(conn, {row["ordering_key"] for row in rows}, sequence, trigger_pk)
            lease_until = now + datetime.timedelta(seconds=lease_seconds)
            for row in rows:
                if len(claimed) < claim_limit and row["status"] == "pending" and row["ordering_key"] not in blocked:
                    row.update(status="in_flight", attempts=1, lease_until=lease_until)
                    claimed.append(row["id"])
        queries.insert_deliveries(conn, rows, trigger_pk)
        details = queries.claimed_details(conn, claimed)
    log.info("trigger fanned out to %d hook(s)", len(rows), extra={"trigger_id": record["trigger_id"]})
    return [row["id"] for row in rows if row["status"] == "pending"], details
