"""What a delivery needs before it can be sent, failing: the receiver's OAuth2 token endpoint
(client credentials, workers/tokens.py) and a hook's GraphQL origin (workers/payloads.py).

A failed token fetch or origin call is a failed attempt (token_error, origin_error): it is
retried like any other, never sent without its token or payload, and after ten such
attempts the delivery is dead. When the dependency recovers, everything goes out.
"""

import json
import threading

import pytest
import sqlalchemy as sa

from tests.support.servers import graphql_route
from tests.support.servers import scripted
from tests.support.servers import token_route

TRIGGERS = 20


def authentication(peer):
    return {"grant_type": "client_credentials", "endpoint": peer.url("/oauth"),
            "credentials": {"client_id": "doo", "client_secret": "super-strong-secret"}}


def bad_then(answers, good):
    """A route giving ``answers`` (a list of (status, headers, body)) in turn, then ``good``'s."""
    queue = list(answers)
    lock = threading.Lock()

    def route(recorded):
        with lock:
            answer = queue.pop(0) if queue else None
        return answer if answer is not None else good(recorded)
    return route


def start(make_pipeline, peer, config):
    pipeline = make_pipeline()
    peer.routes["/crm"] = scripted()
    pipeline.tenant.create_group(config)
    worker = pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    return pipeline, worker


def error_kinds(pipeline):
    with pipeline.engine.begin() as conn:
        return set(conn.execute(sa.text("SELECT error_kind FROM attempts WHERE error_kind IS NOT NULL")).scalars())


TOKEN_FAULTS = {
    # name: (answers of the token endpoint before it works, or None: it never works)
    "token endpoint answers 500 (never recovers)": None,
    "token endpoint answers without access_token 30 times, then recovers":
        [(200, {}, {"token_type": "bearer", "expires_in": 3600})] * 30,
    "token endpoint answers garbage 30 times, then recovers":
        [(200, {"Content-Type": "text/html"}, b"<html>upstream error</html>"),
         (200, {}, b'{"access_token": '), (200, {}, {"access_token": 42}),
         (200, {}, {"access_token": "tok\nen"})] * 8,
}


@pytest.mark.parametrize("fault", TOKEN_FAULTS)
def test_token_endpoint_faults(make_pipeline, peer, fault_case, fault):
    case = fault_case(fault)
    bad = TOKEN_FAULTS[fault]
    peer.routes["/oauth"] = scripted(then=500) if bad is None else bad_then(bad, token_route())
    pipeline, worker = start(make_pipeline, peer, {"name": "OAuth", "authentication": authentication(peer), "hooks": [
        {"type": "order_created", "endpoint": peer.url("/crm")}]})
    case.emit(pipeline, TRIGGERS, 20_000)

    case.finish(pipeline, peer, expect="dead" if bad is None else "delivered",
                notes=lambda: f"{len(peer.at('/oauth'))} token requests")
    assert worker.proc.poll() is None
    assert "token_error" in error_kinds(pipeline)
    # nothing ever went out without a token
    assert all(r.headers.get("authorization", "").startswith("Bearer tok-") for r in peer.at("/crm"))


QUERY = json.dumps({"query": "query ($id: ID!) { order(id: $id) { id hash } }", "variables": {"id": "%ORDER_ID%"}})


def graphql_hook(peer):
    return {"name": "GQL", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm"),
                                      "origin": {"endpoint": peer.url("/graphql"), "body": QUERY}}]}


def test_graphql_origin_that_answers_errors(make_pipeline, peer, fault_case):
    case = fault_case("GraphQL origin answers errors, no data (never recovers)")
    peer.routes["/graphql"] = lambda recorded: (200, {}, {"errors": [{"message": "internal error"}], "data": None})
    pipeline, worker = start(make_pipeline, peer, graphql_hook(peer))
    case.emit(pipeline, TRIGGERS, 21_000)

    case.finish(pipeline, peer, expect="dead", notes=lambda: f"{len(peer.at('/graphql'))} origin requests")
    assert worker.proc.poll() is None
    assert error_kinds(pipeline) == {"origin_error"}
    assert peer.at("/crm") == [], "nothing is sent without its payload"


def test_graphql_origin_that_hangs(make_pipeline, peer, fault_case):
    case = fault_case("GraphQL origin hangs 30 requests past the timeout, then recovers")
    release = threading.Event()
    answer = graphql_route()
    hanging = iter(range(30))
    lock = threading.Lock()

    def route(recorded):
        with lock:
            hang = next(hanging, None) is not None
        if hang:
            release.wait(10)  # the fault itself: an origin that does not answer
        return answer(recorded)
    peer.routes["/graphql"] = route
    pipeline, worker = start(make_pipeline, peer, graphql_hook(peer))
    try:
        case.emit(pipeline, TRIGGERS, 22_000)
        case.finish(pipeline, peer, notes=lambda: f"{len(peer.at('/graphql'))} origin requests")
    finally:
        release.set()
    assert worker.proc.poll() is None
    assert "origin_error" in error_kinds(pipeline)
    ids = sorted(r.json()["data"]["order"]["id"] for r in peer.at("/crm"))
    assert ids == sorted(str(22_000 + n) for n in range(TRIGGERS))
