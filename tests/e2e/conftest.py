"""The whole pipeline for real: PostgreSQL, Redis, the doo-webhooks worker and scheduler as
processes, and HTTP peers on 127.0.0.1."""

import time

import pytest
import redis
import sqlalchemy as sa

from app import create_app
from ground import settings as settings_module
from storage.db import engine_for
from tests.conftest import TEST_KEY
from tests.support import isolation
from tests.support.processes import Process
from tests.support.processes import environment
from tests.support.servers import Peer
from tests.support.tenants import new_tenant
from workers.producer import StreamPublisher
from workers.producer import emit

# Another Redis database lets two test runs share one Redis without taking each other's messages.
BROKER = isolation.redis_url("DOO_WEBHOOKS_TEST_E2E_BROKER")


class Pipeline:
    def __init__(self, database_url, tmp_path, broker=BROKER, **overrides):
        """``broker``: the Redis of the streams and the token cache (a fault test may bring its own)."""
        self.broker = broker
        self.env = {
            "DOO_WEBHOOKS_DATABASE_URL": database_url, "DOO_WEBHOOKS_BROKER_URL": broker,
            "DOO_WEBHOOKS_REDIS_URL": broker, "DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DOO_WEBHOOKS_RETRY_SCHEDULE": "0.1", "DOO_WEBHOOKS_RETRY_JITTER": "0",
            "DOO_WEBHOOKS_DISPATCH_INTERVAL": "0.1",
            "DOO_WEBHOOKS_CONNECT_TIMEOUT": "1", "DOO_WEBHOOKS_READ_TIMEOUT": "1", "DOO_WEBHOOKS_LEASE_SECONDS": "1",
            "DOO_WEBHOOKS_SECRET_KEYS": TEST_KEY, "DOO_WEBHOOKS_LOG_FORMAT": "json",
            "DOO_WEBHOOKS_DATA_DIR": str(tmp_path),
        }
        self.env.update({f"DOO_WEBHOOKS_{k.upper()}": str(v) for k, v in overrides.items()})
        self.settings = settings_module.from_env(self.env)
        self.engine = engine_for(database_url)
        self.tmp_path = tmp_path
        self.processes = []
        self.app = create_app(self.settings, publisher=StreamPublisher(broker))
        self.client = self.app.test_client()
        self.tenant = new_tenant(self.app, self.client)

    def start(self, what, *args):
        process = Process([what, *args], environment(self.env), self.tmp_path / f"{what}-{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def emit(self, trigger_type, entity, **kwargs):
        kwargs.setdefault("organization_id", self.tenant.organization_id)
        return emit(trigger_type, entity, broker_url=self.broker, **kwargs)

    def deliveries(self):
        with self.engine.begin() as conn:
            return conn.execute(sa.text("SELECT * FROM deliveries ORDER BY created_at")).all()

    def attempts(self, delivery_id):
        with self.engine.begin() as conn:
            return conn.execute(sa.text("SELECT * FROM attempts WHERE delivery_id = :d ORDER BY number"),
                                {"d": delivery_id}).all()

    def wait_until(self, predicate, timeout=60, what="condition"):
        """Poll the ledger until ``predicate()`` holds; fail with the ledger's state otherwise."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                states = [(d.status, d.attempts, d.last_status_code, d.last_error) for d in self.deliveries()]
                raise AssertionError(f"timed out waiting for {what}; deliveries: {states}")
            time.sleep(0.05)

    def all_settled(self, count):
        rows = self.deliveries()
        return len(rows) == count and all(r.status in ("delivered", "dead", "cancelled", "skipped") for r in rows)

    def logs(self):
        return "\n".join(p.log.name and open(p.log.name).read() for p in self.processes)

    def close(self):
        for process in self.processes:
            process.stop()


@pytest.fixture
def peer():
    server = Peer()
    yield server
    server.close()


@pytest.fixture
def pipeline_factory(pg_database_url, tmp_path):
    redis.Redis.from_url(BROKER).flushdb()
    made = []

    def make(**overrides):
        made.append(Pipeline(pg_database_url, tmp_path, **overrides))
        return made[-1]
    yield make
    for pipeline in made:
        pipeline.close()


@pytest.fixture
def pipeline(pipeline_factory):
    """A pipeline with one worker and one scheduler running."""
    made = pipeline_factory()
    made.start("worker", "--concurrency", "4")
    made.start("scheduler")
    return made


def order(order_id, status="active", event_id=7, **extra):
    return {"order_details": {"id": order_id, "status": status}, "event": {"id": event_id}, **extra}


def event(event_id, status="live", **extra):
    return {"id": event_id, "status": status, **extra}
