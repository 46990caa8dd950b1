"""Webhook groups between their API form and their rows: plain functions, no Flask."""

import json
import uuid

from doo_webhooks.crypto import MASK
from schemas.webhook_config import type_key


def to_rows(config, box, *, keep=None):
    """Split a validated configuration into group columns and hook rows.

    ``keep`` is the stored group when updating: a masked secret sent back keeps the stored one.
    """
    auth = config.get("authentication")
    client_secret_enc = None
    if auth:
        secret = auth["credentials"]["client_secret"]
        client_secret_enc = keep.client_secret_enc if (keep is not None and secret == MASK) else box.encrypt(secret)
        auth = dict(auth, credentials={k: v for k, v in auth["credentials"].items() if k != "client_secret"})
    signing = config.get("signing_secret")
    signing_enc = keep.signing_secret_enc if (keep is not None and signing == MASK) else box.encrypt(signing)
    group = {
        "name": config["name"],
        "description": config.get("description"),
        "event_id": config.get("event_id"),
        "event_guide_id": config.get("event_guide_id"),
        "authentication": json.dumps(auth) if auth else None,
        "client_secret_enc": client_secret_enc,
        "signing_secret_enc": signing_enc,
        "notify_url": config.get("notify_url"),
    }
    hook_rows = []
    for hook in config["hooks"]:
        origin = hook.get("origin") or {}
        hook_rows.append({
            "type": hook["type"], "type_key": type_key(hook), "method": hook["method"],
            "endpoint": hook["endpoint"], "origin_method": origin.get("method"),
            "origin_endpoint": origin.get("endpoint"), "origin_body": origin.get("body"),
        })
    return group, hook_rows


NUL_MESSAGE = "must not contain NUL characters (\\u0000)"


def nul_errors(value):
    """Field errors, nested like marshmallow's, for every string holding a NUL character.

    PostgreSQL text cannot hold NUL, so such a value would fail at the INSERT (a 500)
    instead of being refused as the invalid input it is.
    """
    if isinstance(value, str):
        return [NUL_MESSAGE] if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    errors = {}
    for key, item in items:
        found = nul_errors(item)
        if found:
            errors[key] = found
    return errors or None


def new_group_id():
    return str(uuid.uuid4())


def to_listing(group, hook_rows, self_href):
    """One group as doo lists it; secrets masked."""
    item = {"id": group.id, "name": group.name, "description": group.description}
    if group.event_id is not None:
        item["event_id"] = group.event_id
    if group.event_guide_id is not None:
        item["event_guide_id"] = group.event_guide_id
    item["hooks"] = [_hook(h) for h in hook_rows]
    if group.authentication:
        auth = json.loads(group.authentication)
        auth["credentials"] = dict(auth.get("credentials") or {}, client_secret=MASK)
        item["authentication"] = auth
    if group.signing_secret_enc:
        item["signing_secret"] = MASK
    if group.notify_url:
        item["notify_url"] = group.notify_url
    item["_links"] = {"self": {"href": self_href}}
    return item


def _hook(row):
    hook = {"type": row.type_key, "method": row.method, "endpoint": row.endpoint}
    if row.origin_endpoint:
        hook["origin"] = {"method": row.origin_method, "endpoint": row.origin_endpoint, "body": row.origin_body}
    if row.disabled_at is not None:
        hook["disabled"] = True
        hook["disabled_reason"] = row.disabled_reason
    return hook
