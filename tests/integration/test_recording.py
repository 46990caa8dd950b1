"""Recording a batch of attempts (storage.ledger.record) on a real database: set-based
statements, endpoint health written only when it changes and in hook id order, so that many
workers recording failures for the same few hooks never deadlock (issue 9).

Most tests run on SQLite and PostgreSQL (``database_url``); the lock-order test needs
PostgreSQL's row locks. The pipeline-level proof is tests/e2e/test_contention.py.
"""

import threading
import time

import pytest
import sqlalchemy as sa

import storage.ledger
from storage import hook_health
from storage import hook_stats
from storage import tables
from storage.db import engine_for
from storage.tables import deliveries
from storage.tables import hooks
from test_ledger import T0
from test_ledger import Ledger
from test_ledger import delivered
from test_ledger import outcome
from test_ledger import seconds
from workers import notifications


@pytest.fixture
def ledger(database_url):
    return Ledger(engine_for(database_url))


@pytest.fixture
def pg_ledger(pg_database_url):
    return Ledger(engine_for(pg_database_url))


def new_hook(ledger):
    """The hook of a new group of its own."""
    group_id = ledger.group()
    return ledger._hooks[group_id]


def failed(delivery_id, number, now, hook_id, *, health=False, status="retrying", **kwargs):
    """An outcome that tells its hook's health (workers.delivery.attempt sets hook_id and health)."""
    return dict(outcome(delivery_id, number, status, now, **kwargs), hook_id=hook_id, health=health)


def test_record_returns_the_deliveries_that_went_dead_now_only(ledger):
    dying, living, taken_over = ledger.delivery(), ledger.delivery(), ledger.delivery()
    ledger.claim([dying, living, taken_over], T0)
    with ledger.engine.begin() as conn:  # a sweep took this one back (expire_leases)
        conn.execute(sa.update(deliveries).where(deliveries.c.id == taken_over).values(status="retrying"))
    with ledger.engine.begin() as conn:
        # every code NULL in one column: the batch's types must not come from its values
        buried = storage.ledger.record(conn, [
            outcome(dying, 1, "dead", T0 + seconds(1), code=None, error="timeout"),
            outcome(living, 1, "retrying", T0 + seconds(1), code=None, error="timeout",
                    next_attempt_at=T0 + seconds(9)),
            outcome(taken_over, 1, "dead", T0 + seconds(1), code=None, error="timeout")])
    assert buried == [dying]
    assert [(r.status, r.last_status_code, r.last_error, r.lease_until) for r in map(ledger.row, (dying, living))] == [
        ("dead", None, "timeout", None), ("retrying", None, "timeout", None)]
    assert ledger.row(living).next_attempt_at == T0 + seconds(9)
    assert ledger.row(taken_over).status == "retrying"
    # the attempt is in the ledger all the same (a sweep writes its worker_lost row first)
    assert [len(ledger.attempts(i)) for i in (dying, living, taken_over)] == [1, 1, 1]
    with ledger.engine.begin() as conn:
        assert storage.ledger.record(conn, []) == []


def test_record_keeps_the_first_payload_and_an_attempt_recorded_before(ledger):
    d = ledger.delivery()
    ledger.claim([d], T0)
    ledger.record(outcome(d, 1, "retrying", T0 + seconds(1), payload='{"v":1}', detail="first"))
    ledger.claim([d], T0 + seconds(2))
    ledger.record(outcome(d, 1, "retrying", T0 + seconds(3), detail="again"))  # a stale repeat: nothing
    ledger.record(delivered(d, 2, T0 + seconds(3), payload='{"v":2}'))
    row = ledger.row(d)
    assert (row.status, row.payload, row.delivered_at, row.last_status_code) == (
        "delivered", '{"v":1}', T0 + seconds(3), 200)
    assert [(a.number, a.error_detail) for a in ledger.attempts(d)] == [(1, "first"), (2, None)]


def test_record_of_a_batch_is_four_statements_on_postgresql(pg_ledger):
    """Deliveries (UPDATE ... FROM unnest), attempts (INSERT ... SELECT FROM unnest: SQLAlchemy's
    insertmanyvalues skips ON CONFLICT statements and psycopg2's executemany is a round trip per
    row), hook health (one UPDATE), attempts per hook and hour (one INSERT ... SELECT FROM unnest
    ON CONFLICT): four round trips whatever the batch size."""
    ids = [pg_ledger.delivery() for _ in range(40)]
    pg_ledger.claim(ids, T0)
    hook = new_hook(pg_ledger)
    calls = []
    with pg_ledger.engine.begin() as conn:
        sa.event.listen(conn, "before_cursor_execute",
                        lambda c, cursor, statement, params, context, many: calls.append((statement.split()[0], many)))
        buried = storage.ledger.record(conn, [failed(d, 1, T0 + seconds(1), hook, status="dead" if n % 2 else "retrying")
                                              for n, d in enumerate(ids)])
    assert sorted(buried) == sorted(ids[1::2])
    assert calls == [("UPDATE", False), ("INSERT", False), ("UPDATE", False), ("INSERT", False)]
    assert sum(len(pg_ledger.attempts(i)) for i in ids) == 40


def health(ledger, hook_id):
    with ledger.engine.connect() as conn:
        return tuple(conn.execute(sa.select(hooks.c.failing_since, hooks.c.last_failure_at)
                                  .where(hooks.c.id == hook_id)).one())


def row_version(ledger, hook_id):
    """PostgreSQL's xmin of the hook's row: it changes with every write, even of equal values.
    (SQLite has a single writer: there an unneeded write costs time, not a lock.)"""
    if ledger.engine.dialect.name != "postgresql":
        return None
    with ledger.engine.connect() as conn:
        return conn.execute(sa.text("SELECT xmin::text FROM hooks WHERE id = :i"), {"i": hook_id}).scalar_one()


def record_health(ledger, *attempted, at=T0):
    """Record one batch: an attempt per (hook id, health, started_at offset in seconds)."""
    ids = [ledger.delivery(next_attempt_at=at - seconds(1)) for _ in attempted]
    assert len(ledger.claim(ids, at)) == len(ids)
    batch = []
    for d, (hook_id, ok, offset) in zip(ids, attempted):
        o = failed(d, 1, at + seconds(offset + 1), hook_id, health=ok)
        o["started_at"] = at + seconds(offset)
        batch.append(o)
    ledger.record(*batch)


STEP = hook_health.HEALTH_GRANULARITY.total_seconds()


def test_failures_start_a_streak_and_move_last_failure_at_only_after_the_granularity(ledger):
    hook = new_hook(ledger)
    record_health(ledger, (hook, False, 3), (hook, False, 1), (hook, False, 2))
    assert health(ledger, hook) == (T0 + seconds(1), T0 + seconds(3))
    version = row_version(ledger, hook)
    # failures within HEALTH_GRANULARITY of the last recorded one leave the row alone
    record_health(ledger, (hook, False, 3 + STEP))
    assert health(ledger, hook) == (T0 + seconds(1), T0 + seconds(3))
    assert row_version(ledger, hook) == version
    # a later one moves last_failure_at; the streak still began at the first failure
    record_health(ledger, (hook, False, 4 + STEP))
    assert health(ledger, hook) == (T0 + seconds(1), T0 + seconds(4 + STEP))
    # and an older one never moves it back
    record_health(ledger, (new_hook(ledger), False, 0), (hook, False, -5 * STEP))
    assert health(ledger, hook) == (T0 + seconds(1), T0 + seconds(4 + STEP))


def test_a_success_ends_the_streak_and_a_healthy_hook_is_not_written(ledger):
    hook, other = new_hook(ledger), new_hook(ledger)
    record_health(ledger, (hook, False, 1), (other, False, 1))
    # a success in the batch wins over failures of the same hook in that batch
    record_health(ledger, (hook, False, 2), (hook, True, 3), (other, False, 2))
    assert health(ledger, hook) == (None, T0 + seconds(1))  # last_failure_at still dates the last failure
    assert health(ledger, other) == (T0 + seconds(1), T0 + seconds(1))
    version = row_version(ledger, hook)
    record_health(ledger, (hook, True, 4), (hook, True, 5))
    assert row_version(ledger, hook) == version
    # a new streak starts at its own first failure
    record_health(ledger, (hook, False, 10))
    assert health(ledger, hook) == (T0 + seconds(10), T0 + seconds(10))


def test_auto_disable_still_judges_by_a_coarse_last_failure_at(ledger):
    hook = new_hook(ledger)
    disable_after = 5 * 86400
    record_health(ledger, (hook, False, 0), at=T0 - seconds(disable_after + 3600))
    # failing every half granularity since: most of those write nothing ...
    for n in reversed(range(1, 5)):
        record_health(ledger, (hook, False, 0), at=T0 - seconds(n * STEP / 2))
    # ... and the latest failure recorded is at most a granularity old
    assert T0 - health(ledger, hook)[1] <= hook_health.HEALTH_GRANULARITY
    with ledger.engine.begin() as conn:
        assert notifications.auto_disable(conn, T0, disable_after) == [hook]


def test_disable_hooks_disables_each_once_whatever_the_order_given(ledger):
    a, b, c = new_hook(ledger), new_hook(ledger), new_hook(ledger)
    with ledger.engine.begin() as conn:
        assert hook_health.disable_hooks(conn, [b], "first", T0) == [b]
    with ledger.engine.begin() as conn:
        assert sorted(hook_health.disable_hooks(conn, [c, b, a, c], "second", T0 + seconds(1))) == sorted([a, c])
    with ledger.engine.connect() as conn:
        details = hook_health.hook_details(conn, [a, b, c])
    assert [(details[i].disabled_reason, details[i].disabled_at) for i in (a, b, c)] == [
        ("second", T0 + seconds(1)), ("first", T0), ("second", T0 + seconds(1))]


def test_expire_leases_takes_the_oldest_leases_first(ledger):
    rows = {age: ledger.delivery(status="in_flight", attempts=1, lease_until=T0 - seconds(age))
            for age in (5, 50, 20)}
    with ledger.engine.begin() as conn:
        assert storage.ledger.expire_leases(conn, T0, 10, limit=2) == 2
    assert [ledger.row(rows[age]).status for age in (50, 20, 5)] == ["retrying", "retrying", "in_flight"]


def waiting_for_locks(engine, count):
    """Poll until ``count`` backends of this database wait for a lock."""
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as conn:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{count} backend(s) never waited for a lock ({waiting} did)"
        time.sleep(0.02)


def test_batches_naming_the_same_hooks_in_opposite_orders_do_not_deadlock(pg_ledger):
    """The stall of issue 9. A third transaction holds hook ``low``: batch A (low, high) waits
    for it; batch B names (high, low). Had B locked ``high`` first, A and B would wait for each
    other once the third lets go; in id order, B waits for ``low`` holding nothing."""
    low, high = sorted([new_hook(pg_ledger), new_hook(pg_ledger)])
    a_ids, b_ids = [pg_ledger.delivery() for _ in range(2)], [pg_ledger.delivery() for _ in range(2)]
    pg_ledger.claim(a_ids + b_ids, T0)
    holder = pg_ledger.engine.connect()
    holder.begin()
    holder.execute(sa.select(hooks.c.id).where(hooks.c.id == low).with_for_update())
    errors = []

    def batch(ids, hook_order):
        try:
            with pg_ledger.engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
                storage.ledger.record(conn, [failed(d, 1, T0 + seconds(1), h) for d, h in zip(ids, hook_order)])
        except Exception as exc:  # a deadlock victim (or a lock timeout): the assertion below tells
            errors.append(exc)

    a = threading.Thread(target=batch, args=(a_ids, [low, high]))
    a.start()
    waiting_for_locks(pg_ledger.engine, 1)
    b = threading.Thread(target=batch, args=(b_ids, [high, low]))
    b.start()
    waiting_for_locks(pg_ledger.engine, 2)
    holder.rollback()
    holder.close()
    a.join(30)
    b.join(30)
    assert errors == []
    assert {pg_ledger.row(i).status for i in a_ids + b_ids} == {"retrying"}
    assert health(pg_ledger, low)[0] == health(pg_ledger, high)[0] == T0


def test_attempts_are_counted_per_hook_and_hour_across_batches(ledger):
    """storage.hook_stats: what the dashboard's "success over 24 h" and "last attempt" read."""
    group = ledger.group()
    hook = ledger._hooks[group]
    ids = [ledger.delivery(group_id=group) for _ in range(3)]
    ledger.claim(ids, T0)
    later = T0 + seconds(3601)  # its attempt starts a second before: at the next hour
    with ledger.engine.begin() as conn:
        storage.ledger.record(conn, [failed(ids[0], 1, T0 + seconds(1), hook, code=503)])
    with ledger.engine.begin() as conn:
        storage.ledger.record(conn, [dict(delivered(ids[1], 1, T0 + seconds(2)), hook_id=hook, health=True),
                                     failed(ids[2], 1, later, hook, code=500)])
    with ledger.engine.begin() as conn:
        seen = hook_stats.recent(conn, [group], T0)
        this_hour_only = hook_stats.recent(conn, [group], later)
        rows = conn.execute(sa.select(tables.hook_stats).order_by(tables.hook_stats.c.hour)).all()
    assert [(r.succeeded, r.failed) for r in rows if r.hook_id == hook] == [(1, 1), (0, 1)]
    assert (seen[hook].attempts, seen[hook].succeeded, seen[hook].last_status_code) == (3, 1, 500)
    assert seen[hook].last_at == later - seconds(1)  # outcome() starts an attempt a second before now
    assert this_hour_only[hook].attempts == 1
