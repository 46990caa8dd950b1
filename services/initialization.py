"""Webhook initialization (doo: ``POST /v1/webhooks/init/<resource>``): starting one for a
caller, and how far the caller's have come. workers/initialization.py plans and paces the
deliveries; this module decides what the caller may re-send."""

import dataclasses

from schemas.types import RESOURCES
from schemas.types import TYPES
from services import tenancy
from services.errors import Forbidden
from services.errors import Invalid
from services.errors import NotFound
from storage import dashboard
from storage.db import utcnow
from storage.lifecycle import FINAL
from storage.lifecycle import Status
from workers import initialization

DEFAULT_RATE = initialization.DEFAULT_RATE
MAX_RATE = initialization.MAX_RATE

#: doo: the id that scopes each resource's initialization
REQUIRED = {"events": "organization_id", "orders": "event_id", "attendees": "event_id"}


def _organizations(caller, organization_id):
    """The organizations to initialize: the one named, else every one the caller may write to
    (None: every organization, for the OPERATOR)."""
    if organization_id is not None:
        visible, writable = caller.organization_ids(), caller.organization_ids(write=True)
        # Forbidden whether the organization exists or not: nothing learnt about others
        if visible is not None and organization_id not in visible:
            raise Forbidden(f"You are not a member of organization {organization_id}.")
        if writable is not None and organization_id not in writable:
            raise Forbidden(tenancy.READ_ONLY)
        return [organization_id]
    writable = caller.organization_ids(write=True)
    if writable is not None and not writable:
        raise Forbidden("Your roles may only read.")
    return writable


def _hook_types(kind, requested):
    if not requested:
        return None
    wrong = {i: [f"{t} does not carry {kind}s"] for i, t in enumerate(requested) if TYPES[t] != kind}
    if wrong:
        raise Invalid({"webhook_type": wrong})
    return sorted(set(requested))


def start(ctx, caller, resource, request):
    """Start an initialization of ``resource`` (events, orders, attendees) for the caller.

    ``request`` holds doo's fields, times as naive UTC and types normalized (as the API's
    InitSchema loads them): organization_id, event_id, last_updated_after,
    last_updated_before, webhook_type, webhook_configuration_id, max_rate_per_min. Returns
    {items_processed, deliveries_queued, last_due_at (naive UTC, None when nothing queued)}.
    """
    if resource not in RESOURCES:
        raise NotFound(f"Initialization of {resource!r} is not offered; resources: {', '.join(RESOURCES)}.")
    kind = RESOURCES[resource]
    required = REQUIRED[resource]
    if request.get(required) is None:
        raise Invalid({required: [f"Missing data for required field (initialization of {resource})."]})
    organization_ids = _organizations(caller, request.get("organization_id"))
    hook_types = _hook_types(kind, request.get("webhook_type"))
    group_id = request.get("webhook_configuration_id")
    with ctx.engine.begin() as conn:
        if group_id is not None:
            tenancy.group(conn, caller, group_id, organization_ids=organization_ids)
        items, rows = initialization.initialize(
            conn, kind, utcnow(), hook_types=hook_types, rate=request.get("max_rate_per_min") or DEFAULT_RATE,
            organization_ids=organization_ids, event_id=request.get("event_id"),
            updated_after=request.get("last_updated_after"), updated_before=request.get("last_updated_before"),
            group_id=group_id)
    return {"items_processed": items, "deliveries_queued": len(rows),
            "last_due_at": rows[-1]["next_attempt_at"] if rows else None}


@dataclasses.dataclass(frozen=True)
class Progress:
    """Per organization of the caller's: initialization deliveries in total, done, dead, still
    open, and when the last open one is due; and the caller's live groups by id (at most
    ``group_limit``), which an initialization may be narrowed to."""
    organizations: dict
    groups: dict


def progress(ctx, caller, group_limit):
    """How far the caller's initializations have come (a Progress)."""
    organization_ids = caller.organization_ids()
    with ctx.engine.begin() as conn:
        rows = dashboard.init_progress(conn, organization_ids)
        groups, _ = dashboard.groups_of(conn, organization_ids, group_limit)
    return Progress(_by_organization(rows), {group.id: group for group in groups})


def _by_organization(rows):
    by_org = {}
    for row in rows:
        entry = by_org.setdefault(row.organization_id, {"total": 0, "done": 0, "open": 0, "dead": 0,
                                                        "last_due_at": None})
        entry["total"] += row.n
        if row.status == Status.DEAD:
            entry["dead"] += row.n
        elif row.status in FINAL:
            entry["done"] += row.n
        else:
            entry["open"] += row.n
            if row.last_due_at and (entry["last_due_at"] is None or row.last_due_at > entry["last_due_at"]):
                entry["last_due_at"] = row.last_due_at
    return by_org
