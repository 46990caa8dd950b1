"""Trust, end to end (issue 10): real worker processes, real receivers on 127.0.0.1.

- A receiver that verifies with the Standard Webhooks package from PyPI (not our code)
  accepts every request before, during and after a rotation of the signing secret.
- A receiver limited to 5 requests a second never sees more in any one-second window, with
  three worker processes sending, and every delivery is delivered in one attempt.
- A 429 with Retry-After pauses that endpoint for every delivery, and no other.
"""

import threading
import time

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from storage.db import utcnow
from tests.e2e.conftest import order


def create(pipeline, config):
    answer = pipeline.client.post(f"/v1/team/{pipeline.tenant.team_id}/webhooks", json=config,
                                  headers=pipeline.tenant.headers())
    assert answer.status_code == 200, answer.json
    return answer.json


def one_attempt_each(pipeline):
    with pipeline.engine.begin() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM attempts")).scalar_one()


class VerifyingReceiver:
    """Accepts a request only when the Standard Webhooks package verifies it with the secret
    the receiver holds now (it switches when its operator updates it)."""

    def __init__(self, peer, path, secret):
        self.secret = secret
        self.verified, self.refused = [], []
        peer.routes[path] = self.route

    def route(self, recorded):
        try:
            Webhook(self.secret).verify(recorded.body, recorded.headers)
        except WebhookVerificationError as exc:
            self.refused.append((recorded.headers.get("webhook-id"), str(exc)))
            return 401, {}, {"message": "bad signature"}
        self.verified.append(recorded.headers["webhook-id"])
        return 200, {}, {"message": "ok"}


def test_a_standard_webhooks_receiver_verifies_every_request_through_a_rotation(pipeline, peer):
    created = create(pipeline, {"name": "CRM", "generate_signing_secret": True,
                                "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    group_id, first = created["data"], created["signing_secret"]
    receiver = VerifyingReceiver(peer, "/crm", first)
    sent = 0

    def deliver(count, base):
        nonlocal sent
        for n in range(count):
            pipeline.emit("order_created", order(base + n))
        sent += count
        pipeline.wait_until(lambda: pipeline.all_settled(sent), what=f"{sent} settled")

    deliver(5, 100)  # before
    rotated = pipeline.client.post(f"/v1/webhooks/{group_id}/secret/rotate", json={"grace_seconds": 3},
                                   headers=pipeline.tenant.headers()).json["data"]
    second = rotated["signing_secret"]
    deliver(5, 200)  # during the grace period, the receiver still on the first secret
    receiver.secret = second
    deliver(5, 300)  # during, the receiver on the new secret
    with pipeline.engine.begin() as conn:  # the grace period's end, on the clock the worker reads
        until = conn.execute(sa.text("SELECT previous_signing_until FROM webhook_groups WHERE id = :g"),
                             {"g": group_id}).scalar_one()
    pipeline.wait_until(lambda: utcnow() > until, what="the grace period's end")
    deliver(5, 400)  # after

    assert receiver.refused == []
    assert len(receiver.verified) == 20 and one_attempt_each(pipeline) == 20
    assert {row.status for row in pipeline.deliveries()} == {"delivered"}
    # and after the grace period the first secret no longer verifies anything
    last = [r for r in peer.at("/crm") if r.json()["order_details"]["id"] >= 400]
    assert len(last) == 5 and all(len(r.headers["webhook-signature"].split()) == 1 for r in last)
    for request in last:
        try:
            Webhook(first).verify(request.body, request.headers)
        except WebhookVerificationError:
            continue
        raise AssertionError("the first secret still signs after its grace period")


def test_a_receiver_limited_to_5_a_second_never_sees_more_with_three_workers(pipeline_factory, peer):
    pipeline = pipeline_factory()
    arrivals, lock = [], threading.Lock()

    def crm(recorded):
        with lock:
            arrivals.append(time.monotonic())
        return 200, {}, {"message": "ok"}
    peer.routes["/crm"] = crm
    create(pipeline, {"name": "CRM", "max_per_second": 50,  # the hook's own limit wins
                      "hooks": [{"type": "order_created", "endpoint": peer.url("/crm"), "max_per_second": 5}]})
    for _ in range(3):
        pipeline.start("worker", "--concurrency", "16")
    pipeline.start("scheduler")
    count = 40
    for n in range(count):
        pipeline.emit("order_created", order(500 + n))
    pipeline.wait_until(lambda: pipeline.all_settled(count), timeout=60, what="all delivered")

    assert {row.status for row in pipeline.deliveries()} == {"delivered"}
    assert one_attempt_each(pipeline) == count  # waiting for the limit is not an attempt
    assert len(arrivals) == count
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1) for start in arrivals)
    assert busiest <= 5, f"{busiest} requests within one second"
    # and the limit is a limit, not a crawl: 40 requests at 5 a second take about 8 seconds
    assert arrivals[-1] - arrivals[0] < 20


def test_retry_after_pauses_that_endpoint_and_no_other(pipeline, peer):
    refused_at = []

    def busy(recorded):
        if not refused_at:
            refused_at.append(time.monotonic())
            return 429, {"Retry-After": "3"}, {"message": "slow down"}
        return 200, {}, {"message": "ok"}
    peer.routes["/busy"] = busy
    peer.routes["/calm"] = lambda recorded: (200, {}, {"message": "ok"})
    create(pipeline, {"name": "Busy", "hooks": [{"type": "order_created", "endpoint": peer.url("/busy")}]})
    create(pipeline, {"name": "Calm", "hooks": [{"type": "order_created", "endpoint": peer.url("/calm")}]})

    pipeline.emit("order_created", order(1))
    with pipeline.engine.begin() as conn:
        pipeline.wait_until(lambda: conn.execute(sa.text(
            "SELECT count(*) FROM hooks WHERE paused_until IS NOT NULL")).scalar_one() == 1, what="the pause")
    for n in range(2, 12):
        pipeline.emit("order_created", order(n))
    pipeline.wait_until(lambda: pipeline.all_settled(22), timeout=60, what="all delivered")

    calm = [r.arrived for r in peer.at("/calm")]
    busy_after = [r.arrived for r in peer.at("/busy")][1:]
    assert len(calm) == 11 and len(busy_after) == 11
    assert min(busy_after) >= refused_at[0] + 3  # nothing to the paused endpoint before its time
    assert max(calm) < refused_at[0] + 3  # while the other endpoint was served at once
    rows = pipeline.deliveries()
    assert {row.status for row in rows} == {"delivered"}
    # the refused delivery spent an attempt (doo: only 200 is success); the paused ones did not
    assert sorted(row.attempts for row in rows) == [1] * 21 + [2]
