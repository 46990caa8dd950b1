"""The fault suite: each case breaks the running pipeline on purpose (real PostgreSQL, Redis,
``doo-webhooks`` processes and receivers on 127.0.0.1) and checks that nothing was lost.

Each case records a row through the ``fault_case`` fixture (tests.support.fault_report);
at the end of the run tests/conftest.py prints the table (CI runs README's test command, so
its log carries it) and writes it to ``DOO_WEBHOOKS_FAULT_REPORT`` (default
``<rootdir>/.fault-report.md``). docs/faults.md says what each case breaks.
"""

import time

import pytest
import sqlalchemy as sa

from storage.migrate import upgrade
from tests.e2e.conftest import BROKER
from tests.e2e.conftest import Pipeline
from tests.e2e.conftest import order
from tests.e2e.conftest import peer  # noqa: F401 (a fixture, for this directory's tests)
from tests.e2e.conftest import pipeline_factory  # noqa: F401 (a fixture, for this directory's tests)
from tests.support import fault_report
from tests.support.fault_report import SETTLED
from tests.support.fault_report import tally
from tests.support.own_servers import PostgresServer
from tests.support.own_servers import RedisServer

#: Timeouts short enough that ten attempts at a receiver that never answers take seconds,
#: and a dead worker's lease (3.3 x their sum) runs out in about three.
FAST = {"connect_timeout": "0.5", "read_timeout": "0.5"}
MAX_ATTEMPTS = 10



class FaultCase:
    """One fault case: the triggers it had accepted, then its row of the report and the
    checks every case shares (``finish``)."""

    def __init__(self, name):
        self.name = name
        self.accepted = []
        self.started = time.monotonic()

    def emit(self, pipeline, count, first, trigger_type="order_created", **kwargs):
        """Emit ``count`` triggers for orders ``first``, ``first + 1``, ...; they count as accepted."""
        ids = [pipeline.emit(trigger_type, order(first + n), **kwargs) for n in range(count)]
        self.accepted += ids
        return ids

    def settled(self, engine, per_trigger=1):
        """True when every accepted trigger made its deliveries and all of them are settled."""
        try:
            with engine.begin() as conn:
                rows = conn.execute(sa.text(
                    "SELECT d.status FROM deliveries d JOIN triggers t ON t.id = d.trigger_pk "
                    "WHERE t.trigger_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                    {"ids": self.accepted}).scalars().all()
        except sa.exc.OperationalError:  # the case may have the database down right now
            return False
        return len(rows) == per_trigger * len(self.accepted) and all(status in SETTLED for status in rows)

    def wait_settled(self, engine, per_trigger=1, timeout=60):
        deadline = time.monotonic() + timeout
        while not self.settled(engine, per_trigger):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def finish(self, pipeline, peer, paths=("/crm",), expect="delivered", per_trigger=1, timeout=60, notes=""):
        """Wait for the deliveries to settle, record the row (``sent``: what ``peer`` got at
        ``paths``; ``notes`` text, or a function giving it once settled), then check it: nothing lost,
        every request's webhook-id a delivery of the ledger, no trigger fanned out twice, the
        same bytes on every attempt, and each delivery ``expect``-ed ("delivered", or "dead"
        after exactly MAX_ATTEMPTS attempts)."""
        self.wait_settled(pipeline.engine, per_trigger, timeout)
        received = [r for r in list(peer.requests) if r.path in paths]
        row = tally(self.name, pipeline.engine, self.accepted, received, notes=notes() if callable(notes) else notes)
        row.seconds = time.monotonic() - self.started
        fault_report.CELLS.append(row.cells())
        assert row.lost == 0, (f"{row.lost} lost: deliveries still {dict(row.open_states)}, "
                               f"triggers never fanned out {list(row.not_fanned_out)[:5]}")
        assert row.deliveries == per_trigger * row.triggers
        assert not row.foreign_ids, f"requests with a webhook-id the ledger does not have: {row.foreign_ids[:5]}"
        assert row.fanned_out_twice == 0
        assert not row.bodies_changed, "a retry or duplicate sent other bytes than the first attempt"
        if expect == "delivered":
            assert row.delivered == row.deliveries, row
        else:
            assert row.dead == row.deliveries, row
            assert set(row.dead_attempts) == {MAX_ATTEMPTS}, row.dead_attempts
        return row


@pytest.fixture
def fault_case():
    """``fault_case("what breaks")``: a FaultCase whose row goes into the report."""
    return lambda name: FaultCase(name)


@pytest.fixture
def make_pipeline(pipeline_factory, pg_database_url, tmp_path):  # noqa: F811 (the fixture imported above)
    """A pipeline with the fast timeouts, on the run's PostgreSQL database and Redis unless
    ``database_url`` or ``broker`` name a server of the test's own."""
    made, own = [], []

    def make(database_url=None, broker=None, **overrides):
        settings = {**FAST, **overrides}
        if database_url is None and broker is None:
            made.append(pipeline_factory(**settings))
        else:
            made.append(Pipeline(database_url or pg_database_url, tmp_path, broker=broker or BROKER, **settings))
            own.append(made[-1])
        return made[-1]
    yield make
    # the case is over: SIGKILL rather than a warm shutdown of seconds per process (a fault
    # suite's processes must survive that anyway)
    for pipeline in made:
        for process in pipeline.processes:
            process.kill()
    for pipeline in own:
        pipeline.close()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, without persistence (see RedisServer)."""
    server = RedisServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def own_postgres():
    """A migrated PostgreSQL cluster of this test's own (see PostgresServer)."""
    server = PostgresServer()
    try:
        upgrade(server.url)
        yield server
    finally:
        from storage.db import engine_for
        engine_for(server.url).dispose()
        server.close()
