"""Webhook types, the resource each one carries, and the placeholders a hook may use."""

from __future__ import annotations

from marshmallow import ValidationError, fields

# type -> entity kind (DESIGN.md §5 "Types")
TYPES = {
    "event_created": "event",
    "event_updated": "event",
    "event_removed": "event",
    "order_created": "order",
    "order_updated": "order",
    "order_removed": "order",
    "order_cancelled": "order",
    "attendee_pending": "attendee",
    "attendee_validated": "attendee",
    "attendee_cancelled": "attendee",
    "attendee_checkin": "attendee",
}

# resource name in URLs such as /v1/webhooks/init/<resource> -> entity kind
RESOURCES = {"events": "event", "orders": "order", "attendees": "attendee"}

# placeholders a hook of that kind may use in its GraphQL origin body
PLACEHOLDERS = {
    "event": ("%EVENT_ID%", "%ORGANIZATION_ID%"),
    "order": ("%ORDER_ID%", "%EVENT_ID%", "%ORGANIZATION_ID%"),
    "attendee": ("%ATTENDEE_ID%", "%ORDER_ID%", "%EVENT_ID%", "%ORGANIZATION_ID%"),
}

_PREFIX = "on_"  # doo's resource table names types "on_event_created"; configs drop it


def _unknown(value) -> ValueError:
    return ValueError(f"Unknown webhook type {value!r}. Valid types: {', '.join(TYPES)}.")


def normalize_type(value: str) -> str:
    """The canonical type name: one leading ``on_`` dropped; ValueError if unknown."""
    if not isinstance(value, str):
        raise _unknown(value)
    name = value[len(_PREFIX):] if value.startswith(_PREFIX) else value
    if name not in TYPES:
        raise _unknown(value)
    return name


class WebhookType(fields.String):
    """A webhook type; loads to its canonical name (``on_order_created`` -> ``order_created``)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_type(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
