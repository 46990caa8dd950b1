"""fan_out: store triggers once and create one delivery per matching hook.

Many triggers go into one transaction, in the order they are given: the intake hands each
partition's triggers over in the order they were emitted, so an earlier trigger of an
entity is always stored before a later one can be claimed. The claim rule (a delivery
waits while an earlier one of its entity and receiver is owed) then keeps the order, with
no waiting on a clock.
"""

import collections
import datetime
import json
import logging

import storage.triggers
from storage import groups
from storage import ledger
from storage.lifecycle import Status
from workers import matching
from workers import endpoint_health

log = logging.getLogger(__name__)

_Trigger = collections.namedtuple("_Trigger", "organization_id event_id event_guide_id")


def parse_time(text):
    """An ISO time as naive UTC (how the ledger stores time)."""
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def fan_out_many(conn, records, now):
    """Store ``records`` (validated trigger messages) and their deliveries in the caller's
    transaction; returns the new delivery rows (dicts). A record carries its entity as a
    dict (``entity``) or as the JSON text to store (``entity_text``, from the intake).

    A trigger_id seen before (or twice in ``records``) fans out once. A disabled hook gets
    a skipped row: recorded, terminal, never blocking its entity's order;
    ``POST /v1/deliveries/<id>/redeliver`` sends it should the organizer want it.
    """
    if not records:
        return []
    hooks = collections.defaultdict(list)
    for hook in groups.hooks_for_types(conn, {r["organization_id"] for r in records}, {r["type"] for r in records}):
        hooks[(hook.organization_id, hook.type)].append(hook)
    triggers, planned, seen = [], [], set()
    for record in records:
        if record["trigger_id"] in seen:
            continue
        seen.add(record["trigger_id"])
        occurred_at = parse_time(record["occurred_at"])
        scope = _Trigger(record["organization_id"], record["event_id"], record.get("event_guide_id"))
        matched = [h for h in hooks[(record["organization_id"], record["type"])] if matching.in_scope(h, scope)]
        triggers.append({
            "trigger_id": record["trigger_id"], "type": record["type"],
            "organization_id": record["organization_id"], "event_id": record["event_id"],
            "event_guide_id": record.get("event_guide_id"), "entity_kind": record["entity_kind"],
            "entity_id": record["entity_id"], "occurred_at": occurred_at, "received_at": now,
            "entity": record.get("entity_text") or json.dumps(record["entity"], separators=(",", ":"),
                                                              ensure_ascii=False),
            "delivery_count": len(matched),
        })
        planned.append((record, occurred_at, matched))
    created = storage.triggers.store_triggers(conn, triggers)
    rows = []
    for record, occurred_at, matched in planned:
        trigger_pk = created.get(record["trigger_id"])
        if trigger_pk is None:
            log.info("trigger seen before, not fanned out again", extra={"trigger_id": record["trigger_id"]})
            continue
        for hook in matched:
            state = {} if hook.disabled_at is None else {
                "status": Status.SKIPPED, "skipped_reason": endpoint_health.skipped_reason(hook.disabled_reason)}
            if hook.paused_until is not None and hook.paused_until > now:  # its receiver asked for a pause
                state["next_attempt_at"] = hook.paused_until
            rows.append(matching.delivery_row(hook, trigger_pk, record["organization_id"], record["entity_kind"],
                                              record["entity_id"], occurred_at, now, **state))
    ledger.add_deliveries(conn, rows)
    return rows


def fan_out(engine, record, now):
    """One trigger in a transaction of its own; returns the ids of its deliveries to send."""
    with engine.begin() as conn:
        rows = fan_out_many(conn, [record], now)
    return [row["id"] for row in rows if row["status"] == Status.PENDING]
