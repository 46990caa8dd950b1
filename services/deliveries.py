"""The delivery log and putting it right: deliveries listed and shown with their attempts,
redelivery, dead letters and their replay, enabling a disabled hook.

Reads return the ledger's rows (delivery_log's listing and delivery_view rows); each face
shapes them (app/deliveries.py) with its own links. Changes nudge the workers' send loops
after the commit through ``ctx.publisher`` when there is one (the command line has none: it
nudges through the broker itself).
"""

import dataclasses
import logging

from services import tenancy
from services.errors import Conflict
from services.errors import Forbidden
from services.errors import NotFound
from storage import dashboard as keyset
from storage import delivery_log
from storage import hook_health
from storage.db import utcnow
from storage.lifecycle import Status
from workers import notifications
from workers import operations

log = logging.getLogger(__name__)

REPLAY_LIMIT = operations.REPLAY_LIMIT
ONLY_READ = "Your roles may only read."


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One delivery, every attempt, and the (redacted) headers of the latest request as JSON text."""
    row: object
    attempts: list
    request_headers: str | None


@dataclasses.dataclass(frozen=True)
class Browse:
    """A keyset page of the delivery log: rows newest first, and the caller's live groups by id
    (at most ``group_limit``), which name the rows' groups."""
    rows: list
    groups: dict


def _scope(caller, team_id=None, organization_id=None, write=False):
    """(the organizations a listing or replay covers, None: every one; those a group filter
    must belong to, None: the caller's own). A team is the caller's membership of it."""
    if team_id is not None:
        team = [caller.team(team_id, write=write).organization_id]
        return team, team
    visible = caller.organization_ids(write=write)
    if organization_id is None:
        return visible, None
    named = [organization_id] if visible is None or organization_id in visible else []
    return named, named


def _nudge(ctx, ids):
    """Wake the workers' send loops for restarted deliveries, so they go out at once."""
    if not ids or ctx.publisher is None:
        return
    try:
        ctx.publisher.deliveries(ids)
    except Exception as exc:  # the rows are due in the ledger: the workers' next poll claims them
        log.warning("could not nudge the workers for %d restarted delivery(ies): %s", len(ids), exc)


def _listing(ctx, caller, limit, offset, team_id, organization_id, group_id, **filters):
    organizations, group_scope = _scope(caller, team_id, organization_id)
    with ctx.engine.begin() as conn:
        if group_id is not None:
            tenancy.group(conn, caller, group_id, organization_ids=group_scope)
        return delivery_log.list_deliveries(conn, limit, offset, organization_ids=organizations,
                                            group_id=group_id, **filters)


def deliveries(ctx, caller, limit, offset, *, organization_id=None, group_id=None, status=None, hook_type=None,
               since=None, until=None):
    """(total, rows): the deliveries the caller sees (of one organization when named), newest
    first. A group filter names a group the caller sees (NotFound otherwise)."""
    return _listing(ctx, caller, limit, offset, None, organization_id, group_id, status=status,
                    hook_type=hook_type, since=since, until=until)


def dead_letters(ctx, caller, limit, offset, *, team_id=None, organization_id=None, group_id=None, hook_type=None,
                 since=None, until=None):
    """(total, rows): the dead deliveries of live groups the caller sees (a team's, or one
    organization's, when named), newest first; a group filter as in ``deliveries``."""
    return _listing(ctx, caller, limit, offset, team_id, organization_id, group_id, status=Status.DEAD,
                    live_groups=True, hook_type=hook_type, since=since, until=until)


def browse(ctx, caller, limit, group_limit, *, older_than=None, newer_than=None, **filters):
    """A keyset page of the caller's deliveries (storage.dashboard.delivery_page: ``filters``
    and positions); a group filter names a group the caller sees (NotFound otherwise)."""
    organizations = caller.organization_ids()
    with ctx.engine.begin() as conn:
        if filters.get("group_id"):
            tenancy.group(conn, caller, filters["group_id"])
        rows = keyset.delivery_page(conn, organizations, limit, older_than=older_than, newer_than=newer_than,
                                    **filters)
        groups, _ = keyset.groups_of(conn, organizations, group_limit)
    return Browse(rows, {group.id: group for group in groups})


def delivery(ctx, caller, delivery_id):
    """One of the caller's deliveries with its attempts and latest request headers."""
    with ctx.engine.begin() as conn:
        row = tenancy.delivery(conn, caller, delivery_id)
        return Delivery(row, delivery_log.attempts_of(conn, delivery_id),
                        delivery_log.latest_request_headers(conn, delivery_id))


def _redeliver(conn, caller, delivery_id, now):
    row = tenancy.delivery(conn, caller, delivery_id, write=True)
    try:
        operations.redeliver(conn, row, now)
    except operations.Refused as exc:
        raise Conflict(str(exc)) from None


def redeliver(ctx, caller, delivery_id):
    """Send a dead, delivered or skipped delivery again (a new attempt series; Conflict in
    any other state); returns its row as it is now."""
    with ctx.engine.begin() as conn:
        _redeliver(conn, caller, delivery_id, utcnow())
        row = delivery_log.delivery_view(conn, delivery_id)
    _nudge(ctx, [delivery_id])
    return row


def replay(ctx, caller, *, team_id=None, organization_id=None, group_id=None, limit=REPLAY_LIMIT,
           hook_type=None, since=None, until=None):
    """Restart up to ``limit`` dead letters the caller may change (a team's, one
    organization's, or all), oldest first; returns (ids restarted, dead letters still matching)."""
    organizations, group_scope = _scope(caller, team_id, organization_id, write=True)
    if organizations == []:
        raise Forbidden(ONLY_READ)
    with ctx.engine.begin() as conn:
        if group_id is not None:
            tenancy.group(conn, caller, group_id, write=True, organization_ids=group_scope)
        ids, remaining = operations.replay(conn, utcnow(), limit=limit, organization_ids=organizations,
                                           group_id=group_id, hook_type=hook_type, since=since, until=until)
    _nudge(ctx, ids)
    return ids, remaining


def replay_chosen(ctx, caller, delivery_ids):
    """Redeliver the chosen dead letters, oldest first, each with redeliver's checks; returns
    (ids restarted, how many of the chosen were not). NotFound when the first is another
    organization's (or missing) and none is a visible dead letter; Conflict when none is dead."""
    if caller.organization_ids(write=True) == []:
        raise Forbidden(ONLY_READ)
    now = utcnow()
    restarted = []
    with ctx.engine.begin() as conn:
        visible = keyset.visible_dead(conn, caller.organization_ids(), delivery_ids)
        if not visible:
            tenancy.delivery(conn, caller, delivery_ids[0])
            raise Conflict("None of the chosen deliveries is a dead letter (any more).")
        refused = len(set(delivery_ids)) - len(visible)
        for delivery_id in visible:
            try:
                _redeliver(conn, caller, delivery_id, now)
                restarted.append(delivery_id)
            except Conflict:
                refused += 1
    _nudge(ctx, restarted)
    return restarted, refused


def enable_hook(ctx, caller, group_id, index):
    """Enable hook ``index`` (as in the group's listing) of one of the caller's groups: the
    deliveries waiting for it fall due, the group's notify_url hears it recovered. Returns
    the hook's state; ``waiting`` is 0 when it was not disabled."""
    now = utcnow()
    with ctx.engine.begin() as conn:
        _, hooks = tenancy.group(conn, caller, group_id, write=True)
        if index >= len(hooks):
            raise NotFound(f"No hook {index} in webhook group {group_id}.")
        hook = hooks[index]
        waiting = hook_health.enable_hook(conn, hook.id, now)
        if waiting is not None:
            notifications.recovered(conn, hook.id, now, waiting)
    return {"hook": index, "type": hook.type_key, "endpoint": hook.endpoint, "disabled": False,
            "waiting": waiting or 0}
