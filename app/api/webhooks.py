"""Webhook groups: create, list, read, update, delete (doo's configuration API).

Each view parses the request, calls one use case of services.webhook_groups and writes doo's
envelope around its answer; the use case validates, applies tenancy and masks secrets."""

import math

from flask import request

from app.api.envelopes import SECURITY
from app.api.envelopes import GroupEnvelopeSchema
from app.api.envelopes import IdEnvelopeSchema
from app.api.envelopes import RotateArgsSchema
from app.api.envelopes import RotatedSecretSchema
from app.api.envelopes import PageArgsSchema
from app.api.envelopes import WebhookPageSchema
from app.api.envelopes import page_links
from app.api.envelopes import success
from app.api.envelopes import url
from app.auth import current_caller
from app.context import context
from app.errors import ApiBlueprint
from schemas.webhook_config import WebhookConfigSchema
from services import webhook_groups

blp = ApiBlueprint("webhooks", __name__, description="Webhook groups (doo's webhook configurations).")


def _with_links(item):
    return dict(item, _links={"self": {"href": url(f"/v1/webhooks/{item['id']}")}})


def _with_secret(answer, generated):
    """A generated signing secret is shown in the answer that made it, and never again."""
    if generated:
        answer["signing_secret"] = generated
        answer["user_message"] = ("Store signing_secret now: it is shown only in this answer "
                                  "(listings show it masked).")
    return answer


@blp.route("/team/<int:team_id>/webhooks", methods=["POST"])
@blp.arguments(WebhookConfigSchema, error_status_code=400)
@blp.response(200, IdEnvelopeSchema)
@blp.doc(security=SECURITY)
def create_group(config, team_id):
    """Create a webhook group for the team's organization."""
    saved = webhook_groups.create(context(), current_caller(), team_id, config)
    return _with_secret(success(saved.id), saved.signing_secret)


@blp.route("/team/<int:team_id>/webhooks", methods=["GET"])
@blp.arguments(PageArgsSchema, location="query", error_status_code=400)
@blp.response(200, WebhookPageSchema)
@blp.doc(security=SECURITY)
def list_groups(args, team_id):
    """List the webhook groups of the team's organization, 25 a page."""
    page, size = args["page"], args["page_size"]
    found = webhook_groups.page(context(), current_caller(), team_id, page, size)
    page_count = max(1, math.ceil(found.total / size))
    return {
        "_links": page_links(request.path, page, page_count),
        "_embedded": {"webhooks": [_with_links(item) for item in found.items]},
        "page_count": page_count, "page_size": size, "total_items": found.total, "page": page,
    }


@blp.route("/webhooks/<group_id>", methods=["GET"])
@blp.response(200, GroupEnvelopeSchema)
@blp.doc(security=SECURITY)
def get_group(group_id):
    """One webhook group (secrets masked)."""
    item = webhook_groups.get(context(), current_caller(), group_id)
    return success(dict(item, _links={"self": {"href": url(request.path)}}))


@blp.route("/webhooks/<group_id>", methods=["PUT"])
@blp.arguments(WebhookConfigSchema, error_status_code=400)
@blp.response(200, IdEnvelopeSchema)
@blp.doc(security=SECURITY)
def update_group(config, group_id):
    """Replace a group's configuration; a masked secret sent back keeps the stored one."""
    saved = webhook_groups.update(context(), current_caller(), group_id, config)
    return _with_secret(success(saved.id), saved.signing_secret)


@blp.route("/webhooks/<group_id>/secret/rotate", methods=["POST"])
@blp.arguments(RotateArgsSchema, location="json", error_status_code=400, required=False)
@blp.response(200, RotatedSecretSchema)
@blp.doc(security=SECURITY)
def rotate_secret(args, group_id):
    """Generate a new signing secret, returned once in this answer. The previous one keeps
    signing beside it (two signatures in webhook-signature) for ``grace_seconds``
    (default DOO_WEBHOOKS_SIGNING_GRACE; 0 stops it at once, e.g. after a leak)."""
    rotated = webhook_groups.rotate_secret(context(), current_caller(), group_id, args.get("grace_seconds"))
    answer = success({"signing_secret": rotated.signing_secret,
                      "previous_signing_secret_expires_at": rotated.previous_signing_secret_expires_at})
    answer["user_message"] = "Store signing_secret now: it is shown only in this answer."
    return answer


@blp.route("/webhooks/<group_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=SECURITY)
def delete_group(group_id):
    """Delete a group. 204 whether or not it existed or was yours (doo: no brute-force oracle)."""
    # doo's own DELETE example sends only x-api-key; a Bearer token, when sent, must be valid.
    webhook_groups.delete(context(), current_caller(bearer_required=False), group_id)
    return "", 204
