"""Webhook groups: create, list, read, update, delete (doo's configuration API)."""

import math

from flask import request
from flask_smorest import abort
from marshmallow import ValidationError

from app import groups
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
from app.errors import ApiBlueprint
from app import tenancy
from app.services import services
from schemas.webhook_config import WebhookConfigSchema
from schemas.webhook_config import refuse_masked
import storage.groups
from storage.db import utcnow
from workers import signing
from workers.ssrf import check_url_literal
from workers.payloads import trusted_origin

blp = ApiBlueprint("webhooks", __name__, description="Webhook groups (doo's webhook configurations).")


def _check_storable(config):
    errors = groups.nul_errors(config)
    if errors:
        abort(400, errors=errors)


def _check_endpoints(config):
    """Refuse what delivery would refuse anyway: receivers written as a blocked IP, and
    origins outside the platform's GraphQL API (DOO_WEBHOOKS_ORIGIN_URLS)."""
    settings = services().settings
    errors = {}
    for i, hook in enumerate(config["hooks"]):
        origin = (hook.get("origin") or {}).get("endpoint")
        for key, value in (("endpoint", hook["endpoint"]), ("origin", origin)):
            reason = value and check_url_literal(value, settings.allowed_networks)
            if reason:
                errors.setdefault("hooks", {}).setdefault(i, {})[key] = [reason]
        if origin and settings.origin_urls and not trusted_origin(origin, settings):
            errors.setdefault("hooks", {}).setdefault(i, {}).setdefault("origin", []).append(
                f"must be the platform's GraphQL API: a URL starting with {' or '.join(settings.origin_urls)}")
    auth_endpoint = (config.get("authentication") or {}).get("endpoint")
    reason = auth_endpoint and check_url_literal(auth_endpoint, settings.allowed_networks)
    if reason:
        errors["authentication"] = {"endpoint": [reason]}
    reason = config.get("notify_url") and check_url_literal(config["notify_url"], settings.allowed_networks)
    if reason:
        errors["notify_url"] = [reason]
    if errors:
        abort(400, errors=errors)


@blp.route("/team/<int:team_id>/webhooks", methods=["POST"])
@blp.arguments(WebhookConfigSchema, error_status_code=400)
@blp.response(200, IdEnvelopeSchema)
@blp.doc(security=SECURITY)
def create_group(config, team_id):
    """Create a webhook group for the team's organization."""
    caller = current_caller()
    membership = caller.team(team_id, write=True)
    try:
        refuse_masked(config)
    except ValidationError as exc:
        abort(400, errors=exc.messages)
    _check_storable(config)
    _check_endpoints(config)
    svc = services()
    group, hook_rows, generated = groups.to_rows(config, svc.box)
    now = utcnow()
    group.update(id=groups.new_group_id(), organization_id=membership.organization_id, team_id=team_id,
                 created_at=now, updated_at=now)
    with svc.engine.begin() as conn:
        storage.groups.insert_group(conn, group, hook_rows)
    return _with_secret(success(group["id"]), generated)


def _with_secret(answer, generated):
    """A generated signing secret is shown in the answer that made it, and never again."""
    if generated:
        answer["signing_secret"] = generated
        answer["user_message"] = ("Store signing_secret now: it is shown only in this answer "
                                  "(listings show it masked).")
    return answer


@blp.route("/team/<int:team_id>/webhooks", methods=["GET"])
@blp.arguments(PageArgsSchema, location="query", error_status_code=400)
@blp.response(200, WebhookPageSchema)
@blp.doc(security=SECURITY)
def list_groups(args, team_id):
    """List the webhook groups of the team's organization, 25 a page."""
    caller = current_caller()
    membership = caller.team(team_id)
    page, size = args["page"], args["page_size"]
    with services().engine.begin() as conn:
        total = storage.groups.count_groups(conn, membership.organization_id)
        rows, hooks = storage.groups.list_groups(conn, membership.organization_id, size, (page - 1) * size)
    page_count = max(1, math.ceil(total / size))
    items = [groups.to_listing(row, hooks.get(row.id, []), url(f"/v1/webhooks/{row.id}")) for row in rows]
    return {
        "_links": page_links(request.path, page, page_count),
        "_embedded": {"webhooks": items},
        "page_count": page_count, "page_size": size, "total_items": total, "page": page,
    }


@blp.route("/webhooks/<group_id>", methods=["GET"])
@blp.response(200, GroupEnvelopeSchema)
@blp.doc(security=SECURITY)
def get_group(group_id):
    """One webhook group (secrets masked)."""
    caller = current_caller()
    with services().engine.begin() as conn:
        group, hooks = tenancy.group(conn, caller, group_id)
    return success(groups.to_listing(group, hooks, url(request.path)))


@blp.route("/webhooks/<group_id>", methods=["PUT"])
@blp.arguments(WebhookConfigSchema, error_status_code=400)
@blp.response(200, IdEnvelopeSchema)
@blp.doc(security=SECURITY)
def update_group(config, group_id):
    """Replace a group's configuration; a masked secret sent back keeps the stored one."""
    caller = current_caller()
    _check_storable(config)
    _check_endpoints(config)
    svc = services()
    with svc.engine.begin() as conn:
        stored, _ = tenancy.group(conn, caller, group_id, write=True)
        if config.get("signing_secret") == "********" and stored.signing_secret_enc is None:
            abort(400, errors={"signing_secret": ["there is no stored signing secret to keep"]})
        auth = config.get("authentication")
        if auth and auth["credentials"]["client_secret"] == "********" and stored.client_secret_enc is None:
            abort(400, errors={"authentication": {"credentials": {
                "client_secret": ["there is no stored client secret to keep; send the real one"]}}})
        now = utcnow()
        fields, hook_rows, generated = groups.to_rows(config, svc.box, keep=stored, now=now,
                                                      grace=svc.settings.signing_grace)
        storage.groups.update_group(conn, group_id, fields, hook_rows, now)
    return _with_secret(success(group_id), generated)


@blp.route("/webhooks/<group_id>/secret/rotate", methods=["POST"])
@blp.arguments(RotateArgsSchema, location="json", error_status_code=400, required=False)
@blp.response(200, RotatedSecretSchema)
@blp.doc(security=SECURITY)
def rotate_secret(args, group_id):
    """Generate a new signing secret, returned once in this answer. The previous one keeps
    signing beside it (two signatures in webhook-signature) for ``grace_seconds``
    (default DOO_WEBHOOKS_SIGNING_GRACE; 0 stops it at once, e.g. after a leak)."""
    caller = current_caller()
    svc = services()
    grace = args.get("grace_seconds")
    grace = svc.settings.signing_grace if grace is None else grace
    secret = signing.new_secret()
    with svc.engine.begin() as conn:
        stored, _ = tenancy.group(conn, caller, group_id, write=True)
        now = utcnow()
        columns = groups.rotated(stored, svc.box.encrypt(secret), now, grace)
        storage.groups.rotate_signing_secret(conn, group_id, columns["signing_secret_enc"],
                                             columns["previous_signing_until"], now)
    answer = success({"signing_secret": secret})
    answer["data"]["previous_signing_secret_expires_at"] = (
        groups.iso(columns["previous_signing_until"]) if columns["previous_signing_until"] else None)
    answer["user_message"] = "Store signing_secret now: it is shown only in this answer."
    return answer


@blp.route("/webhooks/<group_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=SECURITY)
def delete_group(group_id):
    """Delete a group. 204 whether or not it existed or was yours (doo: no brute-force oracle)."""
    # doo's own DELETE example sends only x-api-key; a Bearer token, when sent, must be valid.
    caller = current_caller(bearer_required=False)
    if "\x00" in group_id:  # cannot exist, and PostgreSQL refuses it in a query
        return "", 204
    with services().engine.begin() as conn:
        storage.groups.delete_group(conn, group_id, caller.organization_ids(write=True), utcnow())
    return "", 204
