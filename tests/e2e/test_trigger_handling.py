"""What happens to triggers on their way: per-entity order through retries, idempotent
trigger ids, refusal of a bad entity, cancellation with their group.

(The faults that once lived here, a SIGKILLed worker and a flushed broker, are cases of the
fault suite in tests/faults/ now, with a database outage beside them.)"""

import pytest
import redis
from marshmallow import ValidationError

from tests.e2e.conftest import BROKER
from tests.e2e.conftest import order
from tests.support.servers import scripted


def test_one_orders_deliveries_arrive_in_trigger_order_even_after_retries(pipeline, peer):
    failures = {(77, "active"): 2}  # order 77's order_created fails twice; the rest must wait

    def crm(recorded):
        details = recorded.json()["order_details"]
        left = failures.get((details["id"], details["status"]), 0)
        if left:
            failures[(details["id"], details["status"])] = left - 1
            return 500, {}, {"message": "down"}
        return 200, {}, {"message": "ok"}
    peer.routes["/crm"] = crm
    peer.routes["/other"] = scripted()
    pipeline.tenant.create_group({"name": "CRM", "hooks": [
        {"type": "order_created", "endpoint": peer.url("/crm")},
        {"type": "order_updated", "endpoint": peer.url("/crm")},
        {"type": "order_cancelled", "endpoint": peer.url("/crm")},
        {"type": "order_created", "endpoint": peer.url("/other")},
    ]})

    pipeline.emit("order_created", order(77))
    pipeline.emit("order_updated", order(77, status="pending_organizer_review"))
    pipeline.emit("order_cancelled", order(77, status="organizer_accepted_cancellation"))
    pipeline.emit("order_created", order(78))

    pipeline.wait_until(lambda: pipeline.all_settled(6), what="all delivered")
    sent_77 = [r.json()["order_details"]["status"] for r in peer.at("/crm") if r.json()["order_details"]["id"] == 77]
    assert sent_77 == ["active", "active", "active", "pending_organizer_review", "organizer_accepted_cancellation"]
    # another entity and another endpoint did not wait for order 77's retries
    crm_ids = [r.json()["order_details"]["id"] for r in peer.at("/crm")]
    assert crm_ids.index(78) < len(crm_ids) - 1
    assert sorted(r.json()["order_details"]["id"] for r in peer.at("/other")) == [77, 78]


def test_deleting_a_group_cancels_what_it_still_owed(pipeline_factory, peer):
    pipeline = pipeline_factory(retry_schedule="3600")
    pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    peer.routes["/crm"] = scripted(then=500)
    group_id = pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created",
                                                                       "endpoint": peer.url("/crm")}]})
    pipeline.emit("order_created", order(90))
    pipeline.wait_until(lambda: [r.status for r in pipeline.deliveries()] == ["retrying"], what="a retry pending")

    pipeline.tenant.delete_group(group_id)

    assert [r.status for r in pipeline.deliveries()] == ["cancelled"]


def test_the_same_trigger_id_fans_out_once(pipeline, peer):
    peer.routes["/crm"] = scripted()
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})

    for _ in range(3):
        pipeline.emit("order_created", order(91), trigger_id="platform-event-91")
    pipeline.emit("order_created", order(92), trigger_id="platform-event-92")

    pipeline.wait_until(lambda: pipeline.all_settled(2), what="two delivered")
    assert sorted(r.json()["order_details"]["id"] for r in peer.at("/crm")) == [91, 92]


@pytest.mark.parametrize("entity, field", [
    ({"order_details": {"status": "active"}, "event": {"id": 7}}, "order_details"),
    ({"order_details": {"id": 1, "status": "lost"}, "event": {"id": 7}}, "order_details"),
    ({"order_details": {"id": 1, "status": "active"}}, "event"),
])
def test_a_bad_entity_is_refused_at_emit_and_at_the_http_endpoint_and_nothing_is_queued(
        pipeline_factory, entity, field):
    pipeline = pipeline_factory()
    broker = redis.Redis.from_url(BROKER)
    from storage import tenancy
    from storage.db import utcnow
    from ground.crypto import digest
    with pipeline.engine.begin() as conn:
        tenancy.create_platform_key(conn, "platform", digest("platform-key"), utcnow())

    with pytest.raises(ValidationError) as raised:
        pipeline.emit("order_created", entity)
    assert field in raised.value.messages["entity"]
    answer = pipeline.client.post("/v1/triggers", headers={"x-api-key": "platform-key"}, json={
        "type": "order_created", "entity": entity, "organization_id": pipeline.tenant.organization_id})
    assert answer.status_code == 400
    assert field in answer.json["errors"]["entity"]

    assert broker.llen("triggers") == 0
    assert broker.keys("*") == []
