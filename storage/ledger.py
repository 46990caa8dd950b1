"""The ledger of deliveries, the hot path: rows added by fan-out, claimed for an attempt (per lane,
SKIP LOCKED, the ordering rule and open hooks), recorded a batch at a time, given back
unattempted, cancelled, and taken back from workers that died (expired leases).

The hot statements are built once (``statements.built``) and executed with values."""

import datetime

import sqlalchemy as sa

from storage import hook_health
from storage import hook_stats
from storage import lifecycle
from storage import ordering
from storage import statements
from storage.lifecycle import ErrorKind
from storage.lifecycle import Move
from storage.lifecycle import Status
from storage.tables import attempts
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import triggers
from storage.tables import webhook_groups


def _hook_open(d):
    """The delivery's hook is not disabled. A hook a PUT replaced holds nothing back any more:
    its waiting deliveries go out under the usual rules (they keep the endpoint they were made for).

    A receiver's pause (hooks.paused_until) is not a condition here: one more condition on the
    hook made every claim three times the work for PostgreSQL at 50,000 waiting rows
    (bench/run.py throughput: 1.19 against 0.37 ms of its CPU per delivery). A pause moves the
    waiting rows to its end instead (hook_health.pause_endpoints), fan-out makes new rows due at
    its end, and a row claimed anyway comes with the hook's paused_until, which the send loop
    gives back unattempted."""
    return ~sa.exists().where(
        hooks.c.id == d.c.hook_id, hooks.c.disabled_at.is_not(None), hooks.c.removed_at.is_(None))


def add_deliveries(conn, rows, chunk=5000):
    for start in range(0, len(rows), chunk):
        conn.execute(*statements.bulk_insert(conn, deliveries, rows[start:start + chunk]))


def claim(conn, ids, now, lease_seconds):
    """Take the due, unblocked deliveries among ``ids`` for one attempt; returns their details.

    The attempt number is counted at claim time, so a worker that dies mid-request still
    used up an attempt: a receiver that crashes workers cannot loop forever.
    """
    if not ids:
        return []
    candidates = statements.skip_locked(conn, sa.select(deliveries.c.id).where(
        deliveries.c.id.in_(ids),
        deliveries.c.status.in_(lifecycle.OPEN),
        deliveries.c.next_attempt_at <= now,
        ordering.not_blocked(deliveries),
        _hook_open(deliveries),
    ))
    claimed = conn.execute(
        sa.update(deliveries).where(deliveries.c.id.in_(candidates.scalar_subquery()))
        .values(status=Status.IN_FLIGHT, attempts=deliveries.c.attempts + 1,
                lease_until=now + datetime.timedelta(seconds=lease_seconds), updated_at=now)
        .returning(deliveries.c.id)
    ).scalars().all()
    # the others (blocked, not yet due, or held by another worker) are left as they are:
    # a send loop's claim_due takes them when their turn comes
    return claimed_details(conn, claimed)


def claim_due(conn, now, lease_seconds, limit, status, skip_endpoints=()):
    """Claim up to ``limit`` due, unblocked deliveries of one lane for one attempt each.

    ``status`` is the lane (lifecycle.LANES): first attempts of a series, or retries, so that a
    storm of retries never takes the room first attempts need. Rows another worker holds
    are skipped (SKIP LOCKED), and so are the ``skip_endpoints`` this worker cannot send to
    now (their host is at its connection cap): their lease would run out while they wait.
    The attempt is counted at claim time (see ``claim``). Returns claimed_details.
    """
    def build(skipping):
        where = [deliveries.c.status == sa.bindparam("c_status"), deliveries.c.next_attempt_at <= sa.bindparam("c_now"),
                 ordering.not_blocked(deliveries), _hook_open(deliveries)]
        if skipping:
            where.append(deliveries.c.endpoint.not_in(sa.bindparam("c_skip", expanding=True)))
        due = statements.skip_locked(conn, sa.select(deliveries.c.id).where(*where)
                       .order_by(deliveries.c.next_attempt_at).limit(sa.bindparam("c_limit", type_=sa.Integer)))
        return (sa.update(deliveries).where(deliveries.c.id.in_(due.scalar_subquery()))
                .values(status=Status.IN_FLIGHT, attempts=deliveries.c.attempts + 1,
                        lease_until=sa.bindparam("c_lease_until", type_=sa.DateTime),
                        updated_at=sa.bindparam("c_updated_at", type_=sa.DateTime))
                .returning(deliveries.c.id))
    skipping = bool(skip_endpoints)
    stmt = statements.built(("claim_due", conn.dialect.name, skipping), lambda: build(skipping))
    params = {"c_status": status, "c_now": now, "c_limit": limit, "c_updated_at": now,
              "c_lease_until": now + datetime.timedelta(seconds=lease_seconds)}
    if skipping:
        params["c_skip"] = sorted(skip_endpoints)
    return claimed_details(conn, conn.execute(stmt, params).scalars().all())


def claimed_details(conn, ids):
    """What sending needs of claimed deliveries: trigger, hook and group, in trigger order."""
    if not ids:
        return []
    return conn.execute(statements.built("claimed_details", lambda: sa.select(
            deliveries.c.id, deliveries.c.attempts, deliveries.c.attempt_base, deliveries.c.hook_id,
            deliveries.c.payload, deliveries.c.endpoint,
            deliveries.c.type, deliveries.c.group_id, deliveries.c.organization_id,
            deliveries.c.entity_kind, deliveries.c.entity_id, deliveries.c.created_at,
            triggers.c.trigger_id, triggers.c.entity, triggers.c.event_id,
            triggers.c.received_at,
            hooks.c.method, hooks.c.origin_method, hooks.c.origin_endpoint, hooks.c.origin_body,
            hooks.c.disabled_at.label("hook_disabled_at"), hooks.c.paused_until,
            webhook_groups.c.authentication, webhook_groups.c.client_secret_enc,
            webhook_groups.c.signing_secret_enc, webhook_groups.c.previous_signing_secret_enc,
            webhook_groups.c.previous_signing_until, webhook_groups.c.deleted_at.label("group_deleted_at"),
            sa.func.coalesce(hooks.c.max_per_second, webhook_groups.c.max_per_second).label("max_per_second"),
        )
        .select_from(deliveries.join(triggers).join(hooks).join(webhook_groups))
        .where(deliveries.c.id.in_(sa.bindparam("d_ids", expanding=True)))
        .order_by(deliveries.c.sequence, deliveries.c.trigger_pk)), {"d_ids": list(ids)}).all()


def record(conn, outcomes):
    """Write the attempts and the new delivery states of one batch; returns the ids that went
    dead now.

    Each outcome is a dict: id, number, status, next_attempt_at, payload (or None to keep),
    last_status_code, last_error, delivered_at, now, and the attempt fields. A worker whose
    lease was taken over (the row is no longer in_flight at this attempt number) changes nothing.

    Set-based: on PostgreSQL the deliveries in one statement, then the attempts in one (SQLite,
    in-process, takes executemany).
    The deliveries go first: a sweep taking back a lease (expire_leases) locks the delivery
    before it writes its lost attempt, so this order never waits for it in a circle.
    """
    if not outcomes:
        return []
    outcomes = sorted(outcomes, key=lambda o: o["id"])
    if conn.dialect.name == "postgresql":
        buried = _record_deliveries_pg(conn, outcomes)
    else:
        buried = _record_deliveries(conn, outcomes)
    _insert_attempts(conn, [{
        "delivery_id": o["id"], "number": o["number"], "started_at": o["started_at"],
        "duration_ms": o["duration_ms"], "status_code": o["last_status_code"],
        "error_kind": o["last_error"], "error_detail": o.get("error_detail"),
        "response_excerpt": o.get("response_excerpt"), "request_headers": o.get("request_headers"),
    } for o in outcomes])
    hook_health.track(conn, [o for o in outcomes if o.get("health") is not None])
    hook_stats.count(conn, outcomes)
    return buried


def _insert_attempts(conn, rows):
    """Attempt rows, an attempt already recorded (by a sweep that took the lease back) kept.

    On PostgreSQL one INSERT ... SELECT FROM unnest: SQLAlchemy's insertmanyvalues does not
    take ON CONFLICT statements (2.1 with psycopg2 falls back to cursor.executemany, a round
    trip per row). SQLite, in-process, takes the executemany.
    """
    stmt = statements.insert(conn, attempts)
    if conn.dialect.name == "postgresql":
        # strings as unbounded text: a cast to varchar(n) would cut silently where the column refuses
        names = tuple(rows[0])

        def build():
            kinds = {name: sa.Text if isinstance(attempts.c[name].type, sa.String) else attempts.c[name].type
                     for name in names}
            v = statements.unnest("a", kinds)
            return (stmt.from_select(names, sa.select(*(v.c[name] for name in names)))
                    .on_conflict_do_nothing(index_elements=["delivery_id", "number"]))
        conn.execute(statements.built(("attempts", names), build), statements.arrays("a", names, rows))
    else:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["delivery_id", "number"]), rows)


def _still_in_flight(d, number):
    return sa.and_(d.c.status == Status.IN_FLIGHT, d.c.attempts == number)


def _record_deliveries_pg(conn, outcomes):
    """One UPDATE ... FROM unnest(typed arrays) for the whole batch: a constant statement text
    whatever the batch size, explicit types (a column of NULLs would be text in a VALUES list)."""
    kinds = {"id": sa.String, "number": sa.Integer, "status": sa.String, "next_attempt_at": sa.DateTime,
             "payload": sa.Text, "last_status_code": sa.Integer, "last_error": sa.String,
             "delivered_at": sa.DateTime, "now": sa.DateTime}

    def build():
        v = statements.unnest("r", kinds)
        return (sa.update(deliveries)
                .where(deliveries.c.id == v.c.id, _still_in_flight(deliveries, v.c.number))
                .values(status=v.c.status, next_attempt_at=v.c.next_attempt_at,
                        payload=sa.func.coalesce(deliveries.c.payload, v.c.payload),
                        last_status_code=v.c.last_status_code, last_error=v.c.last_error,
                        delivered_at=v.c.delivered_at, updated_at=v.c.now, lease_until=None)
                .returning(deliveries.c.id, deliveries.c.status))
    done = conn.execute(statements.built("record", build),
                        statements.arrays("r", kinds, [{name: o.get(name) for name in kinds} for o in outcomes])).all()
    return sorted(row.id for row in done if row.status == Status.DEAD)


def _record_deliveries(conn, outcomes):
    stmt = (
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("b_id"), _still_in_flight(deliveries, sa.bindparam("b_number")))
        .values(
            status=sa.bindparam("b_status"), next_attempt_at=sa.bindparam("b_next"),
            payload=sa.func.coalesce(deliveries.c.payload, sa.bindparam("b_payload")),
            last_status_code=sa.bindparam("b_code"), last_error=sa.bindparam("b_error"),
            delivered_at=sa.bindparam("b_delivered_at"), updated_at=sa.bindparam("b_now"),
            lease_until=None,
        )
    )
    params = [{
        "b_id": o["id"], "b_number": o["number"], "b_status": o["status"], "b_next": o["next_attempt_at"],
        "b_payload": o.get("payload"), "b_code": o["last_status_code"], "b_error": o["last_error"],
        "b_delivered_at": o.get("delivered_at"), "b_now": o["now"],
    } for o in outcomes]
    living = [p for p in params if p["b_status"] != Status.DEAD]
    if living:
        conn.execute(stmt, living)
    # dead is rare: one statement each, so the caller learns which really went dead now
    buried = []
    for p in params:
        if p["b_status"] == Status.DEAD:
            buried.extend(conn.execute(stmt.returning(deliveries.c.id), p).scalars())
    return buried


def give_back(conn, rows, now):
    """Return claimed deliveries unattempted: the rate limit or a pause kept them from going out.
    ``rows`` are (id, lane status, claimed attempt number, next_attempt_at); the attempt the
    claim counted is taken back, so a throttled delivery never spends one of its attempts."""
    if not rows:
        return
    conn.execute(statements.built("give_back", lambda: sa.update(deliveries).where(
        deliveries.c.id == sa.bindparam("g_id"), deliveries.c.status == Status.IN_FLIGHT,
        deliveries.c.attempts == sa.bindparam("g_number")).values(
        status=sa.bindparam("g_status"), attempts=deliveries.c.attempts - 1, lease_until=None,
        next_attempt_at=sa.bindparam("g_at"), updated_at=sa.bindparam("g_now", type_=sa.DateTime))),
        [{"g_id": i, "g_status": status, "g_number": number, "g_at": at, "g_now": now}
         for i, status, number, at in rows])


def cancel(conn, ids, now):
    if ids:
        conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(ids)).values(
            status=Status.CANCELLED, lease_until=None, updated_at=now))


def expire_leases(conn, now, max_attempts, limit=1000, every_lease=False, buried=None):
    """Deliveries whose worker died mid-attempt: record the lost attempt, retry or bury them.

    ``every_lease`` takes back leases that have not expired yet: for a single process
    (standalone) starting up, which knows no other worker holds them. The ids of those that
    went dead are appended to the list ``buried``, when one is given.
    """
    expired = sa.true() if every_lease else deliveries.c.lease_until < now
    # oldest lease first, in a stable order; rows a worker is recording right now are skipped
    # (SKIP LOCKED): its record will find them still in_flight and settle them itself
    lost = conn.execute(statements.skip_locked(conn, sa.select(
        deliveries.c.id, deliveries.c.attempts, deliveries.c.attempt_base).where(
        deliveries.c.status == Status.IN_FLIGHT, expired)
        .order_by(deliveries.c.lease_until, deliveries.c.id).limit(limit))).all()
    if not lost:
        return 0
    conn.execute(
        statements.insert(conn, attempts).on_conflict_do_nothing(index_elements=["delivery_id", "number"]),
        [{"delivery_id": row.id, "number": row.attempts, "started_at": now, "duration_ms": 0,
          "error_kind": ErrorKind.WORKER_LOST, "error_detail": "the worker's lease expired before it recorded a result"}
         for row in lost],
    )
    # max_attempts counts within the current series (see deliveries.attempt_base)
    decided = {}
    for row in lost:
        status = lifecycle.decide(Move.LOSE_LEASE, spent=row.attempts - row.attempt_base, max_attempts=max_attempts)
        decided.setdefault(status, []).append(row.id)
    for status, chosen in sorted(decided.items()):
        if chosen:
            conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(chosen)).values(
                status=status, lease_until=None, next_attempt_at=now,
                last_error=ErrorKind.WORKER_LOST, updated_at=now))
            if status is Status.DEAD and buried is not None:
                buried.extend(chosen)
    return len(lost)


def due_backlog(conn, now):
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        deliveries.c.status.in_(lifecycle.OPEN), deliveries.c.next_attempt_at <= now,
        _hook_open(deliveries))).scalar_one()
