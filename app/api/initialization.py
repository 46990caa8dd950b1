"""Webhook initialization as doo documents it: ``POST /v1/webhooks/init/<resource>``.

Re-sends the latest known state of every matching event, order or attendee to the hooks
that take it, at most ``max_rate_per_min`` a minute (services.initialization).
"""

from flask import request
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api.envelopes import SECURITY
from app.api.envelopes import SelfLinksSchema
from app.api.envelopes import url
from app.api.fields import LedgerDateTime
from app.api.fields import cet
from app.auth import current_caller
from app.context import context
from app.deliveries import aware
from app.errors import ApiBlueprint
from schemas.types import TYPES
from schemas.webhook_config import HookType
from schemas.webhook_config import Id
from services import initialization

blp = ApiBlueprint("initialization", __name__, description="Webhook initialization: re-send existing entities.")


class InitSchema(Schema):
    class Meta:
        unknown = RAISE

    event_id = Id(allow_none=True, metadata={"description": "Required for orders and attendees."})
    organization_id = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=2**31 - 1),
                                     metadata={"description": "Required for events."})
    last_updated_after = LedgerDateTime(zone=cet(), allow_none=True, metadata={
        "description": "Entities last changed at or after this time (no offset: CET, as doo documents)."})
    last_updated_before = LedgerDateTime(zone=cet(), allow_none=True, metadata={
        "description": "Entities last changed at or before this time (no offset: CET)."})
    webhook_type = fields.List(HookType(), allow_none=True, validate=validate.Length(max=len(TYPES)), metadata={
        "description": "Types to send through (on_ prefix accepted); default every type of the resource."})
    webhook_configuration_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "Only this webhook group; default every group."})
    max_rate_per_min = fields.Integer(allow_none=True, load_default=initialization.DEFAULT_RATE,
                                      validate=validate.Range(min=1, max=initialization.MAX_RATE))


class InitResultSchema(Schema):
    response_status = fields.Integer()
    developer_message = fields.String()
    user_message = fields.String()
    items_processed = fields.Integer(metadata={"description": "Entities re-sent."})
    deliveries_queued = fields.Integer(metadata={"description": "Deliveries created (an entity per matching hook)."})
    last_due_at = fields.DateTime(allow_none=True, metadata={"description": "When the last of them falls due."})
    _links = fields.Nested(SelfLinksSchema, data_key="_links", attribute="_links")


@blp.route("/webhooks/init/<resource>", methods=["POST"])
@blp.arguments(InitSchema, error_status_code=400)
@blp.response(200, InitResultSchema)
@blp.doc(security=SECURITY)
def initialize(body, resource):
    """Re-send every matching event, order or attendee (its latest known state), paced at
    ``max_rate_per_min`` (default 50, 1 to 50)."""
    started = initialization.start(context(), current_caller(), resource, body)
    return dict(started, last_due_at=aware(started["last_due_at"]), response_status=200,
                developer_message="Success", user_message="Success", _links={"self": {"href": url(request.path)}})
