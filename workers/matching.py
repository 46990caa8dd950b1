"""Which hooks take a trigger, and the delivery row each of them gets: one home for both,
shared by fan-out and webhook initialization."""

import uuid

from storage import ordering
from storage.lifecycle import Status


def in_scope(hook, trigger):
    """The hook's group takes the trigger's entity: the whole organization, its event, or its
    event guide. ``hook`` carries organization_id, group_event_id and group_event_guide_id
    (storage.groups.hooks_for_types); ``trigger`` organization_id, event_id, event_guide_id."""
    if hook.organization_id != trigger.organization_id:
        return False
    if hook.group_event_id is None and hook.group_event_guide_id is None:
        return True
    return ((hook.group_event_id is not None and hook.group_event_id == trigger.event_id)
            or (hook.group_event_guide_id is not None and hook.group_event_guide_id == trigger.event_guide_id))


def delivery_row(hook, trigger_pk, organization_id, entity_kind, entity_id, occurred_at, now, **fields):
    """A new delivery of one trigger (or snapshot) to one hook; ``fields`` set status, source,
    next_attempt_at and the like."""
    return {
        "id": str(uuid.uuid4()), "trigger_pk": trigger_pk, "hook_id": hook.id, "group_id": hook.group_id,
        "organization_id": organization_id, "type": hook.type, "endpoint": hook.endpoint,
        "entity_kind": entity_kind, "entity_id": entity_id,
        "ordering_key": ordering.key(hook.group_id, hook.endpoint, entity_kind, entity_id),
        "sequence": ordering.sequence_of(occurred_at), "status": Status.PENDING, "attempts": 0, "attempt_base": 0,
        "source": "trigger", "next_attempt_at": now, "lease_until": None,
        "skipped_reason": None, "created_at": now, "updated_at": now, **fields,
    }
