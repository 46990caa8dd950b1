"""The send loop (workers.sender) on a real ledger and real receivers on 127.0.0.1: what it
claims, that slow receivers never hold healthy ones up, that retries never starve first
attempts, and that a nudge is never lost."""

import threading
import time

import pytest
import sqlalchemy as sa

from storage.db import engine_for
from storage.db import utcnow
from storage.tables import deliveries
from tests.conftest import make_settings
from tests.integration.test_fanout import add_group
from tests.integration.test_fanout import organization
from tests.integration.test_fanout import trigger
from tests.support.servers import Peer
from workers.context import WorkerContext
from workers.fanout import fan_out
from workers.sender import Sender


class NoPublisher:
    def nudge(self):
        pass

    def deliveries(self, ids):
        pass


@pytest.fixture
def engine(pg_database_url):
    return engine_for(pg_database_url)


@pytest.fixture
def peers():
    made = []

    def make():
        made.append(Peer())
        return made[-1]
    yield make
    for peer in made:
        peer.close()


class Running:
    """A Sender on a thread of its own, stopped (drained) at the end of the test."""

    def __init__(self, settings, **kwargs):
        self.ctx = WorkerContext.create(settings, NoPublisher())
        self.sender = Sender(self.ctx, **kwargs)
        self.thread = threading.Thread(target=self.sender.run, kwargs={"drain_seconds": 10}, daemon=True)
        self.thread.start()

    def stop(self):
        self.sender.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()


def statuses(engine, ids):
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(deliveries.c.id, deliveries.c.status).where(deliveries.c.id.in_(ids))).all())


def wait(predicate, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_healthy_receiver_is_served_while_slow_ones_hold_every_slot_they_may(tmp_path, engine, pg_database_url,
                                                                            peers):
    release = threading.Event()
    slow = [peers() for _ in range(4)]
    for peer in slow:
        peer.routes["/slow"] = lambda r: (release.wait(30), (200, {}, {"message": "ok"}))[1]
    healthy = peers()
    healthy.routes["/ok"] = lambda r: (200, {}, {"message": "ok"})
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", peer.url("/slow")) for peer in slow])
    add_group(engine, tenant, [("order_updated", healthy.url("/ok"))])
    # 4 slow hosts x 2 slots = 8 > the room of 6: without a share kept for healthy hosts, the
    # slow ones would take it all
    settings = make_settings(tmp_path, pg_database_url, dispatch_interval=0.05)
    running = Running(settings, capacity=6, per_host=2)
    try:
        slow_ids = [i for n in range(5) for i in fan_out(engine, trigger(tenant, "order_created", entity_id=n), utcnow())]
        wait(lambda: sum(len(peer.requests) for peer in slow) == 8, what="every slow host at its cap")
        (healthy_id,) = fan_out(engine, trigger(tenant, "order_updated", entity_id=99), utcnow())
        running.sender.nudge()
        wait(lambda: statuses(engine, [healthy_id]) == {healthy_id: "delivered"}, what="the healthy delivery")
        assert sum(len(peer.requests) for peer in slow) == 8  # the slow ones are still held
        assert set(statuses(engine, slow_ids).values()) == {"in_flight", "pending"}
    finally:
        release.set()
        running.stop()
    assert set(statuses(engine, slow_ids).values()) <= {"delivered", "pending"}


def test_first_attempts_flow_beside_a_storm_of_retries(tmp_path, engine, pg_database_url, peers):
    release = threading.Event()
    failing, fresh = peers(), peers()
    failing.routes["/down"] = lambda r: (release.wait(30), (500, {}, {"message": "down"}))[1]
    fresh.routes["/up"] = lambda r: (200, {}, {"message": "ok"})
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", failing.url("/down"))])
    add_group(engine, tenant, [("order_updated", fresh.url("/up"))])
    retries = [i for n in range(12) for i in fan_out(engine, trigger(tenant, "order_created", entity_id=n), utcnow())]
    with engine.begin() as conn:  # every one of them already failed once: they are retries
        conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(retries)).values(status="retrying", attempts=1))
    settings = make_settings(tmp_path, pg_database_url, dispatch_interval=0.05)
    running = Running(settings, capacity=8, per_host=100)  # the retry lane has room for 2
    try:
        wait(lambda: len(failing.requests) == 2, what="the retry lane full")
        firsts = [i for n in range(5) for i in fan_out(engine, trigger(tenant, "order_updated", entity_id=n), utcnow())]
        running.sender.nudge()
        wait(lambda: set(statuses(engine, firsts).values()) == {"delivered"}, what="the first attempts")
        assert len(failing.requests) == 2  # the retries held their lane, and only theirs
    finally:
        release.set()
        running.stop()


def test_a_nudge_during_a_claim_is_not_lost(tmp_path, engine, pg_database_url, peers):
    """With the poll far away (60 s), only nudges make the loop claim: a row stored and nudged
    for right after another claim started must still go out at once."""
    peer = peers()
    peer.routes["/ok"] = lambda r: (200, {}, {"message": "ok"})
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", peer.url("/ok"))])
    settings = make_settings(tmp_path, pg_database_url, dispatch_interval=60)
    running = Running(settings)
    try:
        for n in range(30):  # each stored and nudged while the loop may be mid-claim
            (delivery_id,) = fan_out(engine, trigger(tenant, entity_id=n), utcnow())
            running.sender.nudge()
            wait(lambda: statuses(engine, [delivery_id]) == {delivery_id: "delivered"}, timeout=5,
                 what=f"delivery {n} without waiting for the poll")
    finally:
        running.stop()
