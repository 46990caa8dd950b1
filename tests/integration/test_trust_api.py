"""Signing secrets the service generates and rotates, and per-endpoint limits, over the API
(issue 10). Which secrets sign is checked with the Standard Webhooks package in
tests/unit/test_signing.py; that a receiver verifies through a rotation, in
tests/e2e/test_trust.py."""

import datetime

import pytest
import sqlalchemy as sa

from storage.tables import webhook_groups
from tests.support.seeds import seed_config
from workers import signing


class Box:
    def __init__(self, app):
        self.box = app.extensions["doo_webhooks"].box
        self.engine = app.extensions["doo_webhooks"].engine

    def secrets(self, group_id):
        """(current, previous, previous_until) in plain text, as the worker will read them."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(webhook_groups).where(webhook_groups.c.id == group_id)).one()
        plain = (lambda t: self.box.decrypt(t) if t else None)
        return plain(row.signing_secret_enc), plain(row.previous_signing_secret_enc), row.previous_signing_until


@pytest.fixture
def box(app):
    return Box(app)


def generated_config(**extra):
    return dict(seed_config(), generate_signing_secret=True, **extra)


def test_a_generated_secret_is_returned_once_and_masked_afterwards(client, tenant_factory, box):
    tenant = tenant_factory()
    answer = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(), headers=tenant.headers())
    assert answer.status_code == 200, answer.json
    group_id, secret = answer.json["data"], answer.json["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert box.secrets(group_id) == (secret, None, None)
    shown = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).json["data"]
    assert shown["signing_secret"] == "********"
    assert secret not in str(tenant.list_groups().json)


def test_a_client_supplied_secret_works_as_before_and_is_never_echoed(client, tenant_factory, box):
    tenant = tenant_factory()
    mine = signing.new_secret()
    answer = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=dict(seed_config(), signing_secret=mine),
                         headers=tenant.headers())
    assert "signing_secret" not in answer.json
    assert box.secrets(answer.json["data"])[0] == mine


def test_generate_and_a_secret_together_is_a_clear_400(client, tenant_factory):
    tenant = tenant_factory()
    answer = client.post(f"/v1/team/{tenant.team_id}/webhooks", headers=tenant.headers(),
                         json=generated_config(signing_secret=signing.new_secret()))
    assert answer.status_code == 400
    assert "generate_signing_secret" in answer.json["errors"]


def test_rotation_keeps_the_old_secret_signing_for_the_grace_period(client, tenant_factory, box, app):
    tenant = tenant_factory()
    created = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(), headers=tenant.headers()).json
    group_id, old = created["data"], created["signing_secret"]
    before = datetime.datetime.utcnow()
    answer = client.post(f"/v1/webhooks/{group_id}/secret/rotate", headers=tenant.headers())
    assert answer.status_code == 200, answer.json
    new = answer.json["data"]["signing_secret"]
    assert new != old and new.startswith("whsec_")
    current, previous, until = box.secrets(group_id)
    assert (current, previous) == (new, old)
    grace = app.extensions["doo_webhooks"].settings.signing_grace
    assert before + datetime.timedelta(seconds=grace - 5) < until < before + datetime.timedelta(seconds=grace + 5)
    shown = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).json["data"]
    assert shown["signing_secret"] == "********"
    assert shown["previous_signing_secret_expires_at"] == answer.json["data"]["previous_signing_secret_expires_at"]
    assert new not in str(shown) and old not in str(shown)


def test_rotation_with_no_grace_stops_the_old_secret_at_once(client, tenant_factory, box):
    tenant = tenant_factory()
    group_id = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(),
                           headers=tenant.headers()).json["data"]
    answer = client.post(f"/v1/webhooks/{group_id}/secret/rotate", json={"grace_seconds": 0}, headers=tenant.headers())
    assert answer.json["data"]["previous_signing_secret_expires_at"] is None
    assert box.secrets(group_id) == (answer.json["data"]["signing_secret"], None, None)


def test_a_new_secret_on_put_is_a_rotation_and_the_mask_keeps_both(client, tenant_factory, box):
    tenant = tenant_factory()
    created = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(), headers=tenant.headers()).json
    group_id, old = created["data"], created["signing_secret"]
    mine = signing.new_secret()
    assert client.put(f"/v1/webhooks/{group_id}", json=dict(seed_config(), signing_secret=mine),
                      headers=tenant.headers()).status_code == 200
    current, previous, until = box.secrets(group_id)
    assert (current, previous) == (mine, old) and until is not None
    # doo's update recipe posts the listing back: the mask keeps the secrets and the grace
    listed = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).json["data"]
    assert client.put(f"/v1/webhooks/{group_id}", json=listed, headers=tenant.headers()).status_code == 200
    assert box.secrets(group_id) == (mine, old, until)
    # the same secret again is no rotation either
    assert client.put(f"/v1/webhooks/{group_id}", json=dict(seed_config(), signing_secret=mine),
                      headers=tenant.headers()).status_code == 200
    assert box.secrets(group_id) == (mine, old, until)


def test_generate_on_put_rotates_and_shows_the_new_secret_once(client, tenant_factory, box):
    tenant = tenant_factory()
    created = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(), headers=tenant.headers()).json
    answer = client.put(f"/v1/webhooks/{created['data']}", json=generated_config(), headers=tenant.headers())
    assert answer.status_code == 200
    assert box.secrets(created["data"])[:2] == (answer.json["signing_secret"], created["signing_secret"])


def test_removing_the_secret_drops_the_previous_one_too(client, tenant_factory, box):
    tenant = tenant_factory()
    created = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(), headers=tenant.headers()).json
    client.post(f"/v1/webhooks/{created['data']}/secret/rotate", headers=tenant.headers())
    assert client.put(f"/v1/webhooks/{created['data']}", json=dict(seed_config(), signing_secret=None),
                      headers=tenant.headers()).status_code == 200
    assert box.secrets(created["data"]) == (None, None, None)


def test_rotation_follows_the_tenancy_rules(client, tenant_factory, box):
    owner = tenant_factory()
    group_id = client.post(f"/v1/team/{owner.team_id}/webhooks", json=generated_config(),
                           headers=owner.headers()).json["data"]
    before = box.secrets(group_id)
    stranger = tenant_factory()
    assert client.post(f"/v1/webhooks/{group_id}/secret/rotate", headers=stranger.headers()).status_code == 404
    viewer = tenant_factory(role="team_viewer", organization_id=owner.organization_id, team_id=owner.team_id)
    assert client.post(f"/v1/webhooks/{group_id}/secret/rotate", headers=viewer.headers()).status_code == 403
    assert client.post(f"/v1/webhooks/{group_id}/secret/rotate", headers={}).status_code == 401
    assert client.post("/v1/webhooks/nope/secret/rotate", headers=owner.headers()).status_code == 404
    assert box.secrets(group_id) == before


@pytest.mark.parametrize("body, field", [
    ({"grace_seconds": -1}, "grace_seconds"),
    ({"grace_seconds": 31 * 86400}, "grace_seconds"),
    ({"grace_seconds": "soon"}, "grace_seconds"),
    ({"grace": 10}, "grace"),
])
def test_bad_rotation_arguments_are_a_400_naming_the_field(client, tenant_factory, body, field):
    tenant = tenant_factory()
    group_id = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=generated_config(),
                           headers=tenant.headers()).json["data"]
    answer = client.post(f"/v1/webhooks/{group_id}/secret/rotate", json=body, headers=tenant.headers())
    assert answer.status_code == 400
    assert field in answer.json["errors"]


def test_max_per_second_on_a_group_and_a_hook_round_trips(client, tenant_factory):
    tenant = tenant_factory()
    config = seed_config()
    config["max_per_second"] = 20
    config["hooks"][0]["max_per_second"] = 2.5
    group_id = tenant.create_group(config)
    shown = client.get(f"/v1/webhooks/{group_id}", headers=tenant.headers()).json["data"]
    assert shown["max_per_second"] == 20
    assert shown["hooks"][0]["max_per_second"] == 2.5
    assert all("max_per_second" not in hook for hook in shown["hooks"][1:])


@pytest.mark.parametrize("value", [0, -1, 0.001, 10001, "fast", True, float("inf")])
def test_an_unusable_max_per_second_is_a_400(client, tenant_factory, value):
    tenant = tenant_factory()
    config = seed_config()
    config["hooks"][0]["max_per_second"] = value
    answer = client.post(f"/v1/team/{tenant.team_id}/webhooks", headers=tenant.headers(),
                         data=__import__("json").dumps(config).replace("Infinity", "1e999"),
                         content_type="application/json")
    assert answer.status_code == 400
    assert "max_per_second" in str(answer.json["errors"])
