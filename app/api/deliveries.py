"""The delivery log and putting it right: deliveries of a group, one delivery with its
attempts, redelivery, dead letters and their replay, enabling a disabled hook.

Every object is scoped by the caller's organizations: another organization's delivery or
group answers exactly like a missing one (404), another team's listing is a 403.
"""

import math

from flask import request
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app import deliveries as views
from app.api.envelopes import SECURITY
from app.api.envelopes import PageArgsSchema
from app.api.envelopes import PageSchema
from app.api.envelopes import SuccessSchema
from app.api.envelopes import page_links
from app.api.envelopes import success
from app.api.envelopes import url
from app.api.fields import LedgerDateTime
from app.auth import current_caller
from app.context import context
from app.errors import ApiBlueprint
from schemas.webhook_config import HookType
from schemas.webhook_config import LinkSchema
from schemas.webhook_config import SelfLinksSchema
from services import deliveries
from storage.lifecycle import Status

blp = ApiBlueprint("deliveries", __name__, description="Deliveries, attempts, redelivery and dead letters.")

STATUSES = tuple(status.value for status in Status)


# --- request shapes ----------------------------------------------------------------------

class WindowSchema(Schema):
    type = HookType(metadata={"description": "A webhook type (on_ prefix accepted)."})
    since = LedgerDateTime(metadata={"description": "Created at or after (RFC 3339; no offset = UTC)."})
    until = LedgerDateTime(metadata={"description": "Created before (RFC 3339; no offset = UTC)."})


class DeliveryArgsSchema(PageArgsSchema, WindowSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))


class DeadLetterArgsSchema(PageArgsSchema, WindowSchema):
    group_id = fields.String(validate=validate.Length(min=1, max=64))


class ReplaySchema(Schema):
    """Which dead letters to replay; every field optional (none: all of the organization's)."""

    class Meta:
        unknown = RAISE

    group_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    type = HookType(allow_none=True)
    since = LedgerDateTime(allow_none=True)
    until = LedgerDateTime(allow_none=True)


# --- response shapes ---------------------------------------------------------------------

class DeliveryOutSchema(Schema):
    id = fields.String()
    trigger_id = fields.String()
    group_id = fields.String()
    type = fields.String()
    endpoint = fields.String()
    entity_kind = fields.String()
    entity_id = fields.String()
    source = fields.String(metadata={"description": "trigger, or init (webhook initialization)."})
    status = fields.String(metadata={"description": ", ".join(STATUSES)})
    waiting_for_hook = fields.Boolean(metadata={"description": "Owed, but its hook is disabled: it waits."})
    skipped_reason = fields.String(allow_none=True, metadata={
        "description": "Why a skipped delivery was not sent (its hook was disabled when the trigger came)."})
    hook = fields.Integer(allow_none=True, metadata={"description": "Index of its hook in the group's listing."})
    attempts = fields.Integer(metadata={"description": "Attempts made, in all series."})
    attempts_in_series = fields.Integer(metadata={"description": "Attempts since the last redelivery or replay."})
    next_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)
    _links = fields.Nested(SelfLinksSchema, data_key="_links", attribute="_links")


class ReceiverAnswerSchema(Schema):
    message = fields.String(allow_none=True)
    description = fields.String(allow_none=True)


class AttemptOutSchema(Schema):
    number = fields.Integer()
    started_at = fields.DateTime()
    duration_ms = fields.Integer()
    status_code = fields.Integer(allow_none=True)
    response = fields.Nested(ReceiverAnswerSchema, allow_none=True, metadata={
        "description": "The receiver's {message, description} when it answered with them."})
    response_excerpt = fields.String(allow_none=True, metadata={
        "description": "Otherwise the receiver's body, up to 64 KiB."})
    error_kind = fields.String(allow_none=True)
    error_detail = fields.String(allow_none=True)


class DeliveryLinksSchema(Schema):
    self = fields.Nested(LinkSchema)
    webhook = fields.Nested(LinkSchema)
    redeliver = fields.Nested(LinkSchema)


class DeliveryDetailSchema(DeliveryOutSchema):
    payload = fields.Raw(allow_none=True, metadata={
        "description": "The body sent (identical on every attempt); null before the first attempt."})
    request_headers = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True, metadata={
        "description": "The headers of the latest request, credentials redacted."})
    attempt_log = fields.List(fields.Nested(AttemptOutSchema))
    _links = fields.Nested(DeliveryLinksSchema, data_key="_links", attribute="_links")


class DeliveryEnvelopeSchema(SuccessSchema):
    data = fields.Nested(DeliveryDetailSchema)


class AcceptedDeliverySchema(SuccessSchema):
    data = fields.Nested(DeliveryOutSchema)


class EmbeddedDeliveriesSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliveryOutSchema))


class DeliveryPageSchema(PageSchema):
    _embedded = fields.Nested(EmbeddedDeliveriesSchema, data_key="_embedded", attribute="_embedded")


class ReplayResultSchema(Schema):
    queued = fields.Integer(metadata={"description": "Dead letters restarted by this call."})
    remaining = fields.Integer(metadata={"description": "Dead letters still matching (call again for more)."})


class ReplayEnvelopeSchema(SuccessSchema):
    data = fields.Nested(ReplayResultSchema)


class HookStateSchema(Schema):
    hook = fields.Integer()
    type = fields.String()
    endpoint = fields.String()
    disabled = fields.Boolean()
    waiting = fields.Integer(metadata={"description": "Deliveries owed to this hook, now due to go out."})


class HookEnvelopeSchema(SuccessSchema):
    data = fields.Nested(HookStateSchema)


# --- helpers -----------------------------------------------------------------------------

def _page(found, page, size):
    total, rows = found
    page_count = max(1, math.ceil(total / size))
    return {
        "_links": page_links(request.path, page, page_count, request.args.to_dict()),
        "_embedded": {"deliveries": [views.summary(row, url(f"/v1/deliveries/{row.id}")) for row in rows]},
        "page_count": page_count, "page_size": size, "total_items": total, "page": page,
    }


def _window(args):
    return {"hook_type": args.get("type"), "since": args.get("since"), "until": args.get("until")}


def _accepted(body):
    body.update(response_status=202, developer_message="Accepted", user_message="Accepted")
    return body, 202


# --- endpoints ---------------------------------------------------------------------------

@blp.route("/webhooks/<group_id>/deliveries", methods=["GET"])
@blp.arguments(DeliveryArgsSchema, location="query", error_status_code=400)
@blp.response(200, DeliveryPageSchema)
@blp.doc(security=SECURITY)
def list_deliveries(args, group_id):
    """The deliveries of a webhook group, newest first, filtered by status, type and creation time."""
    page, size = args["page"], args["page_size"]
    found = deliveries.deliveries(context(), current_caller(), size, (page - 1) * size, group_id=group_id,
                                  status=args.get("status"), **_window(args))
    return _page(found, page, size)


@blp.route("/deliveries/<delivery_id>", methods=["GET"])
@blp.response(200, DeliveryEnvelopeSchema)
@blp.doc(security=SECURITY)
def get_delivery(delivery_id):
    """One delivery: the payload sent, the request headers (credentials redacted), every attempt."""
    found = deliveries.delivery(context(), current_caller(), delivery_id)
    row = found.row
    hrefs = {"self": url(request.path), "webhook": url(f"/v1/webhooks/{row.group_id}"),
             "redeliver": url(f"/v1/deliveries/{row.id}/redeliver")}
    return success(views.detail(row, found.attempts, found.request_headers, hrefs))


@blp.route("/deliveries/<delivery_id>/redeliver", methods=["POST"])
@blp.response(202, AcceptedDeliverySchema)
@blp.doc(security=SECURITY)
def redeliver(delivery_id):
    """Send a dead, delivered or skipped delivery again: a new series of attempts, same payload and webhook-id."""
    row = deliveries.redeliver(context(), current_caller(), delivery_id)
    return _accepted(success(views.summary(row, url(f"/v1/deliveries/{delivery_id}"))))


@blp.route("/webhooks/<group_id>/hooks/<int:index>/enable", methods=["POST"])
@blp.response(200, HookEnvelopeSchema)
@blp.doc(security=SECURITY)
def enable_hook(group_id, index):
    """Enable a disabled hook (``index`` as in the group's listing); its waiting deliveries go out."""
    return success(deliveries.enable_hook(context(), current_caller(), group_id, index))


@blp.route("/team/<int:team_id>/dead-letters", methods=["GET"])
@blp.arguments(DeadLetterArgsSchema, location="query", error_status_code=400)
@blp.response(200, DeliveryPageSchema)
@blp.doc(security=SECURITY)
def list_dead_letters(args, team_id):
    """Dead deliveries of the team's organization (live groups), newest first."""
    page, size = args["page"], args["page_size"]
    found = deliveries.dead_letters(context(), current_caller(), size, (page - 1) * size, team_id=team_id,
                                    group_id=args.get("group_id"), **_window(args))
    return _page(found, page, size)


@blp.route("/team/<int:team_id>/dead-letters/replay", methods=["POST"])
@blp.arguments(ReplaySchema, error_status_code=400)
@blp.response(202, ReplayEnvelopeSchema)
@blp.doc(security=SECURITY)
def replay_dead_letters(body, team_id):
    """Send dead letters again (at most 10,000 a call), each in a new attempt series.

    They keep their place in their entity's order: for one entity and endpoint the oldest
    goes first, and later deliveries wait for it.
    """
    ids, remaining = deliveries.replay(context(), current_caller(), team_id=team_id, group_id=body.get("group_id"),
                                       **_window(body))
    return _accepted(success({"queued": len(ids), "remaining": remaining}))
