"""Whether a hook is sent to: its failing streak (written as batches are recorded), the hooks that
failed long enough to be disabled, disable and enable, and receivers' Retry-After pauses.

Every writer of a hook's row locks hook rows in id order (see ``track``), so concurrent
batches wait for each other at most, never in a circle."""

import datetime

import sqlalchemy as sa

from storage import lifecycle
from storage import statements
from storage.lifecycle import Status
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import webhook_groups


#: last_failure_at is advanced only when it is this much older than a new failure. It feeds
#: nothing but auto-disable (failing_hooks: failing since before DISABLE_AFTER ago and failed
#: again since), so a value up to a minute stale can delay a disable by at most a minute,
#: while a hook failing thousands of times a second gets its row written once a minute.
HEALTH_GRANULARITY = datetime.timedelta(seconds=60)


def track(conn, outcomes):
    """Track each hook's failing streak: a success ends it, a failure starts or extends it.

    Each outcome's ``health`` is True (success), False (a failure the receiver is answerable
    for) or None (tells nothing; left out by the caller). A hook with a success in the batch
    counts as succeeded.

    A hook's row is shared by every batch that sends to it, so this writes only what changes
    (a success clears a streak that is there, a failure starts one that is not, last_failure_at
    moves by HEALTH_GRANULARITY) and takes the rows' locks in hook id order: concurrent
    batches then wait for each other at most, never in a circle. Most batches write nothing.
    """
    health = {}
    for o in outcomes:
        ok, first, last = health.get(o["hook_id"], (False, o["started_at"], o["started_at"]))
        health[o["hook_id"]] = (ok or bool(o["health"]), min(first, o["started_at"]), max(last, o["started_at"]))
    if not health:
        return
    rows = [{"id": hook_id, "ok": ok, "first": first, "last": last, "stale": last - HEALTH_GRANULARITY}
            for hook_id, (ok, first, last) in sorted(health.items())]
    if conn.dialect.name == "postgresql":
        _hook_health_pg(conn, rows)
        return
    h = {name: sa.bindparam(f"h_{name}", type_=kind) for name, kind in (
        ("id", sa.Integer), ("ok", sa.Boolean), ("first", sa.DateTime), ("last", sa.DateTime), ("stale", sa.DateTime))}
    conn.execute(
        sa.update(hooks).where(hooks.c.id == h["id"], _health_changes(hooks, h)).values(_health_values(hooks, h)),
        [{f"h_{k}": v for k, v in row.items()} for row in rows])


def _health_changes(hk, v):
    """Whether a hook's row needs writing for its batch outcome ``v`` (ok, first, last, stale)."""
    return sa.or_(
        sa.and_(v["ok"], hk.c.failing_since.is_not(None)),
        sa.and_(sa.not_(v["ok"]), sa.or_(hk.c.failing_since.is_(None), hk.c.last_failure_at.is_(None),
                                         hk.c.last_failure_at < v["stale"])))


def _health_values(hk, v):
    return {
        "failing_since": sa.case((v["ok"], sa.null()), else_=sa.func.coalesce(hk.c.failing_since, v["first"])),
        "last_failure_at": sa.case(
            (sa.and_(sa.not_(v["ok"]), sa.or_(hk.c.last_failure_at.is_(None), hk.c.last_failure_at < v["last"])),
             v["last"]),
            else_=hk.c.last_failure_at),
    }


def _hook_health_pg(conn, rows):
    """One statement. Its subquery locks the rows that change in id order (FOR NO KEY UPDATE
    under ORDER BY locks in that order; it waits rather than skips, as a skipped row would
    lose its update) and hands them with their batch outcome to the UPDATE. After a wait,
    READ COMMITTED checks the row again, so a batch with nothing new to say writes nothing."""
    kinds = {"id": sa.Integer, "ok": sa.Boolean, "first": sa.DateTime, "last": sa.DateTime, "stale": sa.DateTime}

    def build():
        v = statements.unnest("h", kinds)
        changing = (sa.select(hooks.c.id, v.c.ok, v.c.first, v.c.last)
                    .select_from(hooks.join(v, v.c.id == hooks.c.id))
                    .where(_health_changes(hooks, v.c)).order_by(hooks.c.id)
                    .with_for_update(key_share=True, of=hooks)).subquery("changing")
        target = hooks.alias("target")
        return sa.update(target).where(target.c.id == changing.c.id).values(_health_values(target, changing.c))
    conn.execute(statements.built("hook_health", build), statements.arrays("h", kinds, rows))


def failing_hooks(conn, cutoff, limit=100):
    """Enabled live hooks of live groups that failed every attempt since before ``cutoff`` and
    failed again since: their streak began before it and their latest failure is after it.
    One indexed query (ix_hooks_failing_since); rows another scheduler holds are skipped."""
    return conn.execute(statements.skip_locked(conn, sa.select(hooks.c.id, hooks.c.failing_since).where(
        hooks.c.failing_since < cutoff, hooks.c.last_failure_at >= cutoff,
        hooks.c.disabled_at.is_(None), hooks.c.removed_at.is_(None),
        hooks.c.group_id.in_(sa.select(webhook_groups.c.id).where(webhook_groups.c.deleted_at.is_(None))),
    ).order_by(hooks.c.failing_since).limit(limit))).all()


def disable_hooks(conn, hook_ids, reason, now):
    """Disable hooks that are not disabled yet (the first reason and time are kept); returns
    the ids this call disabled."""
    if not hook_ids:
        return []
    # a hook's row is shared with every batch recording its health: lock in id order (see track)
    chosen = sa.select(hooks.c.id).where(hooks.c.id.in_(sorted(set(hook_ids))), hooks.c.disabled_at.is_(None))
    if conn.dialect.name == "postgresql":
        chosen = chosen.order_by(hooks.c.id).with_for_update(key_share=True)
    return conn.execute(sa.update(hooks).where(hooks.c.id.in_(chosen.scalar_subquery()), hooks.c.disabled_at.is_(None))
                        .values(disabled_at=now, disabled_reason=reason[:255]).returning(hooks.c.id)).scalars().all()


def enable_hook(conn, hook_id, now):
    """Enable a disabled hook; its waiting deliveries become due. Returns how many were waiting,
    or None for a hook that was not disabled (nothing changes). Its failing streak starts over.

    Retries are brought forward to ``now`` (the receiver is back: no need to sit out a
    backoff chosen while it was failing); pending rows keep their time, so an
    initialization stays paced. The workers' next claim takes whatever is due.
    """
    enabled = conn.execute(sa.update(hooks).where(hooks.c.id == hook_id, hooks.c.disabled_at.is_not(None))
                           .values(disabled_at=None, disabled_reason=None, failing_since=None)).rowcount
    if not enabled:
        return None
    conn.execute(sa.update(deliveries).where(
        deliveries.c.hook_id == hook_id, deliveries.c.status == Status.RETRYING, deliveries.c.next_attempt_at > now,
    ).values(next_attempt_at=now, updated_at=now))
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        deliveries.c.hook_id == hook_id, deliveries.c.status.in_(lifecycle.OPEN))).scalar_one()


def hook_details(conn, hook_ids):
    """Hooks with their group (for operational events), by id."""
    if not hook_ids:
        return {}
    return {row.id: row for row in conn.execute(
        sa.select(hooks.c.id, hooks.c.group_id, hooks.c.position, hooks.c.type_key, hooks.c.endpoint,
                  hooks.c.disabled_at, hooks.c.disabled_reason, hooks.c.removed_at)
        .where(hooks.c.id.in_(hook_ids)))}


def pause_endpoints(conn, pauses, now):
    """No request to these endpoints before their time: ``pauses`` are (group_id, endpoint,
    until) from receivers' Retry-After. The hooks keep the pause (claims skip them, whatever
    is fanned out meanwhile); deliveries already waiting move to its end, so claims need not
    step over them."""
    for group_id, endpoint, until in sorted(set(pauses)):
        # hook rows locked in id order, as every other writer of hooks does (see track)
        ids = conn.execute(sa.select(hooks.c.id).where(
            hooks.c.group_id == group_id, hooks.c.endpoint == endpoint,
            sa.or_(hooks.c.paused_until.is_(None), hooks.c.paused_until < until))
            .order_by(hooks.c.id).with_for_update()).scalars().all()
        if not ids:
            continue
        conn.execute(sa.update(hooks).where(hooks.c.id.in_(ids)).values(paused_until=until))
        conn.execute(sa.update(deliveries).where(
            deliveries.c.group_id == group_id, deliveries.c.endpoint == endpoint,
            deliveries.c.status.in_(lifecycle.OPEN), deliveries.c.next_attempt_at < until)
            .values(next_attempt_at=until, updated_at=now))
