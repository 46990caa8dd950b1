"""Per-entity order with fan-out spread over several worker processes: every receiver sees each
entity's triggers in the order they were emitted, with no delay before first attempts."""

import collections

from tests.e2e.conftest import BROKER
from tests.e2e.conftest import order
from workers.producer import emit_many

ENTITIES = 30
UPDATES = 5


def test_each_entitys_deliveries_arrive_in_emit_order_across_three_workers(pipeline_factory, peer):
    pipeline = pipeline_factory()
    for _ in range(3):
        pipeline.start("worker", "--concurrency", "4")
    pipeline.start("scheduler")
    arrived = collections.defaultdict(list)
    peer.routes["/crm"] = lambda r: (arrived[r.json()["order_details"]["id"]].append(r.json()["step"]),
                                     (200, {}, {"message": "ok"}))[1]
    peer.routes["/erp"] = lambda r: (200, {}, {"message": "ok"})
    pipeline.tenant.create_group({"name": "CRM", "hooks": [
        {"type": t, "endpoint": peer.url(path)} for t in ("order_created", "order_updated") for path in ("/crm", "/erp")]})

    # interleaved: step 0 of every entity, then step 1 of every entity, ...; half one by one,
    # half in batches, so the workers fan them out in many batches and partitions at once
    for step in range(UPDATES):
        batch = [{"type": "order_created" if step == 0 else "order_updated", "entity": order(n, step=step),
                  "organization_id": pipeline.tenant.organization_id} for n in range(ENTITIES)]
        if step % 2:
            emit_many(batch, broker_url=BROKER)
        else:
            for trigger in batch:
                pipeline.emit(trigger["type"], trigger["entity"])

    pipeline.wait_until(lambda: pipeline.all_settled(2 * ENTITIES * UPDATES), timeout=120, what="all delivered")
    assert {row.status for row in pipeline.deliveries()} == {"delivered"}
    assert dict(arrived) == {n: list(range(UPDATES)) for n in range(ENTITIES)}
