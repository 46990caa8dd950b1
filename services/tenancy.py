"""Tenancy, the one rule every face applies: another organization's object answers exactly
like a missing one (NotFound, no hint that it exists), and a role that may only read is
Forbidden to change one.

A ``Caller`` is an organizer acting through their memberships (the API, the dashboard);
``OPERATOR`` is whoever runs the command line on the service's own machine, and sees every
organization (``organization_ids()`` is None: no filter)."""

import dataclasses

from services.errors import Forbidden
from services.errors import NotFound
from storage import delivery_log
from storage import groups
from storage import triggers

ROLES = ("team_admin", "team_member", "team_viewer")
WRITE_ROLES = ("team_admin", "team_member")
READ_ONLY = "Your role in this organization may only read."


@dataclasses.dataclass(frozen=True)
class Caller:
    organizer_id: int
    credential_id: int
    memberships: tuple

    def organization_ids(self, write=False):
        return sorted({m.organization_id for m in self.memberships if not write or m.role in WRITE_ROLES})

    def team(self, team_id, write=False):
        """The caller's membership of ``team_id``; Forbidden when there is none (or it may not write)."""
        for membership in self.memberships:
            if membership.team_id == team_id:
                if write and membership.role not in WRITE_ROLES:
                    raise Forbidden(f"Your role {membership.role!r} in team {team_id} may only read.")
                return membership
        raise Forbidden(f"You are not a member of team {team_id}.")


class _Operator:
    """The command line's caller: every organization, read and write."""

    def organization_ids(self, write=False):
        return None

    def __repr__(self):
        return "OPERATOR"


OPERATOR = _Operator()


def _owned(found, organization_id, caller, write, missing, organization_ids=None):
    """``found`` if ``caller`` may see it (within ``organization_ids`` when given), else refuse."""
    visible = caller.organization_ids() if organization_ids is None else organization_ids
    if found is None or (visible is not None and organization_id not in visible):
        raise NotFound(missing)
    writable = caller.organization_ids(write=True)
    if write and writable is not None and organization_id not in writable:
        raise Forbidden(READ_ONLY)
    return found


def _exists(key):
    """An id with a NUL cannot exist (and PostgreSQL refuses it in a query)."""
    return "\x00" not in key


def group(conn, caller, group_id, write=False, organization_ids=None):
    """(group, its live hooks): a live webhook group the caller may see (and change, ``write``)."""
    found, hooks = groups.get_group(conn, group_id) if _exists(group_id) else (None, [])
    _owned(found, found and found.organization_id, caller, write, f"No webhook group {group_id}.", organization_ids)
    return found, hooks


def delivery(conn, caller, delivery_id, write=False):
    """A delivery (delivery_log.delivery_view) of one of the caller's organizations."""
    found = delivery_log.delivery_view(conn, delivery_id) if _exists(delivery_id) else None
    return _owned(found, found and found.organization_id, caller, write, f"No delivery {delivery_id}.")


def trigger(conn, caller, trigger_id):
    """A stored trigger of one of the caller's organizations."""
    found = triggers.trigger_by_id(conn, trigger_id) if _exists(trigger_id) else None
    return _owned(found, found and found.organization_id, caller, False, f"No trigger {trigger_id}.")
