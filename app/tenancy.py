"""Tenancy, the one rule every face applies: another organization's object answers exactly
like a missing one (404, no hint that it exists), and a role that may only read gets a 403
when it tries to change one. The API's views and the dashboard's pages look objects up here.
"""

from flask_smorest import abort

from storage import delivery_log
from storage import groups
from storage import triggers

READ_ONLY = "Your role in this organization may only read."


def _owned(found, organization_id, caller, write, missing, organization_ids=None):
    """``found`` if ``caller`` may see it (within ``organization_ids`` when given), else abort."""
    visible = caller.organization_ids() if organization_ids is None else organization_ids
    if found is None or organization_id not in visible:
        abort(404, message=missing)
    if write and organization_id not in caller.organization_ids(write=True):
        abort(403, message=READ_ONLY)
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
