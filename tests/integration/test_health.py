"""/healthz, /readyz and /metrics of the API, and the readiness checks against real servers."""

import pytest
import redis
import sqlalchemy as sa

from workers import health
from doo_webhooks.standalone import InlinePublisher
from storage.tables import deliveries
from tests.conftest import REDIS_URL
from tests.support.observability import free_port
from tests.support.observability import metric

UNREACHABLE_PG = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"


def test_healthz(client):
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})


def test_readyz_on_both_databases(client):
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json) == (200, {"status": "ok", "checks": {"database": "ok", "broker": "ok"}})


def test_readyz_without_its_database(make_app):
    answer = make_app(database_url=UNREACHABLE_PG).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json == {"status": "unavailable", "checks": {"database": "failed: OperationalError",
                                                               "broker": "ok"}}


def test_readyz_without_its_broker(make_app):
    answer = make_app(broker_url=f"redis://127.0.0.1:{free_port()}/0").test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["checks"] == {"database": "ok", "broker": "failed: ConnectionError"}


def test_a_missing_sqlite_file_is_not_ready_and_not_created(tmp_path):
    missing = tmp_path / "nothing-here.sqlite3"
    try:
        health.check_database(f"sqlite:///{missing}")
    except Exception as exc:
        assert "unable to open" in str(exc)
    else:
        raise AssertionError("a missing SQLite file passed the check")
    assert not missing.exists()


def test_in_process_broker_is_always_ready():
    health.check_broker("memory://")  # standalone's queue lives in the process


def test_a_broker_that_is_not_redis_is_really_checked():
    """Only memory:// passes unchecked: any other URL must reach its server."""
    with pytest.raises(Exception):
        health.check_broker(f"amqp://guest:guest@127.0.0.1:{free_port()}//")


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_readyz_says_the_broker_is_down_when_it_is(make_app, broker):
    url = {"redis": f"redis://127.0.0.1:{free_port()}/0", "amqp": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    answer = make_app(broker_url=url[broker]).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.json["status"] == "unavailable"
    assert answer.json["checks"]["broker"].startswith("failed: ")
    assert answer.json["checks"]["database"] == "ok"


def test_ops_endpoints_stay_out_of_the_openapi_document(client):
    paths = client.get("/v1/openapi.json").json["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
    assert all(path.startswith("/v1/") for path in paths)


def test_metrics_count_requests_by_url_rule(client, tenant_factory):
    tenant = tenant_factory()
    before = metric(client.get("/metrics").get_data(as_text=True), "doo_webhooks_api_requests_total",
                    endpoint="/v1/webhooks/<group_id>", method="GET", status="404")
    for group in ("a", "b", "c"):
        client.get(f"/v1/webhooks/{group}", headers=tenant.headers())
    client.get("/no/such/path")
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "doo_webhooks_api_requests_total", endpoint="/v1/webhooks/<group_id>", method="GET",
                  status="404") == before + 3  # one series for every group id
    assert metric(text, "doo_webhooks_api_requests_total", endpoint="<unmatched>", method="GET", status="404") >= 1
    assert metric(text, "doo_webhooks_api_request_duration_seconds_count", endpoint="/v1/webhooks/<group_id>") >= 3
    assert metric(text, "doo_webhooks_deliveries_due") == 0


def test_refused_requests_are_counted_too(client):
    refused = client.post("/v1/triggers", data="x", content_type="text/plain")  # no key, no JSON
    assert refused.status_code in (401, 415)
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "doo_webhooks_api_requests_total", endpoint="/v1/triggers", method="POST",
                  status=str(refused.status_code)) >= 1


def test_services_queue_depth_is_the_triggers_waiting_in_every_stream():
    from app.ops import _stream_depths
    from workers.intake import RedisStreams
    url = REDIS_URL
    redis.Redis.from_url(url).flushdb()
    try:
        assert _stream_depths(url)() == {"triggers": 0}
        RedisStreams(url).publish([{"organization_id": 1, "entity_kind": "order", "entity_id": str(n), "entity": {}}
                                   for n in range(5)])  # spread over several partitions
        assert _stream_depths(url)() == {"triggers": 5}
    finally:
        redis.Redis.from_url(url).flushdb()


def test_standalone_queue_depths_are_the_triggers_in_the_inbox_and_the_deliveries_in_flight(settings):
    """InlinePublisher.queue_depths with the real engine: triggers count until the intake fans
    them out, deliveries while the send loop holds them (claimed, not yet recorded)."""
    import threading
    import time

    from storage import groups
    from storage import tenancy
    from storage.db import utcnow
    from tests.support.servers import Peer
    from workers import intake
    from workers.context import WorkerContext
    from workers.engine import Engine
    from workers.producer import prepare

    peer, release = Peer(), threading.Event()
    peer.routes["/in"] = lambda recorded: (release.wait(30), (200, {}, {"ok": True}))[1]
    ctx = WorkerContext.create(settings, None)
    publisher = ctx.publisher = InlinePublisher(ctx.engine)
    engine = publisher.delivery_engine = Engine(ctx, intake.InboxConsumer(ctx.engine))
    with ctx.engine.begin() as conn:
        org = tenancy.create_organization(conn, "Org", utcnow())
        team = tenancy.create_team(conn, org, "Team", utcnow())
        groups.insert_group(conn, {"id": "00000000-0000-4000-8000-000000000001", "organization_id": org,
                                   "team_id": team, "name": "g", "created_at": utcnow(), "updated_at": utcnow()},
                            [{"type": "order_created", "type_key": "order_created", "method": "POST",
                              "endpoint": peer.url("/in")}])

    def depths_become(expected, timeout=30):
        deadline = time.monotonic() + timeout
        while publisher.queue_depths() != expected:
            assert time.monotonic() < deadline, f"queue depths {publisher.queue_depths()}, expected {expected}"
            time.sleep(0.02)

    try:
        publisher.triggers([prepare("order_created", {"order_details": {"id": n, "status": "active"},
                                                      "event": {"id": 7}}, organization_id=org) for n in (1, 2)])
        # the engine is not running yet: both wait in the inbox, nothing is in flight
        assert publisher.queue_depths() == {"triggers": 2, "deliveries": 0}
        engine.start()
        peer.wait_for(lambda p: len(p.at("/in")) == 2, what="both deliveries at the receiver")
        depths_become({"triggers": 0, "deliveries": 2})  # fanned out, both held by the send loop
        release.set()
        depths_become({"triggers": 0, "deliveries": 0})
        with ctx.engine.connect() as conn:
            assert [row.status for row in conn.execute(sa.select(deliveries.c.status))] == ["delivered"] * 2
    finally:
        release.set()
        engine.stop()
        peer.close()
        ctx.pool.shutdown(wait=False)

