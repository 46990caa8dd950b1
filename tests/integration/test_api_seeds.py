"""Every curl of doo's configuration-API seed, against the service with real credentials.

Runs on SQLite and on a fresh PostgreSQL database (the ``database_url`` fixture).
"""

import json
import re
import uuid

import pytest
import sqlalchemy as sa

from schemas.types import TYPES
from storage import tenancy
from storage.tables import hooks as hooks_table
from storage.tables import webhook_groups
from tests.support.api import assert_error_envelope
from tests.support.seeds import SEED_SECRET
from tests.support.seeds import graphql_config
from tests.support.seeds import graphql_hook
from tests.support.seeds import seed_config
from tests.support.tenants import new_tenant

HOST = "http://localhost"
MASK = "********"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SEED_HOOK_TYPES = ["event_created", "event_removed", "event_updated", "order_created", "order_removed",
                   "order_updated", "order_cancelled"]


@pytest.fixture
def tenant(tenant_factory):
    return tenant_factory()


def group_row(app, group_id):
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        return conn.execute(sa.select(webhook_groups).where(webhook_groups.c.id == group_id)).first()


def stored_secret(app, group_id):
    return app.extensions["doo_webhooks"].box.decrypt(group_row(app, group_id).client_secret_enc)


def assert_no_secret(response, *secrets):
    text = response.get_data(as_text=True)
    for secret in (SEED_SECRET, *secrets):
        assert secret not in text


# --- POST /v1/oauth ----------------------------------------------------------------------

def test_oauth_issues_a_token_in_doos_envelope(client, tenant_factory, settings):
    tenant = tenant_factory(login=False)
    response = client.post("/v1/oauth", json=tenant.token_request(),
                           headers={"x-api-key": tenant.api_key, "Content-Type": "application/json"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["response_status"] == 200
    assert body["developer_message"] == "Success"
    assert body["user_message"] == "Success"
    assert body["_links"] == {"self": {"href": f"{HOST}/v1/oauth"}}
    data = body["data"]
    assert set(data) == {"access_token", "refresh_token", "expires_in"}
    assert isinstance(data["access_token"], str) and len(data["access_token"]) >= 32
    assert data["refresh_token"] is None
    assert data["expires_in"] == settings.access_token_ttl
    assert tenant.client_secret not in response.get_data(as_text=True)
    # the token works
    tenant.access_token = data["access_token"]
    assert client.get("/v1/organizers/current/organizations", headers=tenant.headers()).status_code == 200


def test_each_oauth_call_gives_a_new_token(tenant):
    first = tenant.access_token
    second = tenant.login()
    assert first != second
    for token in (first, second):
        tenant.access_token = token
        assert tenant.list_groups().status_code == 200


@pytest.mark.parametrize("case", ["bad_secret", "bad_client_id", "unknown_api_key", "missing_api_key",
                                  "other_tenants_api_key"])
def test_oauth_refuses_wrong_credentials_with_401(client, tenant_factory, case):
    tenant, other = tenant_factory(login=False), tenant_factory(login=False)
    body = tenant.token_request()
    headers = {"x-api-key": tenant.api_key}
    if case == "bad_secret":
        body["client_secret"] = tenant.client_secret + "x"
    elif case == "bad_client_id":
        body["client_id"] = other.client_id
    elif case == "unknown_api_key":
        headers["x-api-key"] = "dk_unknown"
    elif case == "missing_api_key":
        headers = {}
    else:
        headers["x-api-key"] = other.api_key
    response = client.post("/v1/oauth", json=body, headers=headers)
    error = assert_error_envelope(response, 401)
    assert "access_token" not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error["user_message"] == "You are not authenticated."


@pytest.mark.parametrize("change, field", [
    ({"client_id": None}, "client_id"),
    ({"client_secret": None}, "client_secret"),
    ({"grant_type": None}, "grant_type"),
    ({"grant_type": "password"}, "grant_type"),
    ({"grant_type": "refresh_token"}, "grant_type"),
])
def test_oauth_refuses_missing_fields_and_wrong_grant_type_with_400(client, tenant_factory, change, field):
    tenant = tenant_factory(login=False)
    body = {k: v for k, v in dict(tenant.token_request(), **change).items() if v is not None}
    response = client.post("/v1/oauth", json=body, headers={"x-api-key": tenant.api_key})
    error = assert_error_envelope(response, 400)
    assert field in error["errors"]
    assert "access_token" not in response.get_data(as_text=True)


# --- create --------------------------------------------------------------------------------

def test_create_the_seed_default_case(app, client, tenant):
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=seed_config(),
                           headers=tenant.headers(**{"Content-Type": "application/json"}))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"response_status", "developer_message", "user_message", "data", "_links"}
    assert body["response_status"] == 200
    assert body["developer_message"] == body["user_message"] == "Success"
    assert UUID.match(body["data"])
    assert body["_links"] == {"self": {"href": f"{HOST}/v1/team/{tenant.team_id}/webhooks"}}
    assert_no_secret(response)

    row = group_row(app, body["data"])
    assert row.organization_id == tenant.organization_id and row.team_id == tenant.team_id
    # encrypted at rest, and never beside the other authentication fields
    assert SEED_SECRET not in row.client_secret_enc and SEED_SECRET not in row.authentication
    assert stored_secret(app, body["data"]) == SEED_SECRET


def test_created_group_reads_back_as_configured_with_the_secret_masked(client, tenant):
    group_id = tenant.create_group()
    response = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers())
    assert response.status_code == 200
    assert_no_secret(response)
    body = response.get_json()
    assert body["response_status"] == 200
    expected = seed_config()
    expected["authentication"]["credentials"]["client_secret"] = MASK
    expected.update(id=group_id, _links={"self": {"href": f"{HOST}/v1/webhooks/{group_id}"}})
    assert body["data"] == expected


def test_create_answers_the_id_of_a_new_group_each_time(tenant):
    ids = {tenant.create_group() for _ in range(3)}
    assert len(ids) == 3
    assert tenant.list_groups().get_json()["total_items"] == 3


# --- list ----------------------------------------------------------------------------------

def test_list_is_hal_as_in_the_seed(client, tenant):
    group_id = tenant.create_group()
    response = tenant.list_groups()
    assert response.status_code == 200
    assert_no_secret(response)
    body = response.get_json()
    base = f"{HOST}/v1/team/{tenant.team_id}/webhooks"
    assert body["_links"] == {"self": {"href": f"{base}?page=1"}, "first": {"href": base},
                              "last": {"href": f"{base}?page=1"}}
    assert (body["page_count"], body["page_size"], body["total_items"], body["page"]) == (1, 25, 1, 1)
    [item] = body["_embedded"]["webhooks"]
    assert item["id"] == group_id
    assert item["name"] == "My Test Webhook"
    assert item["description"] == "Webhook for testing all the hook types"
    assert item["hooks"] == [{"type": t, "method": "POST", "endpoint": "https://requestb.in/123"}
                             for t in SEED_HOOK_TYPES]
    assert item["authentication"] == {
        "grant_type": "client_credentials", "endpoint": "https://requestb.in/123",
        "credentials": {"client_id": "doo", "client_secret": MASK},
        "header_format": "Authorization", "header_value_format": "Bearer %ACCESS_TOKEN%",
    }
    assert item["_links"] == {"self": {"href": f"{HOST}/v1/webhooks/{group_id}"}}


def test_an_empty_list_has_one_empty_page(tenant):
    body = tenant.list_groups().get_json()
    assert body["_embedded"] == {"webhooks": []}
    assert (body["page_count"], body["page_size"], body["total_items"], body["page"]) == (1, 25, 0, 1)
    assert "next" not in body["_links"] and "prev" not in body["_links"]


def test_list_pages_through_thirty_groups(tenant):
    created = []
    for i in range(30):
        config = seed_config()
        config["name"] = f"group {i:02d}"
        created.append(tenant.create_group(config))
    base = f"{HOST}/v1/team/{tenant.team_id}/webhooks"

    first = tenant.list_groups().get_json()
    assert (first["page_count"], first["page_size"], first["total_items"], first["page"]) == (2, 25, 30, 1)
    assert first["_links"] == {"self": {"href": f"{base}?page=1"}, "first": {"href": base},
                               "last": {"href": f"{base}?page=2"}, "next": {"href": f"{base}?page=2"}}
    assert len(first["_embedded"]["webhooks"]) == 25

    second = tenant.list_groups(page=2).get_json()
    assert (second["page_count"], second["page_size"], second["total_items"], second["page"]) == (2, 25, 30, 2)
    assert second["_links"] == {"self": {"href": f"{base}?page=2"}, "first": {"href": base},
                                "last": {"href": f"{base}?page=2"}, "prev": {"href": f"{base}?page=1"}}
    assert len(second["_embedded"]["webhooks"]) == 5

    # every group exactly once, in creation order
    listed = [item["id"] for item in first["_embedded"]["webhooks"] + second["_embedded"]["webhooks"]]
    assert listed == created

    everything = tenant.list_groups(page_size=100).get_json()
    assert (everything["page_count"], everything["page_size"], everything["total_items"]) == (1, 100, 30)
    assert [item["id"] for item in everything["_embedded"]["webhooks"]] == created

    past_the_end = tenant.list_groups(page=3).get_json()
    assert past_the_end["_embedded"]["webhooks"] == []
    assert past_the_end["_links"]["prev"] == {"href": f"{base}?page=2"}
    assert "next" not in past_the_end["_links"]


@pytest.mark.parametrize("params, field", [
    ({"page_size": 101}, "page_size"),
    ({"page_size": 0}, "page_size"),
    ({"page": 0}, "page"),
    ({"page": -1}, "page"),
    ({"page": "abc"}, "page"),
])
def test_list_refuses_bad_paging_with_400(tenant, params, field):
    error = assert_error_envelope(tenant.list_groups(**params), 400)
    assert field in error["errors"]


def test_graphql_hooks_are_listed_with_hashed_types(tenant):
    config = graphql_config()
    group_id = tenant.create_group(config)
    response = tenant.list_groups()
    assert_no_secret(response)
    [item] = response.get_json()["_embedded"]["webhooks"]
    assert item["id"] == group_id
    assert len(item["hooks"]) == len(config["hooks"])
    for listed, sent in zip(item["hooks"], config["hooks"]):
        match = re.fullmatch(r"(?P<type>[a-z_]+)_(?P<hash>[0-9a-f]{32})", listed["type"])
        assert match and match.group("type") == sent["type"], listed["type"]
        assert listed["origin"] == sent["origin"]  # the escaped body comes back byte for byte
        assert listed["endpoint"] == sent["endpoint"] and listed["method"] == "POST"


def test_two_graphql_hooks_of_one_type_stay_distinct(app, tenant):
    config = graphql_config()
    other_body = config["hooks"][0]["origin"]["body"].replace("title", "title startDate")
    config["hooks"] = [graphql_hook("event_created", config["hooks"][0]["origin"]["body"]),
                       graphql_hook("event_created", other_body)]
    group_id = tenant.create_group(config)
    [item] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    first, second = (hook["type"] for hook in item["hooks"])
    assert first != second
    assert first.startswith("event_created_") and second.startswith("event_created_")
    # both are stored as event_created hooks, so both match an event_created trigger
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        types = conn.execute(sa.select(hooks_table.c.type).where(hooks_table.c.group_id == group_id)).scalars()
        assert list(types) == ["event_created", "event_created"]


def test_on_prefixed_type_is_stored_without_it(app, tenant):
    config = seed_config()
    config["hooks"] = [{"type": "on_order_created", "method": "POST", "endpoint": "https://requestb.in/123"}]
    group_id = tenant.create_group(config)
    [item] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    assert [hook["type"] for hook in item["hooks"]] == ["order_created"]
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        row = conn.execute(sa.select(hooks_table).where(hooks_table.c.group_id == group_id)).one()
    assert (row.type, row.type_key) == ("order_created", "order_created")


# --- delete --------------------------------------------------------------------------------

def test_delete_as_in_the_seed_curl(client, tenant):
    group_id = tenant.create_group()
    # doo's curl sends only x-api-key and Content-Type
    response = client.delete(f"/v1/webhooks/{group_id}",
                             headers={"x-api-key": tenant.api_key, "Content-Type": "application/json"})
    assert response.status_code == 204
    assert response.get_data() == b""
    assert tenant.list_groups().get_json()["total_items"] == 0
    assert_error_envelope(client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()), 404)


def test_delete_with_a_valid_bearer_token_too(client, tenant):
    group_id = tenant.create_group()
    response = client.delete(f"/v1/webhooks/{group_id}", headers=tenant.headers())
    assert response.status_code == 204 and response.get_data() == b""
    assert tenant.list_groups().get_json()["total_items"] == 0


def test_delete_of_an_unknown_id_is_204_too(client, tenant):
    kept = tenant.create_group()
    for unknown in (str(uuid.uuid4()), "not-even-a-uuid"):
        response = client.delete(f"/v1/webhooks/{unknown}", headers={"x-api-key": tenant.api_key})
        assert response.status_code == 204 and response.get_data() == b""
    assert [item["id"] for item in tenant.list_groups().get_json()["_embedded"]["webhooks"]] == [kept]


def test_delete_twice_is_204_twice(client, tenant):
    group_id = tenant.create_group()
    for _ in range(2):
        response = client.delete(f"/v1/webhooks/{group_id}", headers={"x-api-key": tenant.api_key})
        assert response.status_code == 204


def test_delete_of_another_organizations_group_is_204_and_deletes_nothing(client, tenant_factory):
    owner, stranger = tenant_factory(), tenant_factory()
    group_id = owner.create_group()
    response = client.delete(f"/v1/webhooks/{group_id}", headers={"x-api-key": stranger.api_key})
    assert response.status_code == 204 and response.get_data() == b""
    assert client.get(f"/v1/webhooks/{group_id}", headers=owner.headers()).status_code == 200
    assert owner.list_groups().get_json()["total_items"] == 1


@pytest.mark.parametrize("headers", [
    {},
    {"x-api-key": "dk_unknown"},
    "bad_bearer",
])
def test_delete_without_valid_credentials_is_401_and_deletes_nothing(client, tenant, headers):
    group_id = tenant.create_group()
    if headers == "bad_bearer":
        headers = {"x-api-key": tenant.api_key, "Authorization": "Bearer not-a-token"}
    assert_error_envelope(client.delete(f"/v1/webhooks/{group_id}", headers=headers), 401)
    assert tenant.list_groups().get_json()["total_items"] == 1


# --- organizations ---------------------------------------------------------------------------

def test_current_organizations_as_in_the_seed(app, client, tenant_factory):
    tenant = tenant_factory()
    second_team = tenant.add_team(name="Box office")
    # a membership in a second organization, as a viewer
    other = tenant_factory(login=False)
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        tenancy.add_membership(conn, tenant.organizer_id, other.team_id, "team_viewer")

    response = client.get("/v1/organizers/current/organizations",
                          headers=tenant.headers(**{"Content-Type": "application/json"}))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"organizations", "active_team", "_links"}
    assert body["_links"] == {"self": {"href": f"{HOST}/v1/organizers/current/organizations"}}
    assert body["organizations"] == [
        {"id": tenant.organization_id, "name": tenant.organization_name, "canEdit": True,
         "teams": [{"id": tenant.team_id, "name": None, "role": "team_admin"},
                   {"id": second_team, "name": "Box office", "role": "team_admin"}]},
        {"id": other.organization_id, "name": other.organization_name, "canEdit": False,
         "teams": [{"id": other.team_id, "name": None, "role": "team_viewer"}]},
    ]
    active = body["active_team"]
    assert set(active) == {"permissions", "id", "name", "organization_id", "user_id", "role",
                           "is_all_events_team", "show_info_box", "user_count", "live_events_count"}
    assert active["id"] == tenant.team_id
    assert active["organization_id"] == tenant.organization_id
    assert active["user_id"] == tenant.organizer_id
    assert active["role"] == "team_admin"
    assert active["is_all_events_team"] is True
    assert isinstance(active["permissions"], list) and all(isinstance(p, str) for p in active["permissions"])
    assert active["show_info_box"] is None and active["user_count"] is None
    assert active["live_events_count"] is None


def test_current_organizations_of_a_viewer_cannot_edit(client, tenant_factory):
    viewer = tenant_factory(role="team_viewer")
    body = client.get("/v1/organizers/current/organizations", headers=viewer.headers()).get_json()
    [org] = body["organizations"]
    assert org["canEdit"] is False
    assert org["teams"] == [{"id": viewer.team_id, "name": None, "role": "team_viewer"}]
    assert body["active_team"]["role"] == "team_viewer"


@pytest.mark.parametrize("path", ["/v1/organizers/current/organizations", "/v1/team/1/webhooks"])
@pytest.mark.parametrize("case", ["no_headers", "api_key_only", "bearer_only", "malformed_bearer"])
def test_calls_without_both_credentials_are_401(client, tenant, path, case):
    headers = {
        "no_headers": {},
        "api_key_only": {"x-api-key": tenant.api_key},
        "bearer_only": {"Authorization": f"Bearer {tenant.access_token}"},
        "malformed_bearer": {"x-api-key": tenant.api_key, "Authorization": tenant.access_token},
    }[case]
    assert_error_envelope(client.get(path, headers=headers), 401)


# --- update ----------------------------------------------------------------------------------

def test_put_of_the_listed_object_keeps_the_stored_secret(app, client, tenant):
    group_id = tenant.create_group()
    encrypted_before = group_row(app, group_id).client_secret_enc
    [listed] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    assert listed["authentication"]["credentials"]["client_secret"] == MASK
    listed["name"] = "Renamed"
    listed["hooks"] = listed["hooks"][:2]

    response = client.put(f"/v1/webhooks/{group_id}", json=listed, headers=tenant.headers())
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["response_status"] == 200 and body["data"] == group_id
    assert body["_links"] == {"self": {"href": f"{HOST}/v1/webhooks/{group_id}"}}
    assert_no_secret(response)

    assert stored_secret(app, group_id) == SEED_SECRET
    assert group_row(app, group_id).client_secret_enc == encrypted_before
    after = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).get_json()["data"]
    assert after["name"] == "Renamed"
    assert [hook["type"] for hook in after["hooks"]] == ["event_created", "event_removed"]
    assert after["authentication"]["credentials"]["client_secret"] == MASK
    assert tenant.list_groups().get_json()["total_items"] == 1


def test_put_with_a_new_secret_replaces_it(app, client, tenant):
    group_id = tenant.create_group()
    config = seed_config()
    config["authentication"]["credentials"]["client_secret"] = "a-brand-new-secret"
    response = client.put(f"/v1/webhooks/{group_id}", json=config, headers=tenant.headers())
    assert response.status_code == 200
    assert "a-brand-new-secret" not in response.get_data(as_text=True)
    assert stored_secret(app, group_id) == "a-brand-new-secret"
    listing = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers())
    assert "a-brand-new-secret" not in listing.get_data(as_text=True)


def test_put_of_a_listed_graphql_group_keeps_its_hashed_types(app, client, tenant):
    group_id = tenant.create_group(graphql_config())
    [listed] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    types_before = [hook["type"] for hook in listed["hooks"]]
    listed["description"] = "changed"
    response = client.put(f"/v1/webhooks/{group_id}", json=listed, headers=tenant.headers())
    assert response.status_code == 200, response.get_data(as_text=True)
    [after] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    assert [hook["type"] for hook in after["hooks"]] == types_before
    assert after["description"] == "changed"
    assert stored_secret(app, group_id) == SEED_SECRET


def test_put_of_a_masked_secret_without_a_stored_one_is_400(app, client, tenant):
    config = seed_config()
    del config["authentication"]
    group_id = tenant.create_group(config)
    config = seed_config()
    config["authentication"]["credentials"]["client_secret"] = MASK
    error = assert_error_envelope(client.put(f"/v1/webhooks/{group_id}", json=config, headers=tenant.headers()), 400)
    assert error["errors"]["authentication"]["credentials"]["client_secret"]
    assert group_row(app, group_id).client_secret_enc is None


def test_put_of_an_unknown_group_is_404(client, tenant):
    missing = str(uuid.uuid4())
    error = assert_error_envelope(client.put(f"/v1/webhooks/{missing}", json=seed_config(),
                                             headers=tenant.headers()), 404)
    assert missing in error["developer_message"]
    assert tenant.list_groups().get_json()["total_items"] == 0


def test_posting_a_listed_object_with_the_masked_secret_is_refused_clearly(client, tenant):
    tenant.create_group()
    [listed] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=listed, headers=tenant.headers())
    error = assert_error_envelope(response, 400)
    [message] = error["errors"]["authentication"]["credentials"]["client_secret"]
    assert "masked" in message and "PUT /v1/webhooks/<id>" in message
    assert tenant.list_groups().get_json()["total_items"] == 1


def test_posting_a_listed_object_with_a_real_secret_creates_a_copy(client, tenant):
    """doo's own update recipe: list, adjust, create anew, remove the old one."""
    old = tenant.create_group()
    [listed] = tenant.list_groups().get_json()["_embedded"]["webhooks"]
    listed["authentication"]["credentials"]["client_secret"] = SEED_SECRET
    new = tenant.create_group(listed)
    assert new != old
    assert client.delete(f"/v1/webhooks/{old}", headers={"x-api-key": tenant.api_key}).status_code == 204
    assert [item["id"] for item in tenant.list_groups().get_json()["_embedded"]["webhooks"]] == [new]


# --- validation ------------------------------------------------------------------------------

def _without(key):
    def change(config):
        del config[key]
    return change


def _set(path, value):
    def change(config):
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _graphql_body(body, hook_type="event_created"):
    def change(config):
        config["hooks"] = [graphql_hook(hook_type, body)]
    return change


VALIDATION_CASES = [
    ("name_missing", _without("name"), ["name"]),
    ("name_empty", _set(["name"], ""), ["name"]),
    ("hooks_missing", _without("hooks"), ["hooks"]),
    ("hooks_empty", _set(["hooks"], []), ["hooks"]),
    ("unknown_type", _set(["hooks", 0, "type"], "order_exploded"), ["hooks", "0", "type"]),
    ("endpoint_ftp", _set(["hooks", 1, "endpoint"], "ftp://requestb.in/123"), ["hooks", "1", "endpoint"]),
    ("endpoint_no_scheme", _set(["hooks", 0, "endpoint"], "requestb.in/123"), ["hooks", "0", "endpoint"]),
    ("endpoint_missing", lambda c: c["hooks"][0].pop("endpoint"), ["hooks", "0", "endpoint"]),
    ("oauth_endpoint_not_http", _set(["authentication", "endpoint"], "javascript:alert(1)"),
     ["authentication", "endpoint"]),
    ("both_scopes", lambda c: c.update(event_id=1, event_guide_id=2), ["event_guide_id"]),
    ("header_value_without_placeholder", _set(["authentication", "header_value_format"], "Bearer token"),
     ["authentication", "header_value_format"]),
    ("secret_missing", lambda c: c["authentication"]["credentials"].pop("client_secret"),
     ["authentication", "credentials", "client_secret"]),
    ("unknown_placeholder", _graphql_body('{"query":"q","variables":{"id":"%FOO_ID%"}}'),
     ["hooks", "0", "origin", "body"]),
    ("order_placeholder_in_event_hook", _graphql_body('{"query":"q","variables":{"id":"%ORDER_ID%"}}'),
     ["hooks", "0", "origin", "body"]),
    ("origin_body_not_json", _graphql_body("query { event(id: %EVENT_ID%) { title } }"),
     ["hooks", "0", "origin", "body"]),
    ("origin_body_without_query", _graphql_body('{"variables":{"id":"%EVENT_ID%"}}'),
     ["hooks", "0", "origin", "body"]),
    ("unknown_top_level_key", lambda c: c.update(colour="blue"), ["colour"]),
    ("unknown_hook_key", _set(["hooks", 0, "colour"], "blue"), ["hooks", "0", "colour"]),
    ("method_unknown", _set(["hooks", 0, "method"], "BREW"), ["hooks", "0", "method"]),
]


@pytest.mark.parametrize("change, path", [case[1:] for case in VALIDATION_CASES],
                         ids=[case[0] for case in VALIDATION_CASES])
@pytest.mark.parametrize("verb", ["POST", "PUT"])
def test_invalid_configurations_are_400_with_field_errors(client, tenant, change, path, verb):
    existing = tenant.create_group() if verb == "PUT" else None
    config = seed_config()
    change(config)
    if verb == "POST":
        response = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=config, headers=tenant.headers())
    else:
        response = client.put(f"/v1/webhooks/{existing}", json=config, headers=tenant.headers())
    error = assert_error_envelope(response, 400)
    node = error["errors"]
    for key in path:
        assert key in node, (path, error["errors"])
        node = node[key]
    assert node and all(isinstance(message, str) for message in node)
    assert tenant.list_groups().get_json()["total_items"] == (1 if verb == "PUT" else 0)
    if verb == "PUT":  # the stored group is unchanged
        stored = client.get(f"/v1/webhooks/{existing}", headers=tenant.headers()).get_json()["data"]
        assert stored["name"] == "My Test Webhook" and len(stored["hooks"]) == 7


def test_unknown_type_message_lists_the_valid_types(client, tenant):
    config = seed_config()
    config["hooks"][0]["type"] = "order_exploded"
    error = assert_error_envelope(
        client.post(f"/v1/team/{tenant.team_id}/webhooks", json=config, headers=tenant.headers()), 400)
    [message] = error["errors"]["hooks"]["0"]["type"]
    assert "order_exploded" in message
    for valid in TYPES:
        assert valid in message
    assert "order_exploded" in error["developer_message"]


@pytest.mark.parametrize("scope", [{"event_id": 12345}, {"event_id": "12345"}, {"event_guide_id": "guide-7"}])
def test_one_scope_is_accepted(client, tenant, scope):
    config = dict(seed_config(), **scope)
    group_id = tenant.create_group(config)
    data = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).get_json()["data"]
    [(key, value)] = scope.items()
    assert data[key] == str(value)


def test_a_group_without_authentication_is_accepted(client, tenant):
    config = seed_config()
    del config["authentication"]
    group_id = tenant.create_group(config)
    data = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).get_json()["data"]
    assert "authentication" not in data


# --- requests the API cannot read --------------------------------------------------------------

def test_a_body_that_is_not_json_is_415(client, tenant):
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", data=json.dumps(seed_config()),
                           headers=tenant.headers(**{"Content-Type": "text/plain"}))
    assert_error_envelope(response, 415)
    assert tenant.list_groups().get_json()["total_items"] == 0


def test_a_form_body_is_415(client, tenant):
    response = client.post("/v1/oauth", data=tenant.token_request(), headers={"x-api-key": tenant.api_key})
    assert_error_envelope(response, 415)


@pytest.mark.parametrize("raw", ['{"name": "x", ', "not json at all", "", "[1, 2"])
def test_invalid_json_is_400(client, tenant, raw):
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", data=raw,
                           headers=tenant.headers(**{"Content-Type": "application/json"}))
    error = assert_error_envelope(response, 400)
    if raw:  # an empty body is no JSON at all: the required fields are reported missing instead
        assert error["developer_message"].startswith("The body is not valid JSON")
        assert error["errors"] == {"json": ["Invalid JSON body."]}
    else:
        assert {"name", "hooks"} <= set(error["errors"])
    assert tenant.list_groups().get_json()["total_items"] == 0


def test_a_json_array_body_is_400(client, tenant):
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=[seed_config()], headers=tenant.headers())
    assert_error_envelope(response, 400)


def test_a_body_over_max_body_bytes_is_413(make_app):
    app = make_app(max_body_bytes=2048)
    client = app.test_client()
    tenant = new_tenant(app, client)
    small = seed_config()
    assert len(json.dumps(small)) < 2048
    assert client.post(f"/v1/team/{tenant.team_id}/webhooks", json=small, headers=tenant.headers()).status_code == 200

    big = seed_config()
    big["hooks"] = big["hooks"] * 3
    assert len(json.dumps(big)) > 2048
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=big, headers=tenant.headers())
    error = assert_error_envelope(response, 413)
    assert "2048" in error["developer_message"]
    assert tenant.list_groups().get_json()["total_items"] == 1


@pytest.mark.parametrize("method, path", [
    ("PATCH", "/v1/webhooks/{group}"),
    ("POST", "/v1/webhooks/{group}"),
    ("GET", "/v1/oauth"),
    ("DELETE", "/v1/team/{team}/webhooks"),
    ("POST", "/v1/organizers/current/organizations"),
])
def test_a_wrong_method_is_405(client, tenant, method, path):
    group_id = tenant.create_group()
    response = client.open(path.format(group=group_id, team=tenant.team_id), method=method, headers=tenant.headers())
    assert_error_envelope(response, 405)
    assert response.headers.get("Allow")
    assert tenant.list_groups().get_json()["total_items"] == 1


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/team/abc/webhooks", "/team/1/webhooks", "/"])
def test_an_unknown_path_is_404(client, tenant, path):
    assert_error_envelope(client.get(path, headers=tenant.headers()), 404)


def test_an_unknown_group_is_404_with_the_envelope(client, tenant):
    missing = str(uuid.uuid4())
    error = assert_error_envelope(client.get(f"/v1/webhooks/{missing}", headers=tenant.headers()), 404)
    assert missing in error["developer_message"]


def test_secrets_never_appear_in_answers(client, tenant):
    """Walk every answer a tenant can get about its groups and search the raw text."""
    signing = "whsec_" + "A" * 43 + "="
    config = dict(graphql_config(), signing_secret=signing)
    group_id = tenant.create_group(config)
    plain_id = tenant.create_group()
    answers = [
        tenant.list_groups(),
        tenant.list_groups(page_size=100),
        client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()),
        client.get(f"/v1/webhooks/{plain_id}", headers=tenant.headers()),
        client.put(f"/v1/webhooks/{group_id}",
                   json=client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).get_json()["data"],
                   headers=tenant.headers()),
        client.get("/v1/organizers/current/organizations", headers=tenant.headers()),
    ]
    for response in answers:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert_no_secret(response, signing, tenant.client_secret, tenant.api_key)
    data = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).get_json()["data"]
    assert data["signing_secret"] == MASK
    assert data["authentication"]["credentials"]["client_secret"] == MASK


# --- hostile input: refused with the envelope, never a 500 -----------------------------------

@pytest.mark.parametrize("raw, reason", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    ('{"name": "x", "hooks": [], "id": ' + "[" * 70 + "]" * 70 + "}", "nested deeper"),
    ('{"name": "\\ud800", "hooks": []}', "surrogate"),
    ('{"name\\udfff": "x"}', "surrogate"),
    ('{"name": "x", "event_id": ' + "1" * 5000 + "}", "digits"),
], ids=["deep_body", "deep_ignored_field", "lone_surrogate_value", "lone_surrogate_key", "5000_digit_number"])
def test_unreadable_json_is_400_not_500(client, tenant, raw, reason):
    response = client.post(f"/v1/team/{tenant.team_id}/webhooks", data=raw,
                           headers=tenant.headers(**{"Content-Type": "application/json"}))
    error = assert_error_envelope(response, 400)
    assert reason in error["developer_message"]
    assert tenant.list_groups().get_json()["total_items"] == 0


def test_json_nested_as_deep_as_a_real_configuration_is_fine(tenant):
    config = seed_config()
    config["id"] = [[[[[["deep but harmless"]]]]]]  # read and ignored, like a listing's id
    tenant.create_group(config)


@pytest.mark.parametrize("path, value", [
    (["name"], "My\x00Webhook"),
    (["description"], "\x00"),
    (["event_id"], "12\x003"),
    (["authentication", "credentials", "client_id"], "doo\x00"),
    (["authentication", "header_format"], "X-Token\x00"),
], ids=["name", "description", "event_id", "client_id", "header_format"])
@pytest.mark.parametrize("verb", ["POST", "PUT"])
def test_nul_characters_are_refused_with_a_field_error(client, tenant, path, value, verb):
    """PostgreSQL text cannot hold NUL: refused up front instead of failing at the INSERT."""
    existing = tenant.create_group()
    config = seed_config()
    _set(path, value)(config)
    if verb == "POST":
        response = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=config, headers=tenant.headers())
    else:
        response = client.put(f"/v1/webhooks/{existing}", json=config, headers=tenant.headers())
    error = assert_error_envelope(response, 400)
    node = error["errors"]
    for key in path:
        node = node[key]
    assert node
    assert tenant.list_groups().get_json()["total_items"] == 1


def test_ids_with_nul_characters_are_missing_not_500(client, tenant):
    group_id = tenant.create_group()
    nul_id = "%00" + group_id
    assert_error_envelope(client.get(f"/v1/webhooks/{nul_id}", headers=tenant.headers()), 404)
    assert_error_envelope(client.put(f"/v1/webhooks/{nul_id}", json=seed_config(), headers=tenant.headers()), 404)
    response = client.delete(f"/v1/webhooks/{nul_id}", headers={"x-api-key": tenant.api_key})
    assert response.status_code == 204 and response.get_data() == b""
    assert_error_envelope(client.get(f"/v1/triggers/{nul_id}", headers=tenant.headers()), 404)
    assert tenant.list_groups().get_json()["total_items"] == 1


@pytest.mark.parametrize("client_id", ["dc_é", "\x00", "ДОО"], ids=["latin", "nul", "cyrillic"])
def test_oauth_with_a_non_ascii_client_id_is_401_not_500(client, tenant_factory, client_id):
    tenant = tenant_factory(login=False)
    response = client.post("/v1/oauth", json=tenant.token_request(client_id=client_id),
                           headers={"x-api-key": tenant.api_key})
    assert_error_envelope(response, 401)
