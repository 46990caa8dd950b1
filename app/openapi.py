"""What the OpenAPI document says about the entity fields of a trigger.

The entity schemas (schemas/entities.py) check JSON types with fields of their own, which
apispec cannot see into: left alone, every entity field, and the trigger's ``entity``
itself, would be an untyped ``{}``. This gives each its type, and ``entity`` the three
entity schemas, so a client can see the body it has to send.
"""

from marshmallow import fields

from schemas import entities
from schemas import triggers

NULL_OBJECT = {"type": "object", "nullable": True}

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


def nullable_nested(converter, field, ret=None, **kwargs):
    """apispec attribute function: a nested schema that may be null is that schema or null.
    apispec writes it as anyOf [any object, the schema], which tells a client (and a fuzzer)
    that any object at all is fine there; the API refuses unknown fields."""
    any_of = (ret or {}).get("anyOf")
    if isinstance(field, fields.Nested) and any_of and NULL_OBJECT in any_of:
        del ret["anyOf"]
        return {"allOf": [schema for schema in any_of if schema != NULL_OBJECT], "nullable": True}
    return {}


def register(api):
    api.ma_plugin.converter.add_attribute_function(entity_properties)
    api.ma_plugin.converter.add_attribute_function(nullable_nested)
