"""Webhook initialization as doo documents it: ``POST /v1/webhooks/init/<resource>``.

Re-sends the latest known state of every matching event, order or attendee to the hooks
that take it, at most ``max_rate_per_min`` a minute (workers.initialization).
"""

from flask import request
from flask_smorest import abort
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
from app.deliveries import aware
from app.errors import ApiBlueprint
from app import tenancy
from app.services import services
from schemas.types import RESOURCES
from schemas.types import TYPES
from schemas.webhook_config import HookType
from schemas.webhook_config import Id
from storage.db import utcnow
from workers import initialization

blp = ApiBlueprint("initialization", __name__, description="Webhook initialization: re-send existing entities.")

#: doo: the id that scopes each resource's initialization
REQUIRED = {"events": "organization_id", "orders": "event_id", "attendees": "event_id"}


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


def _organizations(caller, organization_id):
    """The organizations to initialize: the one named, else every one the caller may write to."""
    if organization_id is not None:
        # a 403 whether the organization exists or not: nothing learnt about others
        if organization_id not in caller.organization_ids():
            abort(403, message=f"You are not a member of organization {organization_id}.")
        if organization_id not in caller.organization_ids(write=True):
            abort(403, message="Your role in this organization may only read.")
        return [organization_id]
    writable = caller.organization_ids(write=True)
    if not writable:
        abort(403, message="Your roles may only read.")
    return writable


def _hook_types(kind, requested):
    if not requested:
        return None
    wrong = {i: [f"{t} does not carry {kind}s"] for i, t in enumerate(requested) if TYPES[t] != kind}
    if wrong:
        abort(400, errors={"webhook_type": wrong})
    return sorted(set(requested))


def start(caller, resource, body):
    """Start an initialization for the caller (``body`` as InitSchema loads it); returns
    (items re-sent, delivery rows). The API and the dashboard's form both call this."""
    if resource not in RESOURCES:
        abort(404, message=f"Initialization of {resource!r} is not offered; resources: {', '.join(RESOURCES)}.")
    kind = RESOURCES[resource]
    required = REQUIRED[resource]
    if body.get(required) is None:
        abort(400, errors={required: [f"Missing data for required field (initialization of {resource})."]})
    organization_ids = _organizations(caller, body.get("organization_id"))
    hook_types = _hook_types(kind, body.get("webhook_type"))
    group_id = body.get("webhook_configuration_id")
    with services().engine.begin() as conn:
        if group_id is not None:
            tenancy.group(conn, caller, group_id, organization_ids=organization_ids)
        return initialization.initialize(
            conn, kind, utcnow(), hook_types=hook_types,
            rate=body.get("max_rate_per_min") or initialization.DEFAULT_RATE,
            organization_ids=organization_ids, event_id=body.get("event_id"),
            updated_after=body.get("last_updated_after"), updated_before=body.get("last_updated_before"),
            group_id=group_id)


@blp.route("/webhooks/init/<resource>", methods=["POST"])
@blp.arguments(InitSchema, error_status_code=400)
@blp.response(200, InitResultSchema)
@blp.doc(security=SECURITY)
def initialize(body, resource):
    """Re-send every matching event, order or attendee (its latest known state), paced at
    ``max_rate_per_min`` (default 50, 1 to 50)."""
    items, rows = start(current_caller(), resource, body)
    return {
        "response_status": 200, "developer_message": "Success", "user_message": "Success",
        "items_processed": items, "deliveries_queued": len(rows),
        "last_due_at": aware(rows[-1]["next_attempt_at"]) if rows else None,
        "_links": {"self": {"href": url(request.path)}},
    }
