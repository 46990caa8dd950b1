"""One organization never sees, changes or deletes another's webhook groups and triggers.

The matrix: the owner (control), an organizer of another organization, and a viewer of the
owner's own team, each trying every operation on the owner's team and group.
"""

import datetime
import json
import uuid

import pytest

from ground.crypto import digest
from ground.crypto import new_secret
from storage import tenancy
from storage import triggers
from storage.db import utcnow
from tests.support.api import assert_error_envelope
from tests.support.seeds import seed_config
from tests.support.tenants import new_tenant


@pytest.fixture
def world(tenant_factory):
    owner = tenant_factory()
    group_id = owner.create_group()
    return {
        "owner": owner,
        "group_id": group_id,
        "other_org": tenant_factory(),
        "viewer": tenant_factory(role="team_viewer", organization_id=owner.organization_id,
                                 team_id=owner.team_id),
        "member": tenant_factory(role="team_member", organization_id=owner.organization_id,
                                 team_id=owner.team_id),
    }


def _changed():
    config = seed_config()
    config["name"] = "changed by someone"
    return config


OPERATIONS = {
    "list": lambda c, t, team, group: c.get(f"/v1/team/{team}/webhooks", headers=t.headers()),
    "get": lambda c, t, team, group: c.get(f"/v1/webhooks/{group}", headers=t.headers()),
    "create": lambda c, t, team, group: c.post(f"/v1/team/{team}/webhooks", json=seed_config(),
                                               headers=t.headers()),
    "put": lambda c, t, team, group: c.put(f"/v1/webhooks/{group}", json=_changed(), headers=t.headers()),
    "delete": lambda c, t, team, group: c.delete(f"/v1/webhooks/{group}", headers={"x-api-key": t.api_key}),
}

# (actor, operation) -> expected status; "effect" says what must be true afterwards
MATRIX = [
    ("owner", "list", 200), ("owner", "get", 200), ("owner", "create", 200), ("owner", "put", 200),
    ("owner", "delete", 204),
    ("member", "list", 200), ("member", "get", 200), ("member", "create", 200), ("member", "put", 200),
    ("member", "delete", 204),
    ("viewer", "list", 200), ("viewer", "get", 200), ("viewer", "create", 403), ("viewer", "put", 403),
    ("viewer", "delete", 204),
    ("other_org", "list", 403), ("other_org", "get", 404), ("other_org", "create", 403),
    ("other_org", "put", 404), ("other_org", "delete", 204),
]


@pytest.mark.parametrize("actor, operation, status", MATRIX, ids=[f"{a}-{o}-{s}" for a, o, s in MATRIX])
def test_access_matrix(client, world, actor, operation, status):
    owner, group_id = world["owner"], world["group_id"]
    response = OPERATIONS[operation](client, world[actor], owner.team_id, group_id)
    if status >= 400:
        assert_error_envelope(response, status)
    else:
        assert response.status_code == status, response.get_data(as_text=True)

    may_write = actor in ("owner", "member")
    stored = client.get(f"/v1/webhooks/{group_id}", headers=owner.headers())
    listing = owner.list_groups().get_json()
    if operation == "delete" and may_write:
        assert response.get_data() == b""
        assert_error_envelope(stored, 404)
        assert listing["total_items"] == 0
        return
    assert stored.status_code == 200
    expected_name = "changed by someone" if (operation == "put" and may_write) else "My Test Webhook"
    assert stored.get_json()["data"]["name"] == expected_name
    assert listing["total_items"] == (2 if (operation == "create" and may_write) else 1)
    if operation == "delete":
        assert response.get_data() == b""
    if status == 200 and operation in ("list", "get"):
        text = response.get_data(as_text=True)
        assert group_id in text and "super-strong-secret" not in text
    if actor == "other_org":
        # and nothing of the owner's landed in the stranger's organization
        assert world["other_org"].list_groups().get_json()["total_items"] == 0


def test_another_organizations_group_is_indistinguishable_from_a_missing_one(client, world):
    stranger, group_id = world["other_org"], world["group_id"]
    missing = str(uuid.uuid4())
    for method, kwargs in (("GET", {}), ("PUT", {"json": seed_config()})):
        foreign = client.open(f"/v1/webhooks/{group_id}", method=method, headers=stranger.headers(), **kwargs)
        absent = client.open(f"/v1/webhooks/{missing}", method=method, headers=stranger.headers(), **kwargs)
        assert foreign.status_code == absent.status_code == 404
        assert dict(foreign.headers) == dict(absent.headers, **{"Content-Length": foreign.headers["Content-Length"]})
        assert foreign.get_data(as_text=True).replace(group_id, "<id>") == \
            absent.get_data(as_text=True).replace(missing, "<id>")


def test_viewer_role_is_named_in_the_403(client, world):
    viewer, owner = world["viewer"], world["owner"]
    error = assert_error_envelope(client.post(f"/v1/team/{owner.team_id}/webhooks", json=seed_config(),
                                              headers=viewer.headers()), 403)
    assert "team_viewer" in error["developer_message"]


def test_stranger_cannot_list_by_guessing_team_ids(client, world):
    stranger, owner = world["other_org"], world["owner"]
    for team_id in (owner.team_id, owner.team_id + 1000, 0):
        assert_error_envelope(client.get(f"/v1/team/{team_id}/webhooks", headers=stranger.headers()), 403)


def test_two_teams_of_one_organization_see_the_same_groups(client, tenant_factory):
    first = tenant_factory()
    second = tenant_factory(organization_id=first.organization_id)  # a new team in the same organization
    assert first.team_id != second.team_id
    a = first.create_group()
    b = second.create_group()
    for tenant in (first, second):
        listed = [item["id"] for item in tenant.list_groups().get_json()["_embedded"]["webhooks"]]
        assert listed == [a, b]
    # the organization owns the groups: the other team may change and delete them
    changed = _changed()
    assert client.put(f"/v1/webhooks/{a}", json=changed, headers=second.headers()).status_code == 200
    assert client.get(f"/v1/webhooks/{a}", headers=first.headers()).get_json()["data"]["name"] == changed["name"]
    assert client.delete(f"/v1/webhooks/{b}", headers={"x-api-key": first.api_key}).status_code == 204
    assert [item["id"] for item in second.list_groups().get_json()["_embedded"]["webhooks"]] == [a]


def test_one_organizer_sees_its_organization_through_any_of_its_teams(tenant_factory):
    tenant = tenant_factory()
    other_team = tenant.add_team()
    group_id = tenant.create_group()
    for team_id in (tenant.team_id, other_team):
        assert [i["id"] for i in tenant.list_groups(team_id=team_id).get_json()["_embedded"]["webhooks"]] == [group_id]


def test_a_token_only_works_with_its_own_api_key(client, tenant_factory):
    a, b = tenant_factory(), tenant_factory()
    b.create_group()
    mixed = {"x-api-key": b.api_key, "Authorization": f"Bearer {a.access_token}"}
    for path in (f"/v1/team/{b.team_id}/webhooks", f"/v1/team/{a.team_id}/webhooks",
                 "/v1/organizers/current/organizations"):
        assert_error_envelope(client.get(path, headers=mixed), 401)
    assert_error_envelope(client.post(f"/v1/team/{b.team_id}/webhooks", json=seed_config(), headers=mixed), 401)
    assert b.list_groups().get_json()["total_items"] == 1


def _store_token(tenant, expires_at):
    token = new_secret()
    with tenant.engine.begin() as conn:
        tenancy.store_access_token(conn, digest(token), tenant.credential_id, expires_at)
    return token


@pytest.mark.parametrize("delta, status", [(datetime.timedelta(seconds=-1), 401),
                                           (datetime.timedelta(hours=-2), 401),
                                           (datetime.timedelta(minutes=5), 200)])
def test_expired_tokens_are_refused(client, tenant_factory, delta, status):
    tenant = tenant_factory(login=False)
    tenant.access_token = _store_token(tenant, utcnow() + delta)
    response = tenant.list_groups()
    if status == 401:
        assert_error_envelope(response, 401)
    else:
        assert response.status_code == 200


def test_a_token_issued_with_a_zero_lifetime_is_already_expired(make_app):
    app = make_app(access_token_ttl=0)
    client = app.test_client()
    tenant = new_tenant(app, client)
    assert client.post("/v1/oauth", json=tenant.token_request(),
                       headers={"x-api-key": tenant.api_key}).get_json()["data"]["expires_in"] == 0
    assert_error_envelope(tenant.list_groups(), 401)


def test_a_revoked_credential_loses_its_tokens(client, tenant_factory):
    import sqlalchemy as sa

    from storage.tables import credentials
    tenant = tenant_factory()
    assert tenant.list_groups().status_code == 200
    with tenant.engine.begin() as conn:
        conn.execute(sa.update(credentials).where(credentials.c.id == tenant.credential_id)
                     .values(revoked_at=utcnow()))
    assert_error_envelope(tenant.list_groups(), 401)


def _store_trigger(tenant, trigger_id):
    now = utcnow()
    with tenant.engine.begin() as conn:
        triggers.store_trigger(conn, {
            "trigger_id": trigger_id, "type": "order_created", "organization_id": tenant.organization_id,
            "event_id": "3", "event_guide_id": None, "entity_kind": "order", "entity_id": "42",
            "entity": json.dumps({"order_details": {"id": 42, "status": "active"}, "event": {"id": 3},
                                   "event_id": 3}),
            "occurred_at": now, "received_at": now, "delivery_count": 0,
        })


def test_a_trigger_is_visible_to_its_organization_only(client, tenant_factory):
    owner, stranger = tenant_factory(), tenant_factory()
    viewer = tenant_factory(role="team_viewer", organization_id=owner.organization_id, team_id=owner.team_id)
    trigger_id = f"t-{uuid.uuid4().hex}"
    _store_trigger(owner, trigger_id)

    for reader in (owner, viewer):
        response = client.get(f"/v1/triggers/{trigger_id}", headers=reader.headers())
        assert response.status_code == 200, response.get_data(as_text=True)
        data = response.get_json()["data"]
        assert data["trigger_id"] == trigger_id
        assert data["organization_id"] == owner.organization_id
        assert (data["type"], data["entity_kind"], data["entity_id"]) == ("order_created", "order", "42")
        assert data["deliveries"] == [] and data["delivery_count"] == 0
        for key in ("occurred_at", "received_at"):  # RFC 3339, with the UTC offset
            assert datetime.datetime.fromisoformat(data[key]).utcoffset() == datetime.timedelta(0)

    foreign = client.get(f"/v1/triggers/{trigger_id}", headers=stranger.headers())
    missing_id = f"t-{uuid.uuid4().hex}"
    absent = client.get(f"/v1/triggers/{missing_id}", headers=stranger.headers())
    assert_error_envelope(foreign, 404)
    assert_error_envelope(absent, 404)
    assert foreign.get_data(as_text=True).replace(trigger_id, "<id>") == \
        absent.get_data(as_text=True).replace(missing_id, "<id>")
    assert_error_envelope(client.get(f"/v1/triggers/{trigger_id}", headers={"x-api-key": stranger.api_key}), 401)
