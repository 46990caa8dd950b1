"""PostgreSQL faults mid-batch: the service's connections killed again and again
(pg_terminate_backend), and a server of the test's own stopped immediately and started
again. Requests are in flight and triggers keep arriving meanwhile; nothing may be lost.

(The PostgreSQL restart case replaces tests/e2e/test_database_outage.py, which cut the
database off behind a TCP proxy: the restart cuts every connection and refuses new ones the
same way, and then brings back a server that went through crash recovery.)
"""

import collections
import threading

import sqlalchemy as sa

from tests.support.servers import held

#: the connections of the service's processes carry this name, so the test kills only those
VICTIM = "doo-webhooks-fault-victim"


class BackendKiller:
    """Terminates every backend of the service (its worker's and scheduler's connections,
    busy or idle in their pools); counts what it terminated."""

    def __init__(self, engine):
        self.engine = engine
        self.rounds = self.terminated = 0
        self.mid_batch = 0  # rounds that terminated something while deliveries were still owed

    def kill(self):
        with self.engine.begin() as conn:
            owed = conn.execute(sa.text(
                "SELECT count(*) FROM deliveries WHERE status NOT IN ('delivered', 'dead')")).scalar_one()
            killed = conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name AND pid <> pg_backend_pid()"),
                {"name": VICTIM}).scalar_one()
        self.rounds += 1
        self.terminated += killed
        self.mid_batch += bool(killed and owed)


def failing_twice():
    """500 to the first two requests of each webhook-id, then 200: every delivery needs three
    attempts, so the batch keeps the ledger busy while its connections die."""
    seen = collections.Counter()
    lock = threading.Lock()

    def route(recorded):
        with lock:
            seen[recorded.headers["webhook-id"]] += 1
            n = seen[recorded.headers["webhook-id"]]
        return (500, {}, {"message": "not yet"}) if n <= 2 else (200, {}, {"message": "ok"})
    return route


def test_backends_terminated_repeatedly_mid_batch(make_pipeline, peer, fault_case):
    case = fault_case("PostgreSQL backends terminated (pg_terminate_backend), 20 times mid-batch")
    pipeline = make_pipeline()
    url = sa.engine.make_url(pipeline.env["DOO_WEBHOOKS_DATABASE_URL"])
    pipeline.env["DOO_WEBHOOKS_DATABASE_URL"] = url.update_query_dict({"application_name": VICTIM}).render_as_string(
        hide_password=False)
    peer.routes["/crm"] = failing_twice()
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")

    killer = BackendKiller(pipeline.engine)
    # ten rounds: a batch of triggers, and as soon as the receiver sees it coming, every
    # connection of the service is cut, twice, while fan-out, sending and recording run
    for round_ in range(10):
        seen = len(peer.requests)
        case.emit(pipeline, 6, 6000 + 10 * round_)
        peer.wait_for(lambda p: len(p.requests) > seen, what="the batch being sent")
        killer.kill()
        killer.kill()

    case.finish(pipeline, peer, notes=f"{killer.terminated} backends terminated in {killer.rounds} rounds, "
                                      f"{killer.mid_batch} of them mid-batch; each delivery failed twice first")


def test_postgresql_restarted_mid_batch(make_pipeline, own_postgres, peer, fault_case):
    case = fault_case("PostgreSQL stopped (immediate) mid-batch, restarted")
    pipeline = make_pipeline(database_url=own_postgres.url)
    release = threading.Event()
    peer.routes["/crm"] = held(release, free=5)
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    worker = pipeline.start("worker", "--concurrency", "2")
    scheduler = pipeline.start("scheduler")

    case.emit(pipeline, 30, 7000)
    peer.wait_for(lambda p: len(p.requests) >= 10, what="requests in flight")
    # requests in flight when the database goes: their results cannot be recorded for now
    own_postgres.stop_immediately()
    release.set()
    scheduler.wait_output("dispatch_due failed")
    case.emit(pipeline, 10, 7100)  # they wait in the stream: the intake cannot fan out
    worker.wait_output("intake paused")
    own_postgres.start()

    case.finish(pipeline, peer, notes="10 triggers emitted while it was down")
