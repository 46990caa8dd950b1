"""PostgreSQL goes away in the middle of a batch and comes back: nothing is lost."""

import threading

import sqlalchemy as sa

from tests.e2e.conftest import order
from tests.support.observability import TcpProxy

DELIVERIES = 30


def test_a_database_outage_mid_batch_loses_no_delivery(pipeline_factory, peer):
    pipeline = pipeline_factory()
    direct = sa.engine.make_url(pipeline.env["DOO_WEBHOOKS_DATABASE_URL"])
    proxy = TcpProxy(direct.port or 5432)
    # the worker and the scheduler reach PostgreSQL only through the proxy; the test directly
    pipeline.env["DOO_WEBHOOKS_DATABASE_URL"] = direct.set(port=proxy.port).render_as_string(hide_password=False)
    release = threading.Event()

    def held(recorded):
        release.wait(timeout=60)
        return 200, {}, {"message": "ok"}
    peer.routes["/crm"] = held
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    pipeline.start("worker", "--concurrency", "8")
    scheduler = pipeline.start("scheduler")
    for n in range(DELIVERIES):
        pipeline.emit("order_created", order(3000 + n))
    peer.wait_for(lambda p: len(p.requests) >= 4, what="requests in flight")

    # Given requests in flight, when the database disappears before their results are recorded
    proxy.close()
    release.set()
    pipeline.wait_until(lambda: "dispatch_due failed" in open(scheduler.log.name).read(),
                        what="the scheduler noticing the outage")
    # and comes back on the same address
    proxy = TcpProxy(direct.port or 5432, port=proxy.port)
    try:
        # then every delivery is delivered in the end (duplicates allowed, same webhook-id)
        pipeline.wait_until(lambda: pipeline.all_settled(DELIVERIES), timeout=120, what="all delivered")
        assert {row.status for row in pipeline.deliveries()} == {"delivered"}
        received = {r.json()["order_details"]["id"] for r in peer.at("/crm")}
        assert received == set(range(3000, 3000 + DELIVERIES))
        assert {r.headers["webhook-id"] for r in peer.at("/crm")} == {row.id for row in pipeline.deliveries()}
    finally:
        pipeline.close()
        proxy.close()
