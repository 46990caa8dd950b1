"""Triggers: accepting one from the platform, and showing an organizer one of theirs with the
deliveries it made."""

import logging

from services import access
from services import tenancy
from services.errors import Unavailable
from storage import delivery_log
from workers.producer import complete

log = logging.getLogger(__name__)

TRIGGER_FIELDS = ("trigger_id", "type", "organization_id", "event_id", "event_guide_id", "entity_kind",
                  "entity_id", "occurred_at", "received_at", "delivery_count")
DELIVERY_FIELDS = ("id", "group_id", "type", "endpoint", "status", "attempts", "last_status_code", "last_error")


def accept(ctx, platform_key, record):
    """Queue a validated trigger (schemas.triggers) sent with a platform key; its trigger_id.

    Done once the broker holds it; a broker that is away is Unavailable, and the platform
    keeps the trigger to send again (nothing was queued)."""
    access.require_platform(ctx, platform_key)
    record = complete(record)
    try:
        ctx.publisher.trigger(record)
    except Exception as exc:  # whatever the broker's client raises, the answer is the same
        log.warning("could not enqueue trigger %s: %s", record["trigger_id"], exc)
        raise Unavailable("The trigger could not be queued (broker unavailable); send it again.") from None
    return record["trigger_id"]


def trigger(ctx, caller, trigger_id):
    """A stored trigger of one of the caller's organizations (TRIGGER_FIELDS; times naive UTC)
    with its deliveries (DELIVERY_FIELDS each, oldest first, possibly none)."""
    with ctx.engine.begin() as conn:
        found = tenancy.trigger(conn, caller, trigger_id)
        rows = delivery_log.deliveries_of_trigger(conn, found.id)
    data = {key: getattr(found, key) for key in TRIGGER_FIELDS}
    data["deliveries"] = [{key: getattr(row, key) for key in DELIVERY_FIELDS} for row in rows]
    return data
