"""Several schedulers and several workers at once, as docs/deployment.md allows: every attempt
is made once. The SQL behind it (claim_due and claim with SKIP LOCKED) is tested in
tests/integration/test_ledger.py (test_concurrent_claim_due_never_returns_the_same_id, ...)."""

import collections
import threading

from tests.e2e.conftest import order

FAILURES = 2  # each delivery is refused twice: its retries are the schedulers' work


def test_three_schedulers_and_two_workers_make_each_attempt_once(pipeline_factory, peer):
    pipeline = pipeline_factory(max_attempts=5)
    for _ in range(2):
        pipeline.start("worker", "--concurrency", "8")
    for _ in range(3):
        pipeline.start("scheduler")
    seen = collections.Counter()
    lock = threading.Lock()

    def receiver(recorded):
        with lock:
            seen[recorded.headers["webhook-id"]] += 1
            refused = seen[recorded.headers["webhook-id"]] <= FAILURES
        return (503, {}, {"message": "busy"}) if refused else (200, {}, {"message": "ok"})

    peer.routes["/crm"] = receiver
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created",
                                                            "endpoint": peer.url("/crm")}]})
    count = 30
    for n in range(count):
        pipeline.emit("order_created", order(n + 1))
    pipeline.wait_until(lambda: pipeline.all_settled(count), what=f"{count} settled deliveries")

    rows = pipeline.deliveries()
    assert {row.status for row in rows} == {"delivered"}
    assert {row.attempts for row in rows} == {FAILURES + 1}, [
        [(a.number, a.status_code, a.error_kind, a.duration_ms) for a in pipeline.attempts(row.id)]
        for row in rows if row.attempts != FAILURES + 1]
    # the receiver saw each attempt exactly once, and the ledger kept each one
    assert seen == {row.id: FAILURES + 1 for row in rows}
    for row in rows:
        assert [a.number for a in pipeline.attempts(row.id)] == list(range(1, FAILURES + 2))
