"""Retention (``doo-webhooks purge``): deleting what is old and settled, for the operator only."""

import contextlib

from services.access import operator_only
from storage import retention
from storage.db import utcnow
from workers import operations


def purge(ctx, caller, older_than, batch_size=operations.PURGE_BATCH, keep_snapshots=True, progress=None):
    """Delete deliveries delivered more than ``older_than`` (a timedelta) ago with their attempts,
    the triggers no delivery names any more (each entity's latest kept, ``keep_snapshots``: it
    is what initialization re-sends) and the hourly attempt counts of that past.

    ``progress(total)``, when given, is a context manager for the deliveries to delete, whose
    ``update(n)`` is called after each batch. Returns {deliveries_deleted, triggers_deleted,
    cutoff (naive UTC)}.
    """
    operator_only(caller)
    cutoff = utcnow() - older_than
    with ctx.engine.begin() as conn:
        total = retention.count_purgeable(conn, cutoff)
    with (progress or _no_progress)(total) as bar:
        deleted, triggers = operations.purge(ctx.engine, cutoff, batch_size, keep_snapshots,
                                             progress=bar.update if bar is not None else None)
    return {"deliveries_deleted": deleted, "triggers_deleted": triggers, "cutoff": cutoff}


def _no_progress(total):
    return contextlib.nullcontext()
