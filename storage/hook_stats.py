"""Attempts per hook and hour, counted as batches are recorded: what "success over 24 h" and
"last attempt" on the dashboard read, from a row per hook and hour instead of every attempt of
a day (which took half a second at a million deliveries, docs/dashboard-explain.txt).

One upsert per recorded batch, its rows in (hook, hour) order like every other writer, so
concurrent recorders wait for each other at most, never in a circle. The latest attempt of an
hour wins its row's last_* columns."""

import sqlalchemy as sa

from storage import statements
from storage.tables import hook_stats
from storage.tables import hooks


def hour_of(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


def count(conn, outcomes):
    """Add one batch of attempt outcomes (dicts with hook_id, started_at, last_status_code,
    last_error) to their hooks' hours. An attempt without an error kind succeeded."""
    rows = {}
    for o in outcomes:
        if o.get("hook_id") is None:  # nothing to count it for (tests write bare outcomes)
            continue
        key = (o["hook_id"], hour_of(o["started_at"]))
        row = rows.setdefault(key, {"hook_id": key[0], "hour": key[1], "succeeded": 0, "failed": 0,
                                    "last_at": o["started_at"], "last_status_code": None, "last_error_kind": None})
        row["succeeded" if o["last_error"] is None else "failed"] += 1
        if o["started_at"] >= row["last_at"]:
            row.update(last_at=o["started_at"], last_status_code=o["last_status_code"],
                       last_error_kind=o["last_error"])
    if not rows:
        return
    rows = [rows[key] for key in sorted(rows)]
    if conn.dialect.name == "postgresql":  # one statement whatever the batch (see ledger._insert_attempts)
        conn.execute(_upsert(conn, unnested=True), statements.arrays("s", NAMES, rows))
    else:
        conn.execute(_upsert(conn, unnested=False), rows)


NAMES = ("hook_id", "hour", "succeeded", "failed", "last_at", "last_status_code", "last_error_kind")


def _upsert(conn, unnested):
    def build():
        stmt = statements.insert(conn, hook_stats)
        if unnested:
            kinds = {name: sa.Text if isinstance(hook_stats.c[name].type, sa.String) else hook_stats.c[name].type
                     for name in NAMES}
            v = statements.unnest("s", kinds)
            stmt = stmt.from_select(NAMES, sa.select(*(v.c[name] for name in NAMES)))
        new, old = stmt.excluded, hook_stats.c
        later = new.last_at >= old.last_at
        return stmt.on_conflict_do_update(index_elements=["hook_id", "hour"], set_={
            "succeeded": old.succeeded + new.succeeded, "failed": old.failed + new.failed,
            "last_at": sa.case((later, new.last_at), else_=old.last_at),
            "last_status_code": sa.case((later, new.last_status_code), else_=old.last_status_code),
            "last_error_kind": sa.case((later, new.last_error_kind), else_=old.last_error_kind),
        })
    return statements.built(("hook_stats_upsert", conn.dialect.name, unnested), build)


def recent(conn, group_ids, since):
    """Per live hook of ``group_ids``: attempts and successes in the hours from ``since``'s on,
    and the latest attempt (last_at, last_status_code, last_error_kind)."""
    if not group_ids:
        return {}
    window = (
        sa.select(hook_stats).join(hooks, hooks.c.id == hook_stats.c.hook_id)
        .where(hooks.c.group_id.in_(group_ids), hook_stats.c.hour >= hour_of(since))
    ).subquery()
    latest = sa.func.row_number().over(partition_by=window.c.hook_id, order_by=window.c.last_at.desc())
    ranked = sa.select(window, latest.label("nth")).subquery()
    first = ranked.c.nth == 1
    rows = conn.execute(
        sa.select(ranked.c.hook_id,
                  sa.func.sum(ranked.c.succeeded + ranked.c.failed).label("attempts"),
                  sa.func.sum(ranked.c.succeeded).label("succeeded"),
                  sa.func.max(ranked.c.last_at).label("last_at"),
                  sa.func.max(sa.case((first, ranked.c.last_status_code))).label("last_status_code"),
                  sa.func.max(sa.case((first, ranked.c.last_error_kind))).label("last_error_kind"))
        .group_by(ranked.c.hook_id)
    ).all()
    return {row.hook_id: row for row in rows}


def purge(conn, cutoff):
    """Drop the hours before ``cutoff``; returns how many rows went."""
    return conn.execute(sa.delete(hook_stats).where(hook_stats.c.hour < hour_of(cutoff))).rowcount
