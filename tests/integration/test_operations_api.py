"""Operating deliveries through the API, on SQLite and PostgreSQL: the delivery log with every
attempt, redelivery, dead letters and their replay, 410 Gone and enabling a hook again,
webhook initialization, and the tenant matrix of every one of these endpoints.

Deliveries are made by the real engine (workers.fanout, workers.delivery) against a real
receiver on 127.0.0.1; states that would take many attempts are written into the ledger.
Nothing sleeps: each step is a call whose effect is checked right after it.
"""

import base64
import dataclasses
import datetime
import json
import re
import types
import uuid

import pytest
import sqlalchemy as sa

from schemas.types import TYPES
from storage import delivery_log
from storage import groups
from storage import hook_health
from storage import ledger
from storage import outbox
from storage.db import utcnow
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import notifications as notification_table
from storage.tables import triggers
from tests.support.api import assert_error_envelope
from tests.support.servers import Peer
from tests.support.servers import token_route
from workers import delivery as engine_delivery
from workers import notifications
from workers import signing
from workers.dispatch import dispatch_due
from workers import operations
from workers.context import WorkerContext
from workers.fanout import fan_out
from workers.producer import prepare

MAX_ATTEMPTS = 3


@pytest.fixture
def peer():
    server = Peer()
    yield server
    server.close()


def entity(kind, entity_id, event_id=7):
    if kind == "event":
        return {"id": entity_id, "status": "live"}
    if kind == "order":
        return {"order_details": {"id": entity_id, "status": "active"}, "event": {"id": event_id}}
    return {"id": entity_id, "status": "active", "order_id": 900, "event_id": event_id}


class Ops:
    """The app's client, a tenant, and the delivery engine working on the same ledger."""

    def __init__(self, app, client, settings, tenant_factory, publisher):
        self.app, self.client, self.publisher = app, client, publisher
        self.engine = app.extensions["doo_webhooks"].engine
        self.owner = tenant_factory()
        self.tenant_factory = tenant_factory
        self.ctx = WorkerContext.create(
            settings.replace(retry_schedule=(0.0,), retry_jitter=0.0, max_attempts=MAX_ATTEMPTS), publisher)

    def emit(self, trigger_type, entity_id, *, tenant=None, event_id=7, occurred_at=None, now=None):
        """Fan a trigger out as the worker would; returns the new delivery ids."""
        tenant = tenant or self.owner
        kind = TYPES[trigger_type]
        if occurred_at is not None and occurred_at.tzinfo is None:  # the ledger's naive UTC
            occurred_at = occurred_at.replace(tzinfo=datetime.timezone.utc)
        record = prepare(trigger_type, entity(kind, entity_id, event_id), organization_id=tenant.organization_id,
                         event_id=event_id if kind == "attendee" else None, occurred_at=occurred_at)
        return fan_out(self.engine, record, now or utcnow())

    def deliver(self, ids):
        return engine_delivery.deliver_batch(self.ctx, ids)

    def get(self, path, tenant=None, **params):
        return self.client.get(path, query_string=params, headers=(tenant or self.owner).headers())

    def post(self, path, body=None, tenant=None):
        return self.client.post(path, json=body, headers=(tenant or self.owner).headers())

    def ok(self, response, status=200):
        assert response.status_code == status, response.get_data(as_text=True)
        return response.get_json()

    def row(self, delivery_id):
        with self.engine.connect() as conn:
            return delivery_log.delivery(conn, delivery_id)

    def set(self, ids, **values):
        with self.engine.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(ids)).values(**values))

    def claim_due(self, lanes=("pending", "retrying")):
        """Claim what a worker's send loop would claim now (storage.ledger.claim_due, per lane)."""
        with self.engine.begin() as conn:
            return [row for lane in lanes for row in ledger.claim_due(conn, utcnow(), 60, 1000, lane)]

    def claim_due_ids(self, lanes=("pending", "retrying")):
        return [row.id for row in self.claim_due(lanes)]

    def send_due(self):
        """One round of a send loop: claim the due rows, send them, record; returns the outcomes."""
        return engine_delivery.send_claimed(self.ctx, self.claim_due())

    def claim(self, ids):
        with self.engine.begin() as conn:
            return [row.id for row in ledger.claim(conn, ids, utcnow(), 60)]


@pytest.fixture
def ops(app, client, settings, tenant_factory, publisher):
    made = Ops(app, client, settings, tenant_factory, publisher)
    yield made
    made.ctx.pool.shutdown(wait=False)


def hook(hook_type, endpoint):
    return {"type": hook_type, "method": "POST", "endpoint": endpoint}


def group(tenant, *hook_specs, name="CRM", **extra):
    return tenant.create_group({"name": name, "hooks": [hook(t, e) for t, e in hook_specs], **extra})


def auth(peer):
    return {"grant_type": "client_credentials", "endpoint": peer.url("/oauth"),
            "credentials": {"client_id": "doo", "client_secret": "super-strong-secret"},
            "header_format": "Authorization", "header_value_format": "Bearer %ACCESS_TOKEN%"}


# --- the delivery log --------------------------------------------------------------------

def test_the_log_shows_every_attempt_with_the_receivers_answer(ops, peer):
    answers = iter([
        (500, {}, {"message": "Internal error", "description": "the CRM database is down"}),
        (502, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"),
        (200, {}, {"message": "ok", "description": ""}),
    ])
    peer.routes["/crm"] = lambda recorded: next(answers)
    peer.routes["/oauth"] = token_route()
    group_id = ops.owner.create_group({"name": "CRM", "authentication": auth(peer),
                                 "hooks": [hook("order_created", peer.url("/crm"))]})
    (delivery_id,) = ops.emit("order_created", 42)
    for _ in range(3):
        ops.deliver([delivery_id])

    listing = ops.ok(ops.get(f"/v1/webhooks/{group_id}/deliveries"))
    assert listing["total_items"] == 1
    (item,) = listing["_embedded"]["deliveries"]
    assert {k: item[k] for k in ("id", "group_id", "type", "endpoint", "entity_kind", "entity_id", "status",
                                 "attempts", "last_status_code", "source", "hook", "waiting_for_hook")} == {
        "id": delivery_id, "group_id": group_id, "type": "order_created", "endpoint": peer.url("/crm"),
        "entity_kind": "order", "entity_id": "42", "status": "delivered", "attempts": 3, "last_status_code": 200,
        "source": "trigger", "hook": 0, "waiting_for_hook": False}
    assert item["next_attempt_at"] is None and item["delivered_at"].endswith("+00:00")
    assert item["_links"]["self"]["href"].endswith(f"/v1/deliveries/{delivery_id}")

    response = ops.get(f"/v1/deliveries/{delivery_id}")
    detail = ops.ok(response)["data"]
    assert detail["payload"] == {"order_details": {"id": 42, "status": "active"}, "event": {"id": 7}, "event_id": 7}
    assert json.loads(peer.at("/crm")[0].body) == detail["payload"]
    headers = detail["request_headers"]
    assert headers["webhook-id"] == delivery_id and headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "[redacted]"
    text = response.get_data(as_text=True)
    assert "tok-" not in text and "super-strong-secret" not in text
    log = detail["attempt_log"]
    assert [(a["number"], a["status_code"], a["error_kind"]) for a in log] == [
        (1, 500, "http_status"), (2, 502, "http_status"), (3, 200, None)]
    assert log[0]["response"] == {"message": "Internal error", "description": "the CRM database is down"}
    assert log[0]["response_excerpt"] is None
    assert log[1]["response"] is None and log[1]["response_excerpt"] == "<html>Bad gateway</html>"
    assert all(isinstance(a["duration_ms"], int) and a["started_at"].endswith("+00:00") for a in log)
    assert detail["_links"]["redeliver"]["href"].endswith(f"/v1/deliveries/{delivery_id}/redeliver")
    assert detail["_links"]["webhook"]["href"].endswith(f"/v1/webhooks/{group_id}")


def test_the_listing_filters_pages_and_puts_the_newest_first(ops):
    group_id = group(ops.owner, ("order_created", "https://crm.example/a"), ("order_updated", "https://crm.example/a"))
    base = utcnow() - datetime.timedelta(hours=1)
    made = []  # (delivery id, type, created_at)
    for i, trigger_type in enumerate(["order_created", "order_updated", "order_created", "order_updated",
                                      "order_created"]):
        created = base + datetime.timedelta(minutes=i)
        (delivery_id,) = ops.emit(trigger_type, 100 + i, now=created)
        made.append((delivery_id, trigger_type, created))
    ops.set([made[0][0], made[3][0]], status="dead")
    path = f"/v1/webhooks/{group_id}/deliveries"

    everything = ops.ok(ops.get(path))
    assert [d["id"] for d in everything["_embedded"]["deliveries"]] == [m[0] for m in reversed(made)]
    dead = ops.ok(ops.get(path, status="dead"))
    assert [d["id"] for d in dead["_embedded"]["deliveries"]] == [made[3][0], made[0][0]]
    updated = ops.ok(ops.get(path, type="on_order_updated"))
    assert [d["id"] for d in updated["_embedded"]["deliveries"]] == [made[3][0], made[1][0]]
    window = ops.ok(ops.get(path, since=(base + datetime.timedelta(minutes=1)).isoformat() + "Z",
                            until=(base + datetime.timedelta(minutes=3)).isoformat() + "+00:00"))
    assert [d["id"] for d in window["_embedded"]["deliveries"]] == [made[2][0], made[1][0]]
    # a time with an offset is the same instant
    shifted = (base + datetime.timedelta(minutes=4, hours=2)).isoformat() + "+02:00"
    assert [d["id"] for d in ops.ok(ops.get(path, since=shifted))["_embedded"]["deliveries"]] == [made[4][0]]

    first = ops.ok(ops.get(path, type="order_created", page_size=2))
    assert (first["total_items"], first["page_count"], first["page_size"], first["page"]) == (3, 2, 2, 1)
    next_href = first["_links"]["next"]["href"]
    assert "type=order_created" in next_href and "page_size=2" in next_href and next_href.endswith("page=2")
    second = ops.ok(ops.client.get(next_href, headers=ops.owner.headers()))
    assert [d["id"] for d in second["_embedded"]["deliveries"]] == [made[0][0]]
    assert "next" not in second["_links"] and "page=1" in second["_links"]["prev"]["href"]

    for params in ({"status": "lost"}, {"type": "order_shipped"}, {"since": "yesterday"}, {"page": 0},
                   {"page_size": 101}):
        assert_error_envelope(ops.get(path, **params), 400)


# --- redelivery --------------------------------------------------------------------------

def test_redelivery_starts_a_new_series_with_the_same_payload_and_webhook_id(ops, peer, publisher):
    status = {"code": 503}
    peer.routes["/crm"] = lambda recorded: (status["code"], {}, {"message": "busy", "description": ""})
    group(ops.owner, ("order_created", peer.url("/crm")))
    (delivery_id,) = ops.emit("order_created", 7)
    for _ in range(MAX_ATTEMPTS):
        ops.deliver([delivery_id])
    assert (ops.row(delivery_id).status, ops.row(delivery_id).attempts) == ("dead", MAX_ATTEMPTS)

    answer = ops.ok(ops.post(f"/v1/deliveries/{delivery_id}/redeliver"), 202)
    assert (answer["response_status"], answer["developer_message"]) == (202, "Accepted")
    data = answer["data"]
    assert (data["id"], data["status"], data["attempts"], data["attempts_in_series"]) == (delivery_id, "pending",
                                                                                          MAX_ATTEMPTS, 0)
    assert publisher.delivery_batches[-1] == [delivery_id]  # the send loops are woken
    assert ops.row(delivery_id).attempt_base == MAX_ATTEMPTS

    # the new series is due at once: a send loop claims it; it has max_attempts of its own,
    # then it is dead again
    assert [o["id"] for o in ops.send_due()] == [delivery_id]
    for _ in range(MAX_ATTEMPTS - 1):
        ops.deliver([delivery_id])
    row = ops.row(delivery_id)
    assert (row.status, row.attempts) == ("dead", 2 * MAX_ATTEMPTS)
    with ops.engine.connect() as conn:
        assert [a.number for a in delivery_log.attempts_of(conn, delivery_id)] == list(range(1, 2 * MAX_ATTEMPTS + 1))

    status["code"] = 200
    ops.ok(ops.post(f"/v1/deliveries/{delivery_id}/redeliver"), 202)
    ops.deliver([delivery_id])
    row = ops.row(delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2 * MAX_ATTEMPTS + 1, 200)
    sent = peer.at("/crm")
    assert len(sent) == 2 * MAX_ATTEMPTS + 1
    assert len({(r.body, r.headers["webhook-id"]) for r in sent}) == 1

    # a delivered delivery can be sent again too
    ops.ok(ops.post(f"/v1/deliveries/{delivery_id}/redeliver"), 202)
    assert ops.row(delivery_id).delivered_at is None
    ops.deliver([delivery_id])
    assert ops.row(delivery_id).status == "delivered" and len(peer.at("/crm")) == 2 * MAX_ATTEMPTS + 2


@pytest.mark.parametrize("state", ["pending", "retrying", "in_flight", "cancelled"])
def test_only_dead_or_delivered_deliveries_are_redelivered(ops, publisher, state):
    group(ops.owner, ("order_created", "https://crm.example/a"))
    (delivery_id,) = ops.emit("order_created", 7)
    ops.set([delivery_id], status=state)
    error = assert_error_envelope(ops.post(f"/v1/deliveries/{delivery_id}/redeliver"), 409)
    assert state in error["developer_message"]
    assert ops.row(delivery_id).status == state and publisher.delivery_batches == []


def test_a_deleted_groups_delivery_stays_readable_but_is_not_redelivered(ops):
    group_id = group(ops.owner, ("order_created", "https://crm.example/a"))
    (delivery_id,) = ops.emit("order_created", 7)
    ops.set([delivery_id], status="dead")
    ops.owner.client.delete(f"/v1/webhooks/{group_id}", headers=ops.owner.headers())
    assert ops.ok(ops.get(f"/v1/deliveries/{delivery_id}"))["data"]["status"] == "dead"
    error = assert_error_envelope(ops.post(f"/v1/deliveries/{delivery_id}/redeliver"), 409)
    assert "deleted" in error["developer_message"]
    assert ops.ok(ops.get(f"/v1/team/{ops.owner.team_id}/dead-letters"))["total_items"] == 0


# --- dead letters ------------------------------------------------------------------------

@pytest.fixture
def dead_world(ops):
    """Dead letters of two groups; per entity in trigger order. Returns names -> delivery ids."""
    a = group(ops.owner, ("order_created", "https://crm.example/a"), ("order_updated", "https://crm.example/a"),
              name="A")
    b = group(ops.owner, ("order_created", "https://erp.example/b"), name="B")
    t0 = utcnow() - datetime.timedelta(hours=2)
    at = (lambda minutes: t0 + datetime.timedelta(minutes=minutes))
    ids = {}
    for name, trigger_type, order_id, minute in (("created-1", "order_created", 1, 0),
                                                 ("updated-1", "order_updated", 1, 10),
                                                 ("created-2", "order_created", 2, 20),
                                                 ("updated-1b", "order_updated", 1, 30)):
        made = ops.emit(trigger_type, order_id, occurred_at=at(minute), now=at(minute))
        with ops.engine.connect() as conn:
            for row in conn.execute(sa.select(deliveries).where(deliveries.c.id.in_(made))):
                ids[f"{name}@{'A' if row.group_id == a else 'B'}"] = row.id
    ops.set(list(ids.values()), status="dead", attempts=10, last_status_code=503, last_error="http_status")
    stranger = ops.tenant_factory()
    group(stranger, ("order_created", "https://crm.example/a"))
    ops.set(ops.emit("order_created", 1, tenant=stranger), status="dead")
    return types.SimpleNamespace(a=a, b=b, ids=ids, t0=t0, at=at, stranger=stranger)


def test_dead_letters_are_listed_per_organization_with_filters(ops, dead_world):
    ids, path = dead_world.ids, f"/v1/team/{ops.owner.team_id}/dead-letters"
    assert set(ids) == {"created-1@A", "created-1@B", "updated-1@A", "created-2@A", "created-2@B", "updated-1b@A"}
    listed = ops.ok(ops.get(path))
    assert listed["total_items"] == 6
    newest = [d["id"] for d in listed["_embedded"]["deliveries"]]
    assert newest[0] == ids["updated-1b@A"] and set(newest[1:3]) == {ids["created-2@A"], ids["created-2@B"]}
    assert set(newest[4:]) == {ids["created-1@A"], ids["created-1@B"]}
    assert all(d["status"] == "dead" and d["last_status_code"] == 503 for d in listed["_embedded"]["deliveries"])
    by_group = ops.ok(ops.get(path, group_id=dead_world.b))
    assert {d["id"] for d in by_group["_embedded"]["deliveries"]} == {ids["created-1@B"], ids["created-2@B"]}
    by_type = ops.ok(ops.get(path, type="order_updated"))
    assert {d["id"] for d in by_type["_embedded"]["deliveries"]} == {ids["updated-1@A"], ids["updated-1b@A"]}
    window = ops.ok(ops.get(path, since=dead_world.at(5).isoformat(), until=dead_world.at(25).isoformat()))
    assert {d["id"] for d in window["_embedded"]["deliveries"]} == {ids["updated-1@A"], ids["created-2@A"],
                                                                    ids["created-2@B"]}
    assert_error_envelope(ops.get(path, group_id=str(uuid.uuid4())), 404)
    # the stranger's group is as unknown here as a missing one
    stranger_group = ops.ok(ops.get(f"/v1/team/{dead_world.stranger.team_id}/webhooks",
                                    tenant=dead_world.stranger))["_embedded"]["webhooks"][0]["id"]
    assert_error_envelope(ops.get(path, group_id=stranger_group), 404)


def test_a_replay_restarts_dead_letters_and_they_go_out_in_order_per_entity(ops, dead_world, publisher):
    ids = dead_world.ids
    answer = ops.ok(ops.post(f"/v1/team/{ops.owner.team_id}/dead-letters/replay", {"group_id": dead_world.a}), 202)
    assert answer["data"] == {"queued": 4, "remaining": 0}
    queued = [i for batch in publisher.delivery_batches for i in batch]
    assert queued == [ids["created-1@A"], ids["updated-1@A"], ids["created-2@A"], ids["updated-1b@A"]]
    for name in ("created-1@A", "updated-1@A", "created-2@A", "updated-1b@A"):
        row = ops.row(ids[name])
        assert (row.status, row.attempt_base, row.attempts) == ("pending", 10, 10)
    assert ops.row(ids["created-1@B"]).status == "dead"

    # the send loops claim them from the ledger: order 1's deliveries to A one after another,
    # in trigger order; order 2 does not wait
    assert set(ops.claim_due_ids()) == {ids["created-1@A"], ids["created-2@A"]}
    ops.set([ids["created-1@A"]], status="delivered")
    assert ops.claim_due_ids() == [ids["updated-1@A"]]
    ops.set([ids["updated-1@A"]], status="delivered")
    assert ops.claim_due_ids() == [ids["updated-1b@A"]]


def test_a_replay_takes_at_most_the_limit_and_says_what_remains(ops, dead_world, monkeypatch):
    monkeypatch.setattr(operations, "REPLAY_LIMIT", 2)
    path = f"/v1/team/{ops.owner.team_id}/dead-letters/replay"
    assert ops.ok(ops.post(path, {"type": "on_order_created"}), 202)["data"] == {"queued": 2, "remaining": 2}
    assert ops.ok(ops.post(path, {"type": "order_created"}), 202)["data"] == {"queued": 2, "remaining": 0}
    assert ops.ok(ops.post(path, {}), 202)["data"] == {"queued": 2, "remaining": 0}
    assert ops.ok(ops.post(path, {}), 202)["data"] == {"queued": 0, "remaining": 0}


def test_a_replay_by_time_window(ops, dead_world):
    path = f"/v1/team/{ops.owner.team_id}/dead-letters/replay"
    body = {"since": dead_world.at(5).isoformat() + "Z", "until": dead_world.at(25).isoformat() + "Z"}
    assert ops.ok(ops.post(path, body), 202)["data"] == {"queued": 3, "remaining": 0}
    assert ops.row(dead_world.ids["created-1@A"]).status == "dead"


@pytest.mark.parametrize("body, field", [({"group": "x"}, "group"), ({"type": "order_shipped"}, "type"),
                                         ({"since": "soon"}, "since")])
def test_a_replay_refuses_what_it_cannot_read(ops, body, field):
    error = assert_error_envelope(ops.post(f"/v1/team/{ops.owner.team_id}/dead-letters/replay", body), 400)
    assert field in error["errors"]


# --- endpoint health ---------------------------------------------------------------------

def test_410_disables_the_hook_its_deliveries_wait_and_enable_sends_them(ops, peer):
    gone = {"code": 410}
    peer.routes["/gone"] = lambda recorded: (gone["code"], {}, {"message": "gone", "description": "moved"})
    peer.routes["/ok"] = lambda recorded: (200, {}, {"message": "ok"})
    group_id = group(ops.owner, ("order_created", peer.url("/gone")), ("order_created", peer.url("/ok")))
    first = ops.emit("order_created", 1)
    ops.deliver(first)
    by_endpoint = {ops.row(i).endpoint: i for i in first}
    stuck = by_endpoint[peer.url("/gone")]
    row = ops.row(stuck)
    assert (row.status, row.last_status_code) == ("retrying", 410)
    assert ops.row(by_endpoint[peer.url("/ok")]).status == "delivered"

    listed = ops.ok(ops.get(f"/v1/webhooks/{group_id}"))["data"]["hooks"]
    assert (listed[0]["disabled"], listed[0]["disabled_reason"]) == (True, "the receiver answered 410 Gone")
    assert "disabled" not in listed[1] and "disabled_reason" not in listed[1]
    team_listing = ops.ok(ops.owner.list_groups())["_embedded"]["webhooks"][0]["hooks"]
    assert [h.get("disabled", False) for h in team_listing] == [True, False]

    # a new trigger makes a skipped delivery for the disabled hook: recorded, not sent, not lost
    second = ops.emit("order_created", 2)
    (other,) = second  # only the enabled hook's delivery is owed
    (skipped,) = [d["id"] for d in ops.ok(ops.get(f"/v1/webhooks/{group_id}/deliveries", status="skipped"))
                  ["_embedded"]["deliveries"]]
    shown = ops.ok(ops.get(f"/v1/deliveries/{skipped}"))["data"]
    assert (shown["status"], shown["skipped_reason"], shown["attempts"], shown["waiting_for_hook"]) == (
        "skipped", "hook disabled: the receiver answered 410 Gone", 0, False)
    listing = ops.ok(ops.get(f"/v1/webhooks/{group_id}/deliveries", status="pending"))["_embedded"]["deliveries"]
    assert [(d["id"], d["waiting_for_hook"]) for d in listing] == [(other, False)]
    # the delivery owed before the 410 waits for the hook
    ops.set([stuck], next_attempt_at=utcnow() - datetime.timedelta(seconds=1))
    assert [o["id"] for o in ops.send_due()] == [other]  # a send loop takes only the enabled hook's
    assert ops.claim([stuck, skipped]) == []
    assert ops.deliver([stuck, skipped]) == []
    assert len(peer.at("/gone")) == 1

    gone["code"] = 200
    answer = ops.ok(ops.post(f"/v1/webhooks/{group_id}/hooks/0/enable"))["data"]
    assert answer == {"hook": 0, "type": "order_created", "endpoint": peer.url("/gone"), "disabled": False,
                      "waiting": 1}
    assert "disabled" not in ops.ok(ops.get(f"/v1/webhooks/{group_id}"))["data"]["hooks"][0]
    assert [o["id"] for o in ops.send_due()] == [stuck]  # the skipped one stays skipped
    assert ops.row(stuck).status == "delivered" and ops.row(skipped).status == "skipped"
    assert ops.row(stuck).attempts == 2 and len(peer.at("/gone")) == 2

    # the skipped one goes out only when the organizer asks for it, like a dead letter
    redelivered = ops.ok(ops.post(f"/v1/deliveries/{skipped}/redeliver"), 202)["data"]
    assert (redelivered["status"], redelivered["skipped_reason"]) == ("pending", None)
    ops.deliver([skipped])
    assert ops.row(skipped).status == "delivered" and len(peer.at("/gone")) == 3

    # enabling an enabled hook changes nothing; a hook that is not there is a 404
    assert ops.ok(ops.post(f"/v1/webhooks/{group_id}/hooks/1/enable"))["data"]["waiting"] == 0
    assert_error_envelope(ops.post(f"/v1/webhooks/{group_id}/hooks/2/enable"), 404)


def test_enabling_brings_a_long_backoff_forward_but_keeps_paced_rows_paced(ops):
    group_id = group(ops.owner, ("order_created", "https://crm.example/a"))
    retrying, paced = ops.emit("order_created", 1) + ops.emit("order_created", 2)
    later = utcnow() + datetime.timedelta(hours=6)
    ops.set([retrying], status="retrying", next_attempt_at=later)
    ops.set([paced], next_attempt_at=later, source="init")
    hook_id = ops.row(retrying).hook_id
    with ops.engine.begin() as conn:
        hook_health.disable_hooks(conn, [hook_id], "test", utcnow())
    ops.ok(ops.post(f"/v1/webhooks/{group_id}/hooks/0/enable"))
    assert ops.row(retrying).next_attempt_at <= utcnow()
    assert ops.row(paced).next_attempt_at == later


def test_a_listed_group_with_a_disabled_hook_can_be_posted_back(ops):
    group_id = group(ops.owner, ("order_created", "https://crm.example/a"))
    with ops.engine.begin() as conn:
        hook_id = groups.hooks_of(conn, [group_id])[group_id][0].id
        hook_health.disable_hooks(conn, [hook_id], "test", utcnow())
    listed = ops.ok(ops.get(f"/v1/webhooks/{group_id}"))["data"]
    assert listed["hooks"][0]["disabled"] is True
    response = ops.owner.client.put(f"/v1/webhooks/{group_id}", json=listed, headers=ops.owner.headers())
    assert response.status_code == 200, response.get_data(as_text=True)
    # a PUT makes new hooks, enabled
    assert "disabled" not in ops.ok(ops.get(f"/v1/webhooks/{group_id}"))["data"]["hooks"][0]


# --- disabled hooks, auto-disable and operational notifications ----------------------

SIGNING = "whsec_" + base64.b64encode(b"n" * 32).decode()


def notified(ops, group_id):
    with ops.engine.connect() as conn:
        return outbox.notifications_of(conn, group_id)


def verify(recorded):
    """The Standard Webhooks signature of a notification, checked as a receiver would."""
    expected = signing.sign(SIGNING, recorded.headers["webhook-id"], recorded.headers["webhook-timestamp"],
                            recorded.body)
    assert recorded.headers["webhook-signature"] == expected
    return recorded.json()


def test_notify_url_needs_a_signing_secret_and_is_listed_back(ops, peer):
    config = {"name": "CRM", "hooks": [hook("order_created", "https://crm.example/a")],
              "notify_url": "https://ops.example/alerts"}
    error = assert_error_envelope(ops.post(f"/v1/team/{ops.owner.team_id}/webhooks", config), 400)
    assert "set signing_secret" in error["errors"]["notify_url"][0]
    blocked = dict(config, signing_secret=SIGNING, notify_url="http://10.0.0.1/alerts")
    error = assert_error_envelope(ops.post(f"/v1/team/{ops.owner.team_id}/webhooks", blocked), 400)
    assert "not a globally routable address and not in DOO_WEBHOOKS_ALLOWED_NETWORKS" in error["errors"]["notify_url"][0]
    for bad in ("ftp://ops.example/alerts", "not a url"):
        error = assert_error_envelope(ops.post(f"/v1/team/{ops.owner.team_id}/webhooks",
                                               dict(config, signing_secret=SIGNING, notify_url=bad)), 400)
        assert "notify_url" in error["errors"]

    group_id = ops.owner.create_group(dict(config, signing_secret=SIGNING))
    listed = ops.ok(ops.get(f"/v1/webhooks/{group_id}"))["data"]
    assert (listed["notify_url"], listed["signing_secret"]) == ("https://ops.example/alerts", "********")
    # the listing posted back keeps both; dropping the secret but not the notify_url is refused
    put = ops.client.put(f"/v1/webhooks/{group_id}", json=listed, headers=ops.owner.headers())
    assert put.status_code == 200, put.get_data(as_text=True)
    without = {k: v for k, v in listed.items() if k != "signing_secret"}
    error = assert_error_envelope(ops.client.put(f"/v1/webhooks/{group_id}", json=without,
                                                 headers=ops.owner.headers()), 400)
    assert "set signing_secret" in error["errors"]["notify_url"][0]
    without.pop("notify_url")
    assert ops.client.put(f"/v1/webhooks/{group_id}", json=without, headers=ops.owner.headers()).status_code == 200
    assert "notify_url" not in ops.ok(ops.get(f"/v1/webhooks/{group_id}"))["data"]


def test_state_changes_write_their_events_and_the_scheduler_sends_them_signed(ops, peer):
    peer.routes["/gone"] = lambda recorded: (410, {}, {"message": "gone", "description": "moved"})
    peer.routes["/down"] = lambda recorded: (503, {}, {"message": "down", "description": "maintenance"})
    peer.routes["/notify"] = lambda recorded: (204, {}, b"")
    group_id = group(ops.owner, ("order_created", peer.url("/gone")), ("order_updated", peer.url("/down")),
                     signing_secret=SIGNING, notify_url=peer.url("/notify"))
    quiet = group(ops.owner, ("order_created", peer.url("/gone")), name="no notify_url")

    # a 410 disables the hook: one hook.disabled, in the same transaction, for the group that asked
    ops.deliver(ops.emit("order_created", 1))
    assert [n.type for n in notified(ops, group_id)] == ["hook.disabled"]
    assert notified(ops, quiet) == []
    # a delivery that uses up its attempts: delivery.exhausted, once
    (down,) = [i for i in ops.emit("order_updated", 1) if ops.row(i).endpoint == peer.url("/down")]
    for _ in range(MAX_ATTEMPTS):
        ops.deliver([down])
    assert ops.row(down).status == "dead"
    # enabling the hook: hook.recovered
    ops.ok(ops.post(f"/v1/webhooks/{group_id}/hooks/0/enable"))
    ops.ok(ops.post(f"/v1/webhooks/{group_id}/hooks/0/enable"))  # already enabled: no second event
    assert [n.type for n in notified(ops, group_id)] == ["hook.disabled", "delivery.exhausted", "hook.recovered"]
    assert {n.status for n in notified(ops, group_id)} == {"pending"}

    assert notifications.send_due(ops.ctx) == 3  # the quiet group's hook.disabled was never queued
    assert notifications.send_due(ops.ctx) == 0
    got = [verify(r) for r in peer.at("/notify")]
    by_type = {body["type"]: body for body in got}
    assert sorted(by_type) == ["delivery.exhausted", "hook.disabled", "hook.recovered"]
    assert by_type["hook.disabled"]["data"] == {
        "group_id": group_id, "hook": 0, "hook_type": "order_created", "endpoint": peer.url("/gone"),
        "reason": "the receiver answered 410 Gone", "disabled_at": by_type["hook.disabled"]["data"]["disabled_at"]}
    exhausted = by_type["delivery.exhausted"]["data"]
    assert (exhausted["delivery_id"], exhausted["hook"], exhausted["hook_type"], exhausted["attempts"],
            exhausted["last_status_code"], exhausted["reason"]) == (down, 1, "order_updated", 3, 503, "http_status")
    assert (by_type["hook.recovered"]["data"]["hook"], by_type["hook.recovered"]["data"]["reason"]) == (0, "enabled")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"]) for body in got)
    assert {n.status for n in notified(ops, group_id)} == {"sent"}
    assert {r.headers["webhook-id"] for r in peer.at("/notify")} == {n.id for n in notified(ops, group_id)}


def test_a_failing_notify_receiver_is_retried_with_backoff_then_given_up(ops, peer):
    peer.routes["/gone"] = lambda recorded: (410, {}, b"")
    peer.routes["/notify"] = lambda recorded: (500, {}, {"message": "broken"})
    group_id = group(ops.owner, ("order_created", peer.url("/gone")), signing_secret=SIGNING,
                     notify_url=peer.url("/notify"))
    ops.deliver(ops.emit("order_created", 1))
    (event,) = notified(ops, group_id)
    waits = []
    for attempt in range(1, 6):
        before = utcnow()
        assert notifications.send_due(ops.ctx) == 1
        assert notifications.send_due(ops.ctx) == 0  # not due again before its backoff
        (row,) = notified(ops, group_id)
        assert (row.attempts, row.last_status_code) == (attempt, 500)
        if attempt < 5:
            assert row.status == "pending"
            waits.append((row.next_attempt_at - before).total_seconds())
            with ops.engine.begin() as conn:
                conn.execute(sa.update(notification_table).values(next_attempt_at=utcnow()))
    assert row.status == "failed" and len(peer.at("/notify")) == 5
    assert waits == sorted(waits) and waits[0] >= 9
    # every attempt carried the same webhook-id (the receiver can de-duplicate)
    assert {r.headers["webhook-id"] for r in peer.at("/notify")} == {event.id}


def test_a_deleted_groups_notifications_are_dropped_and_an_internal_notify_url_is_refused_at_send_time(ops, peer):
    peer.routes["/gone"] = lambda recorded: (410, {}, b"")
    group_id = group(ops.owner, ("order_created", peer.url("/gone")), signing_secret=SIGNING,
                     notify_url="http://internal.invalid/alerts")
    ops.deliver(ops.emit("order_created", 1))
    # the SSRF guard (and DNS) decide when sending: the attempt fails and is retried later
    assert notifications.send_due(ops.ctx) == 1
    (row,) = notified(ops, group_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None) and row.last_error
    ops.owner.client.delete(f"/v1/webhooks/{group_id}", headers=ops.owner.headers())
    with ops.engine.begin() as conn:
        conn.execute(sa.update(notification_table).values(next_attempt_at=utcnow()))
    assert notifications.send_due(ops.ctx) == 1
    assert notified(ops, group_id)[0].status == "cancelled"


def test_a_hook_failing_every_attempt_for_disable_after_is_disabled_by_the_sweep(ops, peer):
    answers = {"code": 503}
    peer.routes["/flaky"] = lambda recorded: (answers["code"], {}, {"message": "x"})
    peer.routes["/notify"] = lambda recorded: (200, {}, {"message": "ok"})
    group_id = group(ops.owner, ("order_created", peer.url("/flaky")), ("order_created", "https://crm.example/b"),
                     ("order_updated", "https://crm.example/c"), signing_secret=SIGNING,
                     notify_url=peer.url("/notify"))
    with ops.engine.connect() as conn:
        flaky, quiet, young = [h.id for h in groups.hooks_of(conn, [group_id])[group_id]]

    def health(hook_id):
        with ops.engine.connect() as conn:
            return conn.execute(sa.select(hooks.c.failing_since, hooks.c.last_failure_at, hooks.c.disabled_at,
                                          hooks.c.disabled_reason).where(hooks.c.id == hook_id)).first()

    # failures start a streak, a success ends it
    (first,) = [i for i in ops.emit("order_created", 1) if ops.row(i).endpoint == peer.url("/flaky")]
    ops.deliver([first])
    started = health(flaky).failing_since
    assert started is not None and health(flaky).last_failure_at == started
    # a failure soon after does not write the hook's row (the hottest row there is) ...
    ops.deliver([first])
    assert health(flaky).failing_since == started and health(flaky).last_failure_at == started
    # ... one HEALTH_GRANULARITY after the last recorded failure does
    with ops.engine.begin() as conn:
        conn.execute(sa.update(hooks).where(hooks.c.id == flaky).values(
            failing_since=started - hook_health.HEALTH_GRANULARITY, last_failure_at=started - hook_health.HEALTH_GRANULARITY))
    (another,) = [i for i in ops.emit("order_created", 3) if ops.row(i).endpoint == peer.url("/flaky")]
    ops.deliver([another])
    assert health(flaky).failing_since == started - hook_health.HEALTH_GRANULARITY
    assert health(flaky).last_failure_at > started
    answers["code"] = 200
    ops.deliver([first])
    assert health(flaky).failing_since is None

    def sweep(disable_after):
        ctx = dataclasses.replace(ops.ctx, settings=ops.ctx.settings.replace(disable_after=disable_after))
        dispatch_due(ctx)

    now = utcnow()
    days = (lambda n: now - datetime.timedelta(days=n))
    with ops.engine.begin() as conn:
        # failing for 6 days and again a minute ago: disabled
        conn.execute(sa.update(hooks).where(hooks.c.id == flaky).values(failing_since=days(6), last_failure_at=now))
        # failing since 6 days but no attempt since 5 days: nothing to judge by, left alone
        conn.execute(sa.update(hooks).where(hooks.c.id == quiet).values(failing_since=days(6),
                                                                        last_failure_at=days(5.5)))
        # failing for 4 days only: left alone
        conn.execute(sa.update(hooks).where(hooks.c.id == young).values(failing_since=days(4), last_failure_at=now))
    sweep(0)  # 0 = never
    assert health(flaky).disabled_at is None
    sweep(5 * 86400)
    assert health(flaky).disabled_reason == f"failing since {days(6).replace(microsecond=0).isoformat()}Z"
    assert health(quiet).disabled_at is None and health(young).disabled_at is None
    assert [n.type for n in notified(ops, group_id)] == ["hook.disabled"]
    assert json.loads(notified(ops, group_id)[0].body)["data"]["reason"].startswith("failing since ")
    sweep(5 * 86400)  # already disabled: no second event
    assert len(notified(ops, group_id)) == 1
    # its next trigger is skipped, and enabling starts the streak over
    assert ops.ok(ops.get(f"/v1/webhooks/{group_id}/deliveries", status="skipped"))["total_items"] == 0
    ops.emit("order_created", 2)
    (skipped,) = ops.ok(ops.get(f"/v1/webhooks/{group_id}/deliveries", status="skipped"))["_embedded"]["deliveries"]
    assert skipped["skipped_reason"].startswith("hook disabled: failing since ") and skipped["hook"] == 0
    ops.ok(ops.post(f"/v1/webhooks/{group_id}/hooks/0/enable"))
    assert health(flaky).failing_since is None and health(flaky).disabled_at is None


# --- initialization ----------------------------------------------------------------------

@pytest.fixture
def init_world(ops):
    """Orders of event 7 (and one of event 8) with several snapshots each, in two groups."""
    crm = group(ops.owner, ("order_created", "https://crm.example/a"), ("order_updated", "https://crm.example/a"),
                ("event_updated", "https://crm.example/e"), name="CRM")
    erp = group(ops.owner, ("order_created", "https://erp.example/b"), name="ERP", event_id="8")
    t0 = datetime.datetime(2030, 1, 10, 9, 0, 0)  # UTC; 10:00 in CET
    at = (lambda minutes: t0 + datetime.timedelta(minutes=minutes))
    for trigger_type, order_id, event_id, minute in (
            ("order_created", 1, 7, 0), ("order_created", 2, 7, 5), ("order_created", 3, 7, 0),
            ("order_updated", 1, 7, 30), ("order_removed", 3, 7, 40), ("order_created", 4, 8, 0)):
        ops.emit(trigger_type, order_id, event_id=event_id, occurred_at=at(minute))
    ops.emit("event_updated", 7, event_id=7, occurred_at=at(1))
    stranger = ops.tenant_factory()
    group(stranger, ("order_created", "https://crm.example/a"))
    ops.emit("order_created", 5, tenant=stranger, event_id=7, occurred_at=at(0))
    with ops.engine.begin() as conn:  # what went out before is not the question here
        conn.execute(sa.update(deliveries).values(status="delivered"))
    return types.SimpleNamespace(crm=crm, erp=erp, at=at, stranger=stranger)


def init_rows(ops):
    with ops.engine.connect() as conn:
        return conn.execute(
            sa.select(deliveries, triggers.c.type.label("trigger_type"))
            .select_from(deliveries.join(triggers))
            .where(deliveries.c.source == "init").order_by(deliveries.c.next_attempt_at)).all()


def test_initialization_resends_the_latest_snapshot_of_each_live_order_and_no_more(ops, init_world):
    before = utcnow()
    answer = ops.ok(ops.post("/v1/webhooks/init/orders", {"event_id": 7, "max_rate_per_min": 10}))
    assert {k: answer[k] for k in ("response_status", "developer_message", "user_message", "items_processed",
                                   "deliveries_queued")} == {
        "response_status": 200, "developer_message": "Success", "user_message": "Success",
        "items_processed": 2, "deliveries_queued": 4}
    assert answer["_links"]["self"]["href"].endswith("/v1/webhooks/init/orders")
    rows = init_rows(ops)
    # orders 1 and 2 (order 3 was removed, order 4 is of event 8, order 5 is another organization's),
    # through each order hook of the CRM group (the ERP group is scoped to event 8)
    assert sorted((r.entity_id, r.type, r.endpoint) for r in rows) == [
        ("1", "order_created", "https://crm.example/a"), ("1", "order_updated", "https://crm.example/a"),
        ("2", "order_created", "https://crm.example/a"), ("2", "order_updated", "https://crm.example/a")]
    assert {r.entity_id: r.trigger_type for r in rows} == {"1": "order_updated", "2": "order_created"}
    assert all(r.status == "pending" and r.attempts == 0 and r.organization_id == ops.owner.organization_id
               for r in rows)
    # paced: 10 a minute is one every 6 seconds, the first at once
    due = [r.next_attempt_at for r in rows]
    assert before <= due[0] <= utcnow()
    assert [round((b - a).total_seconds(), 3) for a, b in zip(due, due[1:])] == [6.0, 6.0, 6.0]
    assert answer["last_due_at"].startswith(due[-1].isoformat()[:19])
    # nothing was published: the send loops claim each row when it falls due, the first now
    assert ops.publisher.delivery_batches == [] and ops.publisher.nudges == 0
    assert ops.claim_due_ids() == [rows[0].id]

    # a second initialization queues behind the first instead of doubling the rate
    ops.ok(ops.post("/v1/webhooks/init/orders", {"event_id": "7", "webhook_type": ["on_order_updated"],
                                                "max_rate_per_min": 30}))
    second = [r for r in init_rows(ops) if r.id not in {row.id for row in rows}]
    assert [r.type for r in second] == ["order_updated", "order_updated"]
    assert second[0].next_attempt_at == due[-1] + datetime.timedelta(seconds=2)
    assert second[1].next_attempt_at - second[0].next_attempt_at == datetime.timedelta(seconds=2)


def test_initialization_filters(ops, init_world):
    def items(resource, **body):
        answer = ops.ok(ops.post(f"/v1/webhooks/init/{resource}", body))
        return answer["items_processed"], answer["deliveries_queued"]

    at = init_world.at
    assert items("orders", event_id=7, webhook_type=["order_updated"]) == (2, 2)
    assert items("orders", event_id=8) == (1, 3)  # order 4: the CRM group's two order hooks and the ERP group
    assert items("orders", event_id=8, webhook_configuration_id=init_world.erp) == (1, 1)
    # last_updated_* are CET when they carry no offset (doo), inclusive; the latest snapshot counts
    cet = (lambda minutes: (at(minutes) + datetime.timedelta(hours=1)).isoformat())
    assert items("orders", event_id=7, last_updated_after=cet(5)) == (2, 4)
    assert items("orders", event_id=7, last_updated_after=cet(6)) == (1, 2)
    assert items("orders", event_id=7, last_updated_before=cet(5)) == (1, 2)
    assert items("orders", event_id=7, last_updated_before=at(4).isoformat() + "Z") == (0, 0)
    assert items("events", organization_id=ops.owner.organization_id) == (1, 1)
    assert items("events", organization_id=ops.owner.organization_id, event_id=8) == (0, 0)
    assert items("attendees", event_id=7) == (0, 0)


@pytest.mark.parametrize("resource, body, status, field", [
    ("orders", {}, 400, "event_id"),
    ("attendees", {"organization_id": 1}, 400, "event_id"),
    ("events", {"event_id": 7}, 400, "organization_id"),
    ("orders", {"event_id": 7, "max_rate_per_min": 0}, 400, "max_rate_per_min"),
    ("orders", {"event_id": 7, "max_rate_per_min": 51}, 400, "max_rate_per_min"),
    ("orders", {"event_id": 7, "webhook_type": ["event_created"]}, 400, "webhook_type"),
    ("orders", {"event_id": 7, "webhook_type": ["order_shipped"]}, 400, "webhook_type"),
    ("orders", {"event_id": 7, "last_updated_after": "last week"}, 400, "last_updated_after"),
    ("orders", {"event_id": 7, "colour": "red"}, 400, "colour"),
    ("contacts", {"organization_id": 1}, 404, None),
    ("orders", {"event_id": 7, "webhook_configuration_id": str(uuid.uuid4())}, 404, None),
])
def test_initialization_refuses(ops, resource, body, status, field):
    error = assert_error_envelope(ops.post(f"/v1/webhooks/init/{resource}", body), status)
    if field:
        assert field in error["errors"]
    assert init_rows(ops) == []


# --- the tenant matrix -------------------------------------------------------------------

@pytest.fixture
def tenants(ops):
    owner = ops.owner
    group_id = group(owner, ("order_created", "https://crm.example/a"), ("event_updated", "https://crm.example/e"))
    (delivery_id,) = ops.emit("order_created", 42, now=utcnow() - datetime.timedelta(minutes=1))
    ops.set(ops.emit("event_updated", 7), status="delivered")
    ops.set([delivery_id], status="dead", attempts=10)
    hook_id = ops.row(delivery_id).hook_id
    with ops.engine.begin() as conn:
        hook_health.disable_hooks(conn, [hook_id], "test", utcnow())
    return types.SimpleNamespace(
        owner=owner, group_id=group_id, delivery_id=delivery_id,
        member=ops.tenant_factory(role="team_member", organization_id=owner.organization_id, team_id=owner.team_id),
        viewer=ops.tenant_factory(role="team_viewer", organization_id=owner.organization_id, team_id=owner.team_id),
        other_org=ops.tenant_factory(),
    )


CALLS = {
    "list": lambda ops, w, t: ops.get(f"/v1/webhooks/{w.group_id}/deliveries", tenant=t),
    "get": lambda ops, w, t: ops.get(f"/v1/deliveries/{w.delivery_id}", tenant=t),
    "redeliver": lambda ops, w, t: ops.post(f"/v1/deliveries/{w.delivery_id}/redeliver", tenant=t),
    "enable": lambda ops, w, t: ops.post(f"/v1/webhooks/{w.group_id}/hooks/0/enable", tenant=t),
    "dead-letters": lambda ops, w, t: ops.get(f"/v1/team/{w.owner.team_id}/dead-letters", tenant=t),
    "replay": lambda ops, w, t: ops.post(f"/v1/team/{w.owner.team_id}/dead-letters/replay", {}, tenant=t),
    "init-orders": lambda ops, w, t: ops.post("/v1/webhooks/init/orders", {"event_id": 7}, tenant=t),
    "init-events": lambda ops, w, t: ops.post("/v1/webhooks/init/events",
                                              {"organization_id": w.owner.organization_id}, tenant=t),
    "init-group": lambda ops, w, t: ops.post("/v1/webhooks/init/orders", {
        "event_id": 7, "webhook_configuration_id": w.group_id}, tenant=t),
}
WRITES = {"redeliver", "enable", "replay", "init-orders", "init-events", "init-group"}
EXPECTED = {
    "owner": {"list": 200, "get": 200, "redeliver": 202, "enable": 200, "dead-letters": 200, "replay": 202,
              "init-orders": 200, "init-events": 200, "init-group": 200},
    "viewer": {"list": 200, "get": 200, "redeliver": 403, "enable": 403, "dead-letters": 200, "replay": 403,
               "init-orders": 403, "init-events": 403, "init-group": 403},
    # a stranger: 404 for the owner's objects (as if missing), 403 for the owner's team and
    # organization; its own initialization of event 7 finds nothing of the owner's
    "other_org": {"list": 404, "get": 404, "redeliver": 404, "enable": 404, "dead-letters": 403, "replay": 403,
                  "init-orders": 200, "init-events": 403, "init-group": 404},
}
EXPECTED["member"] = EXPECTED["owner"]
MATRIX = [(actor, call, status) for actor, calls in EXPECTED.items() for call, status in calls.items()]


def _ledger_state(ops):
    with ops.engine.connect() as conn:
        return (conn.execute(sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.attempt_base)
                             .order_by(deliveries.c.id)).all(),
                conn.execute(sa.select(hooks.c.id, hooks.c.disabled_at).order_by(hooks.c.id)).all())


@pytest.mark.parametrize("actor, call, status", MATRIX, ids=[f"{a}-{c}-{s}" for a, c, s in MATRIX])
def test_access_matrix(ops, tenants, actor, call, status):
    before = _ledger_state(ops)
    response = CALLS[call](ops, tenants, getattr(tenants, actor))
    if status >= 400:
        assert_error_envelope(response, status)
    else:
        assert response.status_code == status, response.get_data(as_text=True)
    if status >= 400 or actor == "other_org":
        # refused, or the stranger's own (empty) initialization: the owner's ledger is untouched
        assert _ledger_state(ops) == before
    if actor == "other_org":
        text = response.get_data(as_text=True)
        assert tenants.delivery_id not in text.replace(f"No delivery {tenants.delivery_id}.", "")
        assert "crm.example" not in text
        if status == 200:
            assert response.get_json()["items_processed"] == 0
    elif call in WRITES and status < 400:
        assert _ledger_state(ops) != before


@pytest.mark.parametrize("call", ["get", "redeliver", "list", "enable", "init-group"])
def test_another_organizations_objects_are_indistinguishable_from_missing_ones(ops, tenants, call):
    stranger = tenants.other_org
    missing = types.SimpleNamespace(owner=tenants.owner, group_id=str(uuid.uuid4()), delivery_id=str(uuid.uuid4()))
    foreign = CALLS[call](ops, tenants, stranger)
    absent = CALLS[call](ops, missing, stranger)
    assert foreign.status_code == absent.status_code == 404
    hide = (lambda text, ids: re.sub("|".join(map(re.escape, ids)), "<id>", text))
    assert hide(foreign.get_data(as_text=True), [tenants.group_id, tenants.delivery_id]) == \
        hide(absent.get_data(as_text=True), [missing.group_id, missing.delivery_id])


def test_a_stranger_cannot_see_or_replay_through_its_own_team(ops, tenants):
    stranger = tenants.other_org
    group(stranger, ("order_created", "https://crm.example/a"))
    own = f"/v1/team/{stranger.team_id}/dead-letters"
    assert ops.ok(ops.get(own, tenant=stranger))["total_items"] == 0
    assert_error_envelope(ops.get(own, tenant=stranger, group_id=tenants.group_id), 404)
    assert ops.ok(ops.post(own + "/replay", {}, tenant=stranger), 202)["data"] == {"queued": 0, "remaining": 0}
    assert_error_envelope(ops.post(own + "/replay", {"group_id": tenants.group_id}, tenant=stranger), 404)
    assert ops.row(tenants.delivery_id).status == "dead"
    assert_error_envelope(ops.post("/v1/webhooks/init/events", {"organization_id": 10**6}, tenant=stranger), 403)


def test_every_new_endpoint_needs_credentials(ops, tenants):
    for call in CALLS:
        anonymous = types.SimpleNamespace(headers=lambda: {})
        assert_error_envelope(CALLS[call](ops, tenants, anonymous), 401)
