"""Webhook groups, the use cases of doo's configuration API and the dashboard's group pages:
create, a team's page of groups, one group, replace, rotate the signing secret, delete; the
overview with each hook's health, a group's timeline.

Each use case validates what delivery would refuse anyway (NUL characters, receivers written
as a blocked address, origins outside the platform's GraphQL API), opens its own transaction,
applies tenancy (services.tenancy) and answers with secrets masked. A generated signing
secret is returned by the use case that made it, once: it is never readable again."""

import dataclasses
import datetime

from marshmallow import ValidationError

from ground.crypto import MASK
from schemas.webhook_config import refuse_masked
from services import group_rows
from services import tenancy
from services.errors import Forbidden
from services.errors import Invalid
from services.errors import NotFound
from storage import dashboard
from storage import groups
from storage import hook_stats
from storage.db import utcnow
from workers import signing
from workers.payloads import trusted_origin
from workers.ssrf import check_url_literal

#: the overview's health: attempts of each hook over this window
HEALTH_WINDOW = datetime.timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class Saved:
    """A group created or replaced; ``signing_secret`` is the one generated for it, or None."""
    id: str
    signing_secret: str = None


@dataclasses.dataclass(frozen=True)
class GroupPage:
    total: int
    items: list  # group_rows.to_listing of each group, secrets masked


@dataclasses.dataclass(frozen=True)
class Rotated:
    signing_secret: str
    previous_signing_secret_expires_at: str = None  # None: the previous secret stopped at once


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """What the dashboard shows of a group: never its secrets, not even encrypted."""
    id: str
    organization_id: int
    name: str
    description: str = None


@dataclasses.dataclass(frozen=True)
class Overview:
    groups: list     # GroupSummary, by organization and name
    hooks: dict      # group id -> its live hook rows, in position order
    health: dict     # hook id -> its attempts over HEALTH_WINDOW (hook_stats.recent)
    waiting: dict    # disabled hook id -> deliveries it still owes
    truncated: bool  # more groups exist than the limit let through


@dataclasses.dataclass(frozen=True)
class Timeline:
    group: GroupSummary
    rows: list  # (hour, status, count) of the group's deliveries created since the start


# --- the configuration API ----------------------------------------------------------------

def create(ctx, caller, team_id, config):
    """A new group for ``team_id``'s organization from a validated configuration (schemas.webhook_config)."""
    membership = caller.team(team_id, write=True)
    try:
        refuse_masked(config)
    except ValidationError as exc:
        raise Invalid(exc.messages) from None
    _check(config, ctx.settings)
    group, hook_rows, generated = group_rows.to_rows(config, ctx.box)
    now = utcnow()
    group.update(id=group_rows.new_group_id(), organization_id=membership.organization_id, team_id=team_id,
                 created_at=now, updated_at=now)
    with ctx.engine.begin() as conn:
        groups.insert_group(conn, group, hook_rows)
    return Saved(group["id"], generated)


def page(ctx, caller, team_id, number, size):
    """Page ``number`` (from 1) of ``size`` groups of ``team_id``'s organization, oldest first."""
    membership = caller.team(team_id)
    with ctx.engine.begin() as conn:
        total = groups.count_groups(conn, membership.organization_id)
        rows, hooks = groups.list_groups(conn, membership.organization_id, size, (number - 1) * size)
    return GroupPage(total, [group_rows.to_listing(row, hooks.get(row.id, [])) for row in rows])


def get(ctx, caller, group_id):
    """One group as doo lists it, secrets masked."""
    with ctx.engine.begin() as conn:
        group, hooks = tenancy.group(conn, caller, group_id)
    return group_rows.to_listing(group, hooks)


def update(ctx, caller, group_id, config):
    """Replace a group's configuration. A masked secret sent back keeps the stored one; a new
    signing secret is a rotation (the stored one signs beside it for the signing grace)."""
    _check(config, ctx.settings)
    with ctx.engine.begin() as conn:
        stored, _ = tenancy.group(conn, caller, group_id, write=True)
        _check_kept(config, stored)
        now = utcnow()
        fields, hook_rows, generated = group_rows.to_rows(config, ctx.box, keep=stored, now=now,
                                                          grace=ctx.settings.signing_grace)
        groups.update_group(conn, group_id, fields, hook_rows, now)
    return Saved(group_id, generated)


def rotate_secret(ctx, caller, group_id, grace=None):
    """A new signing secret, returned once; the previous one keeps signing beside it for
    ``grace`` seconds (None: the signing grace of the settings; 0: it stops at once)."""
    grace = ctx.settings.signing_grace if grace is None else grace
    secret = signing.new_secret()
    with ctx.engine.begin() as conn:
        stored, _ = tenancy.group(conn, caller, group_id, write=True)
        now = utcnow()
        columns = group_rows.rotated(stored, ctx.box.encrypt(secret), now, grace)
        groups.rotate_signing_secret(conn, group_id, columns["signing_secret_enc"],
                                     columns["previous_signing_until"], now)
    until = columns["previous_signing_until"]
    return Rotated(secret, group_rows.iso(until) if until else None)


def delete(ctx, caller, group_id):
    """Delete a group and cancel what it still owed. Says nothing either way: a missing group,
    another organization's and one the caller may only read are left alone silently, so the
    answer is no oracle of which ids exist (doo's rule)."""
    with ctx.engine.begin() as conn:
        try:
            group, _ = tenancy.group(conn, caller, group_id, write=True)
        except (NotFound, Forbidden):
            return
        groups.delete_group(conn, group_id, [group.organization_id], utcnow())


# --- the dashboard ------------------------------------------------------------------------

def overview(ctx, caller, now, limit):
    """Up to ``limit`` live groups of the caller's organizations, each hook with its health."""
    with ctx.engine.begin() as conn:
        rows, hooks = dashboard.groups_of(conn, caller.organization_ids(), limit)
        health = hook_stats.recent(conn, [row.id for row in rows], now - HEALTH_WINDOW)
        disabled = [hook.id for group_hooks in hooks.values() for hook in group_hooks if hook.disabled_at is not None]
        waiting = dashboard.open_counts(conn, disabled)
    return Overview([_summary(row) for row in rows], hooks, health, waiting, truncated=len(rows) == limit)


def timeline(ctx, caller, group_id, start):
    """The group's deliveries by the hour they were created, from ``start`` on."""
    with ctx.engine.begin() as conn:
        group, _ = tenancy.group(conn, caller, group_id)
        rows = dashboard.timeline(conn, group_id, start)
    return Timeline(_summary(group), rows)


def _summary(row):
    return GroupSummary(row.id, row.organization_id, row.name, row.description)


# --- validation ---------------------------------------------------------------------------

def _check(config, settings):
    """Refuse what storing or delivering would refuse anyway: NUL characters (PostgreSQL text
    cannot hold them), then blocked addresses and untrusted origins (_endpoint_errors)."""
    errors = group_rows.nul_errors(config) or _endpoint_errors(config, settings)
    if errors:
        raise Invalid(errors)


def _endpoint_errors(config, settings):
    """Receivers written as a blocked IP, and origins outside the platform's GraphQL API
    (DOO_WEBHOOKS_ORIGIN_URLS): field errors, nested like marshmallow's."""
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
    return errors


def _check_kept(config, stored):
    """A masked secret sent back keeps the stored one: there must be one to keep."""
    if config.get("signing_secret") == MASK and stored.signing_secret_enc is None:
        raise Invalid({"signing_secret": ["there is no stored signing secret to keep"]})
    auth = config.get("authentication")
    if auth and auth["credentials"]["client_secret"] == MASK and stored.client_secret_enc is None:
        raise Invalid({"authentication": {"credentials": {
            "client_secret": ["there is no stored client secret to keep; send the real one"]}}})
