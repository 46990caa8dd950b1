"""POST /v1/triggers: the platform's door, guarded by a platform key, answered 202 once queued."""

import pytest

from tests.support.api import RecordingPublisher
from tests.support.api import assert_error_envelope
from tests.support.api import create_platform_key


ORDER = {"order_details": {"id": 42, "status": "active", "total_price": 12.5},
         "event": {"id": 3, "title": "Summer fest"}, "external_customer_id": "crm-7"}


def order_trigger(**changes):
    body = {"type": "on_order_created", "organization_id": 7, "entity": ORDER}
    body.update(changes)
    return body


@pytest.fixture
def platform_key(app):
    return create_platform_key(app.extensions["doo_webhooks"].engine)


def test_a_trigger_is_accepted_and_published(client, publisher, platform_key):
    response = client.post("/v1/triggers", json=order_trigger(), headers={"x-api-key": platform_key})
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert body["response_status"] == 202
    assert body["developer_message"] == body["user_message"] == "Accepted"
    trigger_id = body["data"]["trigger_id"]
    assert isinstance(trigger_id, str) and trigger_id
    assert body["_links"]["self"]["href"].endswith("/v1/triggers")

    [record] = publisher.triggers
    assert record["trigger_id"] == trigger_id
    assert record["type"] == "order_created"  # on_ prefix dropped
    assert record["entity_kind"] == "order" and record["entity_id"] == "42"
    assert record["organization_id"] == 7
    assert record["event_id"] == "3"
    # the entity as sent, with event_id at its top level
    assert record["entity"] == dict(ORDER, event_id=3)
    assert record["occurred_at"]
    assert publisher.delivery_batches == []


def test_the_callers_trigger_id_and_time_are_kept(client, publisher, platform_key):
    body = order_trigger(trigger_id="platform-123", occurred_at="2024-05-01T10:00:00+02:00", event_id="3")
    response = client.post("/v1/triggers", json=body, headers={"x-api-key": platform_key})
    assert response.status_code == 202
    assert response.get_json()["data"]["trigger_id"] == "platform-123"
    [record] = publisher.triggers
    assert record["trigger_id"] == "platform-123"
    assert record["occurred_at"] == "2024-05-01T08:00:00.000000+00:00"


@pytest.mark.parametrize("kind, body, entity_id, event_id", [
    ("event", {"type": "event_updated", "organization_id": 1, "entity": {"id": "ev-9", "status": "live"}},
     "ev-9", "ev-9"),
    ("attendee", {"type": "attendee_checkin", "organization_id": 1,
                  "entity": {"id": 5, "status": "active", "order_id": 42, "event_id": 3}}, "5", "3"),
])
def test_other_kinds_are_published_too(client, publisher, platform_key, kind, body, entity_id, event_id):
    assert client.post("/v1/triggers", json=body, headers={"x-api-key": platform_key}).status_code == 202
    [record] = publisher.triggers
    assert (record["entity_kind"], record["entity_id"], record["event_id"]) == (kind, entity_id, event_id)
    assert record["entity"]["event_id"] is not None


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "dp_wrong"}, {"x-api-key": " "}, "organizer_key"])
def test_without_a_platform_key_it_is_401(client, publisher, platform_key, tenant_factory, headers):
    if headers == "organizer_key":  # an organizer's api key (even with its token) is no platform key
        headers = tenant_factory().headers()
    response = client.post("/v1/triggers", json=order_trigger(), headers=headers)
    assert_error_envelope(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert publisher.triggers == []


def test_a_revoked_platform_key_is_401(app, client, publisher, platform_key):
    import sqlalchemy as sa

    from ground.crypto import digest
    from storage.db import utcnow
    from storage.tables import platform_keys
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        conn.execute(sa.update(platform_keys).where(platform_keys.c.key_hash == digest(platform_key))
                     .values(revoked_at=utcnow()))
    assert_error_envelope(client.post("/v1/triggers", json=order_trigger(), headers={"x-api-key": platform_key}), 401)
    assert publisher.triggers == []


def _entity(entity):
    return lambda body: body.update(entity=entity)


BAD_TRIGGERS = [
    ("order_without_id", _entity({"order_details": {"status": "active"}, "event": {"id": 3}}),
     ["entity", "order_details", "id"]),
    ("order_without_event", _entity({"order_details": {"id": 42, "status": "active"}}), ["entity", "event"]),
    ("order_bad_status", _entity({"order_details": {"id": 42, "status": "paid"}, "event": {"id": 3}}),
     ["entity", "order_details", "status"]),
    ("event_unknown_status", lambda b: b.update(type="event_created", entity={"id": 3, "status": "exploded"}),
     ["entity", "status"]),
    ("event_without_id", lambda b: b.update(type="event_created", entity={"status": "live"}), ["entity", "id"]),
    ("unknown_type", lambda b: b.update(type="order_exploded"), ["type"]),
    ("organization_missing", lambda b: b.pop("organization_id"), ["organization_id"]),
    ("organization_as_text", lambda b: b.update(organization_id="7"), ["organization_id"]),
    ("organization_zero", lambda b: b.update(organization_id=0), ["organization_id"]),
    ("entity_not_object", lambda b: b.update(entity=[1]), ["entity"]),
    ("event_id_disagrees", lambda b: b.update(event_id=4), ["event_id"]),
    ("unknown_key", lambda b: b.update(organisation_id=7), ["organisation_id"]),
    ("bad_trigger_id", lambda b: b.update(trigger_id="has spaces"), ["trigger_id"]),
]


@pytest.mark.parametrize("change, path", [c[1:] for c in BAD_TRIGGERS], ids=[c[0] for c in BAD_TRIGGERS])
def test_a_bad_trigger_is_400_with_field_errors_and_nothing_is_published(client, publisher, platform_key,
                                                                        change, path):
    body = order_trigger()
    change(body)
    response = client.post("/v1/triggers", json=body, headers={"x-api-key": platform_key})
    error = assert_error_envelope(response, 400)
    node = error["errors"]
    for key in path:
        assert key in node, (path, error["errors"])
        node = node[key]
    assert node
    assert publisher.triggers == []


def test_a_trigger_that_is_not_json_is_415(client, publisher, platform_key):
    response = client.post("/v1/triggers", data="type=order_created",
                           headers={"x-api-key": platform_key, "Content-Type": "application/x-www-form-urlencoded"})
    assert_error_envelope(response, 415)
    assert publisher.triggers == []


@pytest.mark.parametrize("error", [ConnectionError("broker away"), OSError("no route"), RuntimeError("bug")])
def test_a_publisher_that_raises_gives_503(make_app, error):
    failing = RecordingPublisher(error=error)
    app = make_app(publisher=failing)
    key = create_platform_key(app.extensions["doo_webhooks"].engine)
    response = app.test_client().post("/v1/triggers", json=order_trigger(), headers={"x-api-key": key})
    body = assert_error_envelope(response, 503)
    assert "send it again" in body["developer_message"]
    assert str(error) not in response.get_data(as_text=True)
    assert failing.triggers == []


@pytest.mark.parametrize("change, field", [
    (lambda b: b.update(type="event_created", entity={"id": "ev\x00", "status": "live"}), "entity"),
    (lambda b: b.update(entity=dict(ORDER, order_details={"id": "4\x002", "status": "active"})), "entity"),
    (lambda b: b.update(event_guide_id="guide\x00"), "event_guide_id"),
], ids=["event_id", "order_id", "event_guide_id"])
def test_ids_the_ledger_cannot_store_are_refused(client, publisher, platform_key, change, field):
    body = order_trigger()
    change(body)
    error = assert_error_envelope(client.post("/v1/triggers", json=body, headers={"x-api-key": platform_key}), 400)
    assert field in error["errors"]
    assert publisher.triggers == []


def test_a_nul_in_free_text_of_the_entity_is_passed_through(client, publisher, platform_key):
    entity = dict(ORDER, note="line\x00break")
    response = client.post("/v1/triggers", json=order_trigger(entity=entity), headers={"x-api-key": platform_key})
    assert response.status_code == 202
    assert publisher.triggers[0]["entity"]["note"] == "line\x00break"


@pytest.mark.parametrize("depth", [200, 900, 5000])
def test_a_deeply_nested_entity_is_400_not_500(client, publisher, platform_key, depth):
    nested = "[" * depth + "]" * depth
    raw = '{"type": "event_created", "organization_id": 1, "entity": {"id": 1, "status": "live", "x": %s}}' % nested
    response = client.post("/v1/triggers", data=raw,
                           headers={"x-api-key": platform_key, "Content-Type": "application/json"})
    assert_error_envelope(response, 400)
    assert publisher.triggers == []


# --- the OpenAPI document shows the body to send -------------------------------------------

@pytest.mark.parametrize("kind", ["event", "order", "attendee"])
def test_each_documented_example_is_accepted_as_it_stands(client, publisher, platform_key, kind):
    from schemas.examples import TRIGGER_EXAMPLES
    examples = client.get("/v1/openapi.json").get_json()["paths"]["/v1/triggers"]["post"]["requestBody"][
        "content"]["application/json"]["examples"]
    body = examples[kind]["value"]
    assert body == TRIGGER_EXAMPLES[kind]
    response = client.post("/v1/triggers", json=body, headers={"x-api-key": platform_key})
    assert response.status_code == 202, response.get_data(as_text=True)
    [record] = publisher.triggers
    assert record["entity_kind"] == kind
    assert record["entity"] == dict(body["entity"], event_id=record["entity"]["event_id"])


def test_the_entity_is_typed_in_the_openapi_document(client):
    schemas = client.get("/v1/openapi.json").get_json()["components"]["schemas"]
    entity = schemas["Trigger"]["properties"]["entity"]
    assert [ref["$ref"] for ref in entity["anyOf"]] == [
        "#/components/schemas/Event", "#/components/schemas/Order", "#/components/schemas/Attendee"]
    assert "from `type`" in entity["description"]
    assert set(schemas["Event"]["required"]) == {"id", "status"}
    assert set(schemas["Order"]["required"]) == {"event", "order_details"}
    assert set(schemas["Attendee"]["required"]) == {"id", "status", "order_id", "event_id"}
    assert schemas["Event"]["properties"]["status"]["enum"] == ["draft", "live", "cancelled", "done", "deleted"]
    assert schemas["Event"]["properties"]["title"]["type"] == "string"
    assert schemas["Event"]["properties"]["total_amount"]["type"] == "number"
    assert {alt["type"] for alt in schemas["Event"]["properties"]["id"]["oneOf"]} == {"string", "integer"}
