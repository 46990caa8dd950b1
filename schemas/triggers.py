"""A trigger: the body of ``POST /v1/triggers`` and what the producer publishes.

``validate_trigger`` returns the plain dict the fan-out stores::

    {"trigger_id", "type", "entity_kind", "entity_id", "event_id", "event_guide_id",
     "organization_id", "occurred_at", "entity", "order_id"}

``occurred_at`` comes back as an ISO string in UTC with microseconds (or None) and the
ids as strings; ``entity`` is the entity as sent plus its top-level ``event_id``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from schemas.entities import Id, LoadedEntity, id_text, load_entity
from schemas.types import TYPES, WebhookType, normalize_type

TRIGGER_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_ORGANIZATION_ID = 2**31 - 1  # the ledger's organization_id is a 32-bit integer


class EntityField(fields.Field):
    """The entity, loaded as the kind its trigger type carries."""

    default_error_messages = {"invalid": "Not a valid object."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        try:
            kind = TYPES[normalize_type(data.get("type"))]
        except ValueError:
            return value  # the type field reports it; the entity cannot be checked without it
        try:
            return load_entity(kind, value)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc


class TriggerSchema(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key (organisation_id) must not be dropped silently

    type = WebhookType(required=True)
    entity = EntityField(required=True)
    # strict: no "7" or 7.0; marshmallow's Number already refuses booleans.
    organization_id = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_ORGANIZATION_ID)
    )
    event_id = Id()
    event_guide_id = Id()
    # "$" also matches before a final newline; the second check closes that gap while the
    # pattern stays a plain one for the OpenAPI document.
    trigger_id = fields.String(
        allow_none=True,
        validate=[validate.Regexp(TRIGGER_ID_PATTERN), validate.ContainsNoneOf(["\n"])],
    )
    occurred_at = fields.AwareDateTime(format="iso", allow_none=True)

    @validates_schema(skip_on_field_errors=False)
    def _event_id_agrees(self, data, **kwargs):
        loaded, given = data.get("entity"), data.get("event_id")
        if not isinstance(loaded, LoadedEntity) or given is None:
            return
        if id_text(given) != loaded.event_id:
            raise ValidationError(
                f"event_id {given!r} disagrees with the entity's event id {loaded.event_id!r}.",
                "event_id",
            )

    @post_load
    def _to_record(self, data, **kwargs) -> dict:
        loaded: LoadedEntity = data["entity"]
        occurred_at = data.get("occurred_at")
        guide = data.get("event_guide_id")
        return {
            "trigger_id": data.get("trigger_id"),
            "type": data["type"],
            "entity_kind": loaded.kind,
            "entity_id": loaded.entity_id,
            "event_id": loaded.event_id,
            "event_guide_id": None if guide is None else id_text(guide),
            "organization_id": data["organization_id"],
            "occurred_at": None
            if occurred_at is None
            else occurred_at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"),
            "entity": loaded.entity,
            "order_id": loaded.order_id,
        }


_SCHEMA = TriggerSchema()


def validate_trigger(data: dict) -> dict:
    """Load ``data`` as a trigger; raises ``ValidationError`` with field-level messages."""
    return _SCHEMA.load(data)
