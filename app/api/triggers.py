"""Triggers: POST /v1/triggers for the platform (any language), GET for organizers to see one."""

from flask import request
from marshmallow import Schema
from marshmallow import fields

from app.api.envelopes import SECURITY
from app.api.envelopes import SuccessSchema
from app.api.envelopes import success
from app.auth import api_key
from app.auth import current_caller
from app.context import context
from app.deliveries import aware
from app.errors import ApiBlueprint
from schemas.examples import TRIGGER_EXAMPLES
from schemas.triggers import TriggerSchema
from services import triggers

blp = ApiBlueprint("triggers", __name__, description="Triggers: what happened on the platform.")


class TriggerIdSchema(Schema):
    trigger_id = fields.String()


class AcceptedSchema(SuccessSchema):
    data = fields.Nested(TriggerIdSchema)


class DeliverySummarySchema(Schema):
    id = fields.String()
    group_id = fields.String()
    type = fields.String()
    endpoint = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)


class TriggerViewSchema(Schema):
    trigger_id = fields.String()
    type = fields.String()
    organization_id = fields.Integer()
    event_id = fields.String(allow_none=True)
    event_guide_id = fields.String(allow_none=True)
    entity_kind = fields.String()
    entity_id = fields.String()
    occurred_at = fields.DateTime()
    received_at = fields.DateTime()
    delivery_count = fields.Integer()
    deliveries = fields.List(fields.Nested(DeliverySummarySchema))


class TriggerEnvelopeSchema(SuccessSchema):
    data = fields.Nested(TriggerViewSchema)


@blp.route("/triggers", methods=["POST"])
@blp.arguments(TriggerSchema, error_status_code=400, examples={
    kind: {"summary": f"{body['type']}: a complete trigger with an {kind} entity", "value": body}
    for kind, body in TRIGGER_EXAMPLES.items()})
@blp.response(202, AcceptedSchema)
@blp.doc(security=[{"apiKey": []}])
def post_trigger(record):
    """Enqueue a trigger (x-api-key: a platform key). 202 once it is safely in the broker."""
    trigger_id = triggers.accept(context(), api_key(), record)
    body = success({"trigger_id": trigger_id})
    body.update(response_status=202, developer_message="Accepted", user_message="Accepted")
    return body, 202


@blp.route("/triggers/<trigger_id>", methods=["GET"])
@blp.response(200, TriggerEnvelopeSchema)
@blp.doc(security=SECURITY)
def get_trigger(trigger_id):
    """A trigger of one of your organizations and the deliveries it made (possibly none)."""
    data = triggers.trigger(context(), current_caller(), trigger_id)
    # stored as naive UTC; the document promises RFC 3339 date-times, which carry their offset
    data.update(occurred_at=aware(data["occurred_at"]), received_at=aware(data["received_at"]))
    return success(data, _links={"self": {"href": request.url}})
