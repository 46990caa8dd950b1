"""Putting deliveries right by hand: redeliver one, replay dead letters, enable a hook, purge.

Plain functions over a connection (or an engine for the long purge); the API and the CLI
are their two faces. None of them sends anything: a restarted delivery is a due row that
the workers' next claim takes; the caller may nudge their send loops after the commit.
"""

import datetime
import re

from storage import delivery_log
from storage import hook_stats
from storage import lifecycle
from storage import retention
from storage.lifecycle import Move
from storage.lifecycle import Status

#: most dead letters one replay call restarts (as Svix's recover): a bigger backlog takes more calls
REPLAY_LIMIT = 10_000
PURGE_BATCH = 1000
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Refused(Exception):
    """The operation does not apply to this object in its current state (HTTP 409)."""


def redeliver(conn, row, now):
    """Start a new attempt series for one delivery (a ``delivery_log.delivery_view`` row).

    Only a dead, delivered or skipped delivery can be sent again: a pending, retrying or
    in-flight one is still owed and will go out anyway; a cancelled one belongs to a deleted
    group. A skipped one whose hook is still disabled then waits for the hook like any other.
    """
    if row.group_deleted_at is not None:
        raise Refused(f"delivery {row.id} belongs to a deleted webhook group")
    if row.status not in lifecycle.sources(Move.REDELIVER):
        raise Refused(f"delivery {row.id} is {row.status}; "
                      "only a dead, delivered or skipped delivery can be redelivered")
    if not delivery_log.restart_series(conn, [row.id], now, lifecycle.sources(Move.REDELIVER)):
        raise Refused(f"delivery {row.id} changed meanwhile; look at it again")


def replay(conn, now, limit=REPLAY_LIMIT, **filters):
    """Restart up to ``limit`` dead letters matching ``filters``; returns (ids, dead letters left)."""
    ids = delivery_log.replay_dead(conn, now, min(limit, REPLAY_LIMIT), **filters)
    return ids, delivery_log.count_deliveries(conn, status=Status.DEAD, live_groups=True, **filters)


def parse_age(text):
    """'30d', '12h', '90m', '45s', '2w' as a timedelta; ValueError otherwise."""
    match = _AGE.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not an age like 30d, 12h, 90m, 45s or 2w")
    return datetime.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def purge(engine, cutoff, batch=PURGE_BATCH, keep_snapshots=True, progress=None):
    """Delete deliveries delivered before ``cutoff`` with their attempts, then triggers received
    before it that no delivery names any more, and the hourly attempt counts (storage.hook_stats)
    before it; returns (deliveries, triggers) deleted.

    Batches of ``batch`` rows, one transaction each, so a large purge never holds long locks.
    ``keep_snapshots`` keeps each entity's latest trigger: initialization re-sends it.
    ``progress(n)`` is called after each batch of deliveries.
    """
    deleted = [0, 0]
    while True:
        with engine.begin() as conn:
            n = retention.purge_delivered(conn, cutoff, batch)
        deleted[0] += n
        if progress is not None and n:
            progress(n)
        if n < batch:
            break
    while True:
        with engine.begin() as conn:
            n = retention.purge_triggers(conn, cutoff, batch, keep_latest=keep_snapshots)
        deleted[1] += n
        if n < batch:
            break
    with engine.begin() as conn:  # the hourly attempt counts of the same past (a row per hook and hour)
        hook_stats.purge(conn, cutoff)
    return tuple(deleted)
