"""Webhook groups between their API form (doo's configuration and listing) and their rows:
pure functions, no transaction, no Flask. The use cases of services.webhook_groups apply them."""

import datetime
import json
import uuid

from ground.crypto import MASK
from schemas.webhook_config import type_key
from storage.db import utcnow
from workers import signing


def to_rows(config, box, *, keep=None, now=None, grace=0):
    """Split a validated configuration into group columns, hook rows, and the signing secret
    generated for it (None unless the configuration asked for one: it is shown only once).

    ``keep`` is the stored group when updating: a masked secret sent back keeps the stored one,
    and a new signing secret is a rotation, the stored one signing beside it for ``grace``
    seconds after ``now``.
    """
    auth = config.get("authentication")
    client_secret_enc = None
    if auth:
        secret = auth["credentials"]["client_secret"]
        client_secret_enc = keep.client_secret_enc if (keep is not None and secret == MASK) else box.encrypt(secret)
        auth = dict(auth, credentials={k: v for k, v in auth["credentials"].items() if k != "client_secret"})
    group = {
        "name": config["name"],
        "description": config.get("description"),
        "event_id": config.get("event_id"),
        "event_guide_id": config.get("event_guide_id"),
        "authentication": json.dumps(auth) if auth else None,
        "client_secret_enc": client_secret_enc,
        "notify_url": config.get("notify_url"),
        "max_per_second": config.get("max_per_second"),
    }
    generated = signing.new_secret() if config.get("generate_signing_secret") else None
    group.update(_signing_columns(generated or config.get("signing_secret"), box, keep, now, grace))
    hook_rows = []
    for hook in config["hooks"]:
        origin = hook.get("origin") or {}
        hook_rows.append({
            "type": hook["type"], "type_key": type_key(hook), "method": hook["method"],
            "endpoint": hook["endpoint"], "origin_method": origin.get("method"),
            "origin_endpoint": origin.get("endpoint"), "origin_body": origin.get("body"),
            "max_per_second": hook.get("max_per_second"),
        })
    return group, hook_rows, generated


def _signing_columns(signing, box, keep, now, grace):
    """The signing secret columns for ``signing`` (plain, masked or None)."""
    if keep is None:
        return {"signing_secret_enc": box.encrypt(signing)}
    if signing == MASK:
        return {}
    if signing is None:  # no signing any more: nothing of the old secret stays
        return {"signing_secret_enc": None, "previous_signing_secret_enc": None, "previous_signing_until": None}
    if keep.signing_secret_enc and box.decrypt(keep.signing_secret_enc) == signing:
        return {}
    return rotated(keep, box.encrypt(signing), now, grace)


def rotated(stored, new_enc, now, grace):
    """Columns that make ``new_enc`` the signing secret; the stored one (if any) signs beside it
    until ``now + grace`` (grace 0: it stops at once, e.g. after a leak)."""
    keeps_signing = bool(stored.signing_secret_enc) and grace > 0
    return {
        "signing_secret_enc": new_enc,
        "previous_signing_secret_enc": stored.signing_secret_enc if keeps_signing else None,
        "previous_signing_until": now + datetime.timedelta(seconds=grace) if keeps_signing else None,
    }


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


def to_listing(group, hook_rows):
    """One group as doo lists it, secrets masked; the face adds its ``_links``."""
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
    if group.previous_signing_secret_enc and group.previous_signing_until and group.previous_signing_until > utcnow():
        item["previous_signing_secret_expires_at"] = iso(group.previous_signing_until)
    if group.max_per_second is not None:
        item["max_per_second"] = group.max_per_second
    if group.notify_url:
        item["notify_url"] = group.notify_url
    return item


def _hook(row):
    hook = {"type": row.type_key, "method": row.method, "endpoint": row.endpoint}
    if row.origin_endpoint:
        hook["origin"] = {"method": row.origin_method, "endpoint": row.origin_endpoint, "body": row.origin_body}
    if row.disabled_at is not None:
        hook["disabled"] = True
        hook["disabled_reason"] = row.disabled_reason
    if row.max_per_second is not None:
        hook["max_per_second"] = row.max_per_second
    if row.paused_until is not None and row.paused_until > utcnow():
        hook["paused_until"] = iso(row.paused_until)
    return hook


def iso(moment):
    """UTC, to the second, as the API writes moments."""
    return moment.replace(microsecond=0).isoformat() + "Z"
