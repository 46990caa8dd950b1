"""The platform's GraphQL credentials go to the platform's origin only, never to any URL an
organizer typed into a hook."""

import json
import types

import pytest

from tests.conftest import make_settings
from tests.support.servers import Peer
from tests.support.servers import graphql_route
from tests.support.tenants import new_tenant
from workers import http
from workers.payloads import origin_payload

BODY = json.dumps({"query": "query ($id: ID!) { order(id: $id) { id hash } }", "variables": {"id": "%ORDER_ID%"}})


@pytest.fixture
def origin():
    peer = Peer()
    peer.routes["/graphql"] = graphql_route()
    yield peer
    peer.close()


def row_for(url):
    return types.SimpleNamespace(
        origin_body=BODY, origin_method="POST", origin_endpoint=url, organization_id=1, event_id="7",
        entity_kind="order", entity_id="42", entity=json.dumps({"order_details": {"id": 42}}))


@pytest.mark.parametrize("listed, sent", [(True, True), (False, False)])
def test_platform_credentials_only_reach_a_listed_origin(tmp_path, origin, listed, sent):
    settings = make_settings(tmp_path, "sqlite://", origin_api_key="platform-key", origin_token="platform-token",
                             origin_urls=origin.url("/graphql") if listed else "https://gql.doo.test/")

    answer = origin_payload(row_for(origin.url("/graphql")), settings, http.session_for(settings))

    assert json.loads(answer) == {"data": {"order": {"id": "42", "hash": "h-42"}}}
    (request,) = origin.requests
    assert ("x-api-key" in request.headers, "authorization" in request.headers) == (sent, sent)
    if sent:
        assert request.headers["x-api-key"] == "platform-key"
        assert request.headers["authorization"] == "Bearer platform-token"


def test_hooks_may_only_name_a_listed_origin(make_app):
    app = make_app(origin_urls=("https://gql.doo.test/",))
    client = app.test_client()
    tenant = new_tenant(app, client)

    def create(origin_url):
        return client.post(f"/v1/team/{tenant.team_id}/webhooks", headers=tenant.headers(), json={
            "name": "GQL", "hooks": [{"type": "order_created", "endpoint": "https://crm.example.test/doo",
                                      "origin": {"endpoint": origin_url, "body": BODY}}]})

    assert create("https://gql.doo.test/graphql").status_code == 200
    refused = create("https://attacker.example.test/graphql")
    assert refused.status_code == 400
    assert "gql.doo.test" in refused.json["errors"]["hooks"]["0"]["origin"][0]
