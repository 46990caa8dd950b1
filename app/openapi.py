"""What the OpenAPI document says about the entity fields of a trigger.

The entity schemas (schemas/entities.py) check JSON types with fields of their own, which
apispec cannot see into: left alone, every entity field, and the trigger's ``entity``
itself, would be an untyped ``{}``. This gives each its type, and ``entity`` the three
entity schemas, so a client can see the body it has to send.
"""

from schemas import entities
from schemas import triggers

_TYPES = {
    entities.Str: "string", entities.Num: "number", entities.Int: "integer", entities.Bool: "boolean",
    entities.Obj: "object", entities.Arr: "array",
}

ENTITY_DESCRIPTION = (
    "The entity the trigger is about, as the platform has it; its kind follows from `type`: "
    "an Event for event_*, an Order for order_*, an Attendee for attendee_*. Fields not listed "
    "are passed to the receiver as sent."
)


def entity_properties(converter, field, ret=None, **kwargs):
    """apispec attribute function: the OpenAPI type of the entity fields (bound to the converter)."""
    if isinstance(field, entities.Id):
        return {"oneOf": [{"type": "string", "minLength": 1, "maxLength": entities.ID_MAX_LENGTH},
                          {"type": "integer"}],
                "description": "An id: a non-empty string or an integer."}
    if isinstance(field, triggers.EntityField):
        refs = [converter.resolve_nested_schema(schema) for schema in
                (entities.EventSchema, entities.OrderSchema, entities.AttendeeSchema)]
        # anyOf, not oneOf: with unknown fields allowed an object can fit more than one kind
        return {"anyOf": refs, "description": ENTITY_DESCRIPTION}
    for cls, openapi_type in _TYPES.items():
        if isinstance(field, cls):
            return {"type": openapi_type}
    return {}


def register(api):
    api.ma_plugin.converter.add_attribute_function(entity_properties)
