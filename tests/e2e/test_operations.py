"""Operating deliveries on the real pipeline (worker and scheduler processes, PostgreSQL, Redis):
a receiver through an outage and its recovery, a 410 that disables a hook (its next trigger
skipped, the group's notify_url told, signed) and the enable that resumes it, a dead delivery
notified as exhausted, and an initialization that re-sends what it should at the pace it was given.

Everything is seen through the API, as an organizer would; waits poll the ledger or the
receiver with a timeout, never sleep.
"""

import base64
import datetime

import sqlalchemy as sa

from storage.tables import attempts
from storage.tables import deliveries
from storage.tables import triggers
from tests.e2e.conftest import order
from tests.support.servers import scripted
from workers import signing

UTC = datetime.timezone.utc
SIGNING = "whsec_" + base64.b64encode(b"e" * 32).decode()


def api(pipeline, method, path, body=None, status=200):
    response = pipeline.client.open(path, method=method, json=body, headers=pipeline.tenant.headers())
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def hooks_of(pipeline, group_id):
    return api(pipeline, "GET", f"/v1/webhooks/{group_id}")["data"]["hooks"]


def first_seen(requests):
    """Requests in arrival order, a redelivered duplicate (same webhook-id) counted once."""
    seen, kept = set(), []
    for request in requests:
        if request.headers["webhook-id"] not in seen:
            seen.add(request.headers["webhook-id"])
            kept.append(request)
    return kept


def test_a_receiver_through_an_outage_and_its_recovery(pipeline_factory, peer):
    pipeline = pipeline_factory(max_attempts=3)
    pipeline.start("worker", "--concurrency", "4")
    pipeline.start("scheduler")
    receiver = {"up": False}

    def crm(recorded):
        if receiver["up"]:
            return 200, {}, {"message": "ok", "description": "stored"}
        return 503, {}, {"message": "Service unavailable", "description": "CRM maintenance until 16:00"}
    peer.routes["/crm"] = crm
    group_id = pipeline.tenant.create_group({"name": "CRM", "hooks": [
        {"type": "order_created", "endpoint": peer.url("/crm")},
        {"type": "order_updated", "endpoint": peer.url("/crm")}]})

    # Given five changes of two orders while the CRM is down
    story = [("order_created", 1, "r1"), ("order_updated", 1, "r2"), ("order_created", 2, "r1"),
             ("order_updated", 1, "r3"), ("order_updated", 2, "r2")]
    start = datetime.datetime.now(UTC)
    for i, (trigger_type, order_id, revision) in enumerate(story):
        pipeline.emit(trigger_type, order(order_id, revision=revision),
                      occurred_at=start + datetime.timedelta(milliseconds=10 * i))
    # they all fail every attempt and go dead
    pipeline.wait_until(lambda: len(pipeline.deliveries()) == 5 and
                        all(d.status == "dead" for d in pipeline.deliveries()), what="five dead letters")

    # Then the organizer sees the whole story through the API
    dead = api(pipeline, "GET", f"/v1/team/{pipeline.tenant.team_id}/dead-letters")
    assert dead["total_items"] == 5
    listed = {d["id"]: d for d in dead["_embedded"]["deliveries"]}
    assert {(d["attempts"], d["last_status_code"], d["status"]) for d in listed.values()} == {(3, 503, "dead")}
    one = next(iter(listed))
    detail = api(pipeline, "GET", f"/v1/deliveries/{one}")["data"]
    assert [(a["number"], a["status_code"], a["error_kind"]) for a in detail["attempt_log"]] == [
        (1, 503, "http_status"), (2, 503, "http_status"), (3, 503, "http_status")]
    assert {a["response"]["description"] for a in detail["attempt_log"]} == {"CRM maintenance until 16:00"}
    assert detail["request_headers"]["webhook-id"] == one
    assert detail["payload"]["order_details"]["id"] == int(listed[one]["entity_id"])
    group_log = api(pipeline, "GET", f"/v1/webhooks/{group_id}/deliveries?status=dead")
    assert group_log["total_items"] == 5

    # When the CRM is back and the dead letters are replayed in one call
    during_outage = len(peer.at("/crm"))
    assert during_outage >= 15  # 5 deliveries x 3 attempts (a lost lease could add a duplicate)
    receiver["up"] = True
    replay = api(pipeline, "POST", f"/v1/team/{pipeline.tenant.team_id}/dead-letters/replay", {}, status=202)
    assert replay["data"] == {"queued": 5, "remaining": 0}
    pipeline.wait_until(lambda: all(d.status == "delivered" for d in pipeline.deliveries()), what="all delivered")

    # Then each order's changes arrived in the order they happened, with their original ids
    after = first_seen(peer.at("/crm")[during_outage:])
    assert {r.headers["webhook-id"] for r in after} == set(listed)
    for order_id in (1, 2):
        revisions = [r.json()["revision"] for r in after if r.json()["order_details"]["id"] == order_id]
        assert revisions == [revision for _, o, revision in story if o == order_id]
    detail = api(pipeline, "GET", f"/v1/deliveries/{one}")["data"]
    assert (detail["status"], detail["attempts"], detail["attempts_in_series"]) == ("delivered", 4, 1)
    assert [a["status_code"] for a in detail["attempt_log"]] == [503, 503, 503, 200]
    assert detail["attempt_log"][-1]["response"] == {"message": "ok", "description": "stored"}
    assert api(pipeline, "GET", f"/v1/team/{pipeline.tenant.team_id}/dead-letters")["total_items"] == 0


def notifications_at(peer, path="/notify"):
    """The operational events received, each signature checked as a receiver would."""
    got = []
    for recorded in peer.at(path):
        expected = signing.sign(SIGNING, recorded.headers["webhook-id"], recorded.headers["webhook-timestamp"],
                                recorded.body)
        assert recorded.headers["webhook-signature"] == expected
        got.append(recorded.json())
    return got


def test_410_disables_a_hook_skips_its_next_trigger_notifies_and_enable_resumes_it(pipeline, peer):
    gone = {"yes": True}
    peer.routes["/old-crm"] = lambda recorded: (
        (410, {}, {"message": "Gone", "description": "this endpoint moved"}) if gone["yes"]
        else (200, {}, {"message": "ok", "description": ""}))
    peer.routes["/erp"] = scripted()
    peer.routes["/notify"] = scripted()
    group_id = pipeline.tenant.create_group({
        "name": "Two receivers", "signing_secret": SIGNING, "notify_url": peer.url("/notify"), "hooks": [
            {"type": "order_created", "endpoint": peer.url("/old-crm")},
            {"type": "order_created", "endpoint": peer.url("/erp")}]})

    # Given a 410 from one receiver
    pipeline.emit("order_created", order(1))
    pipeline.wait_until(lambda: hooks_of(pipeline, group_id)[0].get("disabled") is True, what="the hook disabled")
    assert "disabled" not in hooks_of(pipeline, group_id)[1]
    pipeline.wait_until(lambda: sorted(d.status for d in pipeline.deliveries()) == ["delivered", "retrying"],
                        what="the other receiver served")
    (stuck,) = [d.id for d in pipeline.deliveries() if d.status == "retrying"]
    detail = api(pipeline, "GET", f"/v1/deliveries/{stuck}")["data"]
    assert detail["waiting_for_hook"] is True and detail["last_status_code"] == 410
    assert detail["attempt_log"][0]["response"] == {"message": "Gone", "description": "this endpoint moved"}
    # the group's notify_url hears of it, signed with the group's secret
    peer.wait_for(lambda p: len(p.at("/notify")) >= 1, what="hook.disabled at the notify receiver")
    (event,) = notifications_at(peer)
    assert event["type"] == "hook.disabled"
    assert (event["data"]["group_id"], event["data"]["hook"], event["data"]["endpoint"], event["data"]["reason"]) == (
        group_id, 0, peer.url("/old-crm"), "the receiver answered 410 Gone")

    # When another order comes: the enabled receiver gets it, the disabled hook's is skipped
    pipeline.emit("order_created", order(2))
    peer.wait_for(lambda p: len(p.at("/erp")) == 2, what="the second order at the ERP")
    pipeline.wait_until(lambda: sum(d.status == "delivered" for d in pipeline.deliveries()) == 2,
                        what="the ERP's second delivery recorded")
    waiting = [d for d in pipeline.deliveries() if d.endpoint == peer.url("/old-crm")]
    assert sorted((d.status, d.attempts) for d in waiting) == [("retrying", 1), ("skipped", 0)]
    (skipped,) = api(pipeline, "GET", f"/v1/webhooks/{group_id}/deliveries?status=skipped")["_embedded"]["deliveries"]
    assert skipped["skipped_reason"] == "hook disabled: the receiver answered 410 Gone"
    assert len(peer.at("/old-crm")) == 1

    # Then enabling the hook sends the one it owed, and the group hears it recovered
    gone["yes"] = False
    enabled = api(pipeline, "POST", f"/v1/webhooks/{group_id}/hooks/0/enable")["data"]
    assert (enabled["disabled"], enabled["waiting"]) == (False, 1)
    pipeline.wait_until(lambda: pipeline.all_settled(4), what="everything settled")
    assert sorted(d.status for d in pipeline.deliveries()) == ["delivered"] * 3 + ["skipped"]
    peer.wait_for(lambda p: len(p.at("/notify")) >= 2, what="hook.recovered at the notify receiver")
    assert [e["type"] for e in notifications_at(peer)] == ["hook.disabled", "hook.recovered"]
    # and the skipped one goes out when the organizer asks for it
    api(pipeline, "POST", f"/v1/deliveries/{skipped['id']}/redeliver", status=202)
    pipeline.wait_until(lambda: {d.status for d in pipeline.deliveries()} == {"delivered"}, what="all delivered")
    assert sorted(r.json()["order_details"]["id"] for r in first_seen(peer.at("/old-crm"))) == [1, 2]
    assert "disabled" not in hooks_of(pipeline, group_id)[0]


def test_a_delivery_going_dead_is_notified_as_exhausted(pipeline_factory, peer):
    pipeline = pipeline_factory(max_attempts=2)
    pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    peer.routes["/crm"] = scripted(then=503)
    peer.routes["/notify"] = scripted()
    group_id = pipeline.tenant.create_group({
        "name": "CRM", "signing_secret": SIGNING, "notify_url": peer.url("/notify"),
        "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})

    pipeline.emit("order_created", order(1))
    peer.wait_for(lambda p: len(p.at("/notify")) >= 1, what="delivery.exhausted at the notify receiver")
    (event,) = notifications_at(peer)
    (dead,) = pipeline.deliveries()
    assert dead.status == "dead"
    assert event["type"] == "delivery.exhausted"
    assert {k: event["data"][k] for k in ("group_id", "hook", "hook_type", "delivery_id", "attempts",
                                          "last_status_code", "reason")} == {
        "group_id": group_id, "hook": 0, "hook_type": "order_created", "delivery_id": dead.id, "attempts": 2,
        "last_status_code": 503, "reason": "http_status"}


def test_initialization_resends_the_latest_snapshots_at_the_pace_asked(pipeline, peer):
    rate, count = 50, 60
    spacing = datetime.timedelta(seconds=60 / rate)
    peer.routes["/crm"] = scripted()
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_updated", "endpoint": peer.url("/crm")}]})

    # Given orders 1..60 of event 7 known from their triggers (1..3 updated since), order 60
    # removed, and an order of event 8
    t0 = datetime.datetime.now(UTC) - datetime.timedelta(hours=1)
    at = (lambda n: t0 + datetime.timedelta(seconds=n))
    for n in (1, 2, 3):
        pipeline.emit("order_created", order(n), occurred_at=at(n))
        pipeline.emit("order_updated", order(n, revision="updated"), occurred_at=at(10 + n))
    for n in range(4, count + 1):
        pipeline.emit("order_created", order(n), occurred_at=at(100 + n))
    pipeline.emit("order_removed", order(count, status="removed"), occurred_at=at(500))
    pipeline.emit("order_created", order(100, event_id=8), occurred_at=at(501))

    def stored():
        with pipeline.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(triggers)).scalar_one()
    pipeline.wait_until(lambda: stored() == 2 * 3 + (count - 3) + 2 and pipeline.all_settled(3),
                        what="triggers stored and the live updates delivered")
    live = len(peer.at("/crm"))
    assert live == 3

    # When the organizer initializes the orders of event 7 at 50 a minute
    answer = api(pipeline, "POST", "/v1/webhooks/init/orders", {"event_id": 7, "max_rate_per_min": rate})
    called = datetime.datetime.now(UTC).replace(tzinfo=None)
    assert (answer["items_processed"], answer["deliveries_queued"]) == (count - 1, count - 1)

    # Then the schedule itself is the pace: one every 60/50 s, so never more than 50 in a minute
    last_due = datetime.datetime.fromisoformat(answer["last_due_at"]).replace(tzinfo=None)
    first_due = last_due - (count - 2) * spacing
    assert first_due <= called
    with pipeline.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries).where(deliveries.c.source == "init")).all()
    planned = {row.id: row.next_attempt_at for row in rows if row.status == "pending" and row.attempts == 0}
    assert len(planned) >= count - 3  # at most the first one or two went out already
    slots = sorted(round((due - first_due) / spacing, 6) for due in planned.values())
    assert all(slot == int(slot) for slot in slots) and len(set(slots)) == len(slots) and slots[-1] == count - 2
    schedule = [first_due + i * spacing for i in range(count - 1)]
    assert max(sum(s <= d < s + datetime.timedelta(minutes=1) for d in schedule) for s in schedule) == rate
    # what is re-sent: the latest snapshot of each live order of event 7, nothing else
    entity_of = {row.id: row.entity_id for row in rows}
    assert sorted(map(int, entity_of.values())) == list(range(1, count))

    # and measured on the wire: the first three go out, each not before its time, and the
    # receiver never got more than the schedule allowed at the moment we look
    peer.wait_for(lambda p: len(p.at("/crm")) >= live + 3, timeout=30, what="three initialization requests")
    received = peer.at("/crm")[live:]
    elapsed = datetime.datetime.now(UTC).replace(tzinfo=None) - first_due
    assert len(received) <= elapsed / spacing + 1
    assert [(r.json()["order_details"]["id"], r.json().get("revision")) for r in received[:3]] == [
        (n, "updated") for n in (1, 2, 3)]
    with pipeline.engine.connect() as conn:
        sent = conn.execute(sa.select(attempts.c.delivery_id, attempts.c.started_at)
                            .where(attempts.c.delivery_id.in_(list(entity_of)))).all()
    for delivery_id, started_at in sent:
        if delivery_id in planned:
            assert started_at >= planned[delivery_id]
    assert not {r.json()["order_details"]["id"] for r in received} & {count, 100}
