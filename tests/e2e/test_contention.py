"""Many workers recording failures for a few hooks at once (issue 9's stall): every attempt is
recorded, no lease expires under a live worker, and PostgreSQL detects no deadlock.

Each hook's row is shared by every batch that sends to it, and every failed attempt is
endpoint health news: the recording path must not make concurrent batches wait for each
other in a circle. The statements themselves are tested in tests/integration/test_ledger.py.
"""

import collections
import threading
import time

import sqlalchemy as sa

from tests.e2e.conftest import order

GROUPS = 5
TRIGGERS = 100
MAX_ATTEMPTS = 3
WORKERS = 3


def deadlocks(engine):
    """PostgreSQL's count of deadlocks detected in this database (pg_stat_database)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")).scalar_one()


def settle(pipeline, count, timeout=240):
    """Poll until ``count`` deliveries are settled; fail with a summary of the ledger's states."""
    deadline = time.monotonic() + timeout
    while not pipeline.all_settled(count):
        if time.monotonic() > deadline:
            states = collections.Counter((d.status, d.attempts, d.last_error) for d in pipeline.deliveries())
            raise AssertionError(f"{count} deliveries not settled in {timeout}s: {dict(states)}")
        time.sleep(0.1)


def test_workers_failing_every_attempt_on_a_few_hooks_neither_deadlock_nor_lose_leases(pipeline_factory, peer):
    # patient timeouts: this test's receiver shares two cores with 3 workers (a timed-out
    # attempt is legitimate, but not what this test is about)
    pipeline = pipeline_factory(max_attempts=MAX_ATTEMPTS, retry_schedule="0.05", read_timeout=5,
                                connect_timeout=2)
    seen = collections.Counter()
    lock = threading.Lock()

    def refuse(recorded):
        with lock:
            seen[recorded.headers["webhook-id"]] += 1
        return 500, {}, {"message": "failed"}

    for n in range(GROUPS):
        peer.routes[f"/fail-{n}"] = refuse
        pipeline.tenant.create_group({"name": f"G{n}", "hooks": [{"type": "order_created",
                                                                  "endpoint": peer.url(f"/fail-{n}")}]})
    before = deadlocks(pipeline.engine)
    workers = [pipeline.start("worker", "--concurrency", "8") for _ in range(WORKERS)]
    pipeline.start("scheduler")

    for n in range(TRIGGERS):
        pipeline.emit("order_created", order(n + 1))
    count = TRIGGERS * GROUPS
    settle(pipeline, count)
    assert all(w.proc.poll() is None for w in workers), "a worker stopped: its leases were rightly taken back"
    # a backend reports its statistics at the latest when it exits: stop every process first
    pipeline.close()
    pipeline.engine.dispose()

    rows = pipeline.deliveries()
    assert collections.Counter((row.status, row.attempts) for row in rows) == {("dead", MAX_ATTEMPTS): count}
    with pipeline.engine.connect() as conn:
        recorded = conn.execute(sa.text(
            "SELECT error_kind, status_code, count(*) FROM attempts GROUP BY error_kind, status_code")).all()
        numbers = conn.execute(sa.text(
            "SELECT delivery_id, array_agg(number ORDER BY number) FROM attempts GROUP BY delivery_id")).all()
    # every attempt was recorded with what the receiver did, none is a lease taken back from a
    # live worker (error_kind worker_lost)
    kinds = {(kind, code): n for kind, code, n in recorded}
    assert sum(kinds.values()) == count * MAX_ATTEMPTS
    assert set(kinds) <= {("http_status", 500), ("timeout", None)}, kinds
    assert {tuple(n) for _, n in numbers} == {tuple(range(1, MAX_ATTEMPTS + 1))} and len(numbers) == count
    # no attempt was made twice (as a lost lease would): at most one request per attempt
    assert set(seen) == {row.id for row in rows} and max(seen.values()) <= MAX_ATTEMPTS
    assert deadlocks(pipeline.engine) == before, "PostgreSQL detected deadlocks"
