"""A trigger, through a real worker and scheduler, to a real receiver on 127.0.0.1."""

import base64
import hashlib
import hmac
import json

from tests.e2e.conftest import order
from tests.support.servers import graphql_route
from tests.support.servers import scripted
from tests.support.servers import token_route


def auth(peer):
    return {"grant_type": "client_credentials", "endpoint": peer.url("/oauth"),
            "credentials": {"client_id": "doo", "client_secret": "super-strong-secret"},
            "header_format": "Authorization", "header_value_format": "Bearer %ACCESS_TOKEN%"}


def test_receiver_sees_documented_request_and_token_is_fetched_once(pipeline, peer):
    tokens = []
    peer.routes["/oauth"] = token_route(tokens)
    peer.routes["/crm"] = scripted()
    group_id = pipeline.tenant.create_group({"name": "CRM", "authentication": auth(peer), "hooks": [
        {"type": "order_created", "method": "POST", "endpoint": peer.url("/crm")}]})

    for n in range(12):
        pipeline.emit("order_created", order(100 + n, external_customer_id=f"C-{n}"))
    peer.wait_for(lambda p: len(p.at("/crm")) == 12, what="12 deliveries")
    pipeline.wait_until(lambda: pipeline.all_settled(12), what="12 delivered")

    assert len(peer.at("/oauth")) == 1
    token_request = peer.at("/oauth")[0]
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.form() == {"grant_type": "client_credentials", "client_id": "doo",
                                    "client_secret": "super-strong-secret"}
    received = peer.at("/crm")
    first = received[0]
    assert first.method == "POST"
    assert first.headers["authorization"] == "Bearer tok-1"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["accept"] == "application/json"
    assert first.headers["user-agent"].startswith("doo-webhooks/")
    bodies = sorted((r.json() for r in received), key=lambda b: b["order_details"]["id"])
    assert bodies[0] == {"order_details": {"id": 100, "status": "active"}, "event": {"id": 7},
                         "external_customer_id": "C-0", "event_id": 7}
    rows = pipeline.deliveries()
    assert {r.headers["webhook-id"] for r in received} == {row.id for row in rows}
    assert all(row.status == "delivered" and row.attempts == 1 and row.group_id == group_id for row in rows)


def test_401_drops_the_token_fetches_a_new_one_and_retries_in_the_same_attempt(pipeline, peer):
    peer.routes["/oauth"] = token_route()

    def crm(recorded):
        ok = recorded.headers.get("authorization") == "Bearer tok-2"
        return (200, {}, {"message": "ok"}) if ok else (401, {}, {"message": "expired token"})
    peer.routes["/crm"] = crm
    pipeline.tenant.create_group({"name": "CRM", "authentication": auth(peer), "hooks": [
        {"type": "order_created", "endpoint": peer.url("/crm")}]})

    pipeline.emit("order_created", order(1))
    pipeline.wait_until(lambda: pipeline.all_settled(1), what="delivered")

    (row,) = pipeline.deliveries()
    assert (row.status, row.attempts) == ("delivered", 1)
    assert len(peer.at("/oauth")) == 2
    assert [r.headers["authorization"] for r in peer.at("/crm")] == ["Bearer tok-1", "Bearer tok-2"]


def test_five_hundreds_four_times_then_200_is_delivered_on_attempt_five(pipeline, peer):
    peer.routes["/crm"] = scripted(500, 500, 500, 500)
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})

    pipeline.emit("order_created", order(5))
    pipeline.wait_until(lambda: pipeline.all_settled(1), what="delivered")

    (row,) = pipeline.deliveries()
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 5, 200)
    attempts = pipeline.attempts(row.id)
    assert [a.status_code for a in attempts] == [500, 500, 500, 500, 200]
    assert json.loads(attempts[0].response_excerpt) == {"message": "failed", "description": "status 500"}
    # every retry sends the same bytes and the same webhook-id
    assert len({(r.body, r.headers["webhook-id"]) for r in peer.at("/crm")}) == 1


def test_never_200_is_dead_after_exactly_ten_attempts(pipeline, peer):
    peer.routes["/crm"] = scripted(then=201)  # doo: only 200 is success
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})

    pipeline.emit("order_created", order(6))
    pipeline.wait_until(lambda: pipeline.all_settled(1), what="dead")

    (row,) = pipeline.deliveries()
    assert (row.status, row.attempts) == ("dead", 10)
    assert [a.number for a in pipeline.attempts(row.id)] == list(range(1, 11))
    assert len(peer.at("/crm")) == 10


def test_graphql_hook_sends_the_origins_answer(pipeline, peer):
    peer.routes["/graphql"] = graphql_route()
    peer.routes["/crm"] = scripted()
    body = json.dumps({"operationName": "OrderShort", "variables": {"id": "%ORDER_ID%"},
                       "query": "query OrderShort($id: ID!) { order(id: $id) { id hash } }"})
    pipeline.tenant.create_group({"name": "GQL", "hooks": [{
        "type": "order_cancelled", "endpoint": peer.url("/crm"),
        "origin": {"method": "POST", "endpoint": peer.url("/graphql"), "body": body}}]})

    pipeline.emit("order_cancelled", order(42, status="organizer_accepted_cancellation"))
    pipeline.wait_until(lambda: pipeline.all_settled(1), what="delivered")

    (origin_request,) = peer.at("/graphql")
    assert origin_request.json()["variables"] == {"id": "42"}
    (received,) = peer.at("/crm")
    assert received.json() == {"data": {"order": {"id": "42", "hash": "h-42"}}}
    (row,) = pipeline.deliveries()
    assert json.loads(row.payload) == received.json()


def test_graphql_errors_without_data_fail_the_attempt(pipeline, peer):
    peer.routes["/graphql"] = graphql_route()
    peer.routes["/crm"] = scripted()
    body = json.dumps({"query": "query ($id: ID!) { order(id: $id) { nosuchfield } }", "variables": {"id": "%ORDER_ID%"}})
    pipeline.tenant.create_group({"name": "GQL", "hooks": [{
        "type": "order_created", "endpoint": peer.url("/crm"),
        "origin": {"endpoint": peer.url("/graphql"), "body": body}}]})

    pipeline.emit("order_created", order(43))
    pipeline.wait_until(lambda: any(r.attempts >= 2 for r in pipeline.deliveries()), what="two attempts")

    row = pipeline.deliveries()[0]
    assert pipeline.attempts(row.id)[0].error_kind == "origin_error"
    assert peer.at("/crm") == []


def test_signed_deliveries_verify_with_the_standard_webhooks_scheme(pipeline, peer):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    peer.routes["/crm"] = scripted()
    pipeline.tenant.create_group({"name": "Signed", "signing_secret": secret,
                                  "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})

    pipeline.emit("order_created", order(8))
    peer.wait_for(lambda p: len(p.at("/crm")) == 1, what="delivery")

    (received,) = peer.at("/crm")
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(b"k" * 32, signed, hashlib.sha256).digest()).decode()
    assert received.headers["webhook-signature"] == f"v1,{expected}"


def test_receiver_outside_allowed_networks_is_never_contacted(pipeline_factory, peer):
    pipeline = pipeline_factory(allowed_networks="")
    pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    peer.routes["/crm"] = scripted()
    # created through the data layer: the API refuses a blocked IP literal up front
    from tests.support.ledger import insert_group
    insert_group(pipeline.engine, pipeline.tenant, [{"type": "order_created", "endpoint": peer.url("/crm")}])

    pipeline.emit("order_created", order(9))
    pipeline.wait_until(lambda: any(r.attempts >= 1 and r.status != "in_flight" for r in pipeline.deliveries()),
                        what="first attempt")

    row = pipeline.deliveries()[0]
    assert pipeline.attempts(row.id)[0].error_kind == "ssrf_blocked"
    assert peer.requests == []
