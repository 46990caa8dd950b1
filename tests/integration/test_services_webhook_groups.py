"""The webhook groups' use cases called directly, without Flask: tenancy, roles, masking and
validation are the service layer's own (services.webhook_groups), whichever face calls it.
The app only makes the tenants (tests.support.tenants); every call below is a plain function."""

import pytest

from ground.crypto import MASK
from schemas.webhook_config import WebhookConfigSchema
from services import webhook_groups
from services.errors import Forbidden
from services.errors import Invalid
from services.errors import NotFound
from services.tenancy import OPERATOR
from storage.db import utcnow
from tests.support.seeds import SEED_SECRET
from tests.support.seeds import seed_config
from tests.support.tenants import caller_of
from tests.support.tenants import new_tenant


@pytest.fixture
def people(app, client, ctx):
    """An owner, an organizer of another organization and a viewer of the owner's team, as Callers."""
    owner = new_tenant(app, client, login=False)
    other = new_tenant(app, client, login=False)
    viewer = new_tenant(app, client, role="team_viewer", organization_id=owner.organization_id,
                        team_id=owner.team_id, login=False)
    return {"owner": caller_of(ctx, owner), "other": caller_of(ctx, other), "viewer": caller_of(ctx, viewer),
            "team_id": owner.team_id, "other_team_id": other.team_id}


def config(**changes):
    return WebhookConfigSchema().load(dict(seed_config(), **changes))


def test_a_generated_secret_is_returned_once_and_every_read_masks_secrets(ctx, people):
    owner, team_id = people["owner"], people["team_id"]
    saved = webhook_groups.create(ctx, owner, team_id, config(generate_signing_secret=True))
    assert saved.signing_secret.startswith("whsec_")

    shown = webhook_groups.get(ctx, owner, saved.id)
    assert shown["signing_secret"] == MASK
    assert shown["authentication"]["credentials"]["client_secret"] == MASK
    assert "_links" not in shown  # the face adds its own links
    page = webhook_groups.page(ctx, owner, team_id, 1, 25)
    assert (page.total, [item["id"] for item in page.items]) == (1, [saved.id])
    for clear in (saved.signing_secret, SEED_SECRET):
        assert clear not in repr(shown) and clear not in repr(page)


def test_another_organizations_group_is_not_found_and_survives_its_delete(ctx, people):
    owner, other = people["owner"], people["other"]
    group_id = webhook_groups.create(ctx, owner, people["team_id"], config()).id
    with pytest.raises(NotFound):
        webhook_groups.get(ctx, other, group_id)
    with pytest.raises(NotFound):
        webhook_groups.update(ctx, other, group_id, config(name="taken over"))
    with pytest.raises(NotFound):
        webhook_groups.rotate_secret(ctx, other, group_id)
    with pytest.raises(NotFound):
        webhook_groups.timeline(ctx, other, group_id, utcnow())
    assert webhook_groups.delete(ctx, other, group_id) is None  # silently: no oracle
    assert webhook_groups.get(ctx, owner, group_id)["name"] == "My Test Webhook"
    assert webhook_groups.overview(ctx, other, utcnow(), 500).groups == []


def test_a_viewer_reads_but_is_forbidden_to_change(ctx, people):
    owner, viewer, team_id = people["owner"], people["viewer"], people["team_id"]
    group_id = webhook_groups.create(ctx, owner, team_id, config()).id
    assert webhook_groups.get(ctx, viewer, group_id)["id"] == group_id
    with pytest.raises(Forbidden):
        webhook_groups.create(ctx, viewer, team_id, config())
    with pytest.raises(Forbidden):
        webhook_groups.update(ctx, viewer, group_id, config(name="changed"))
    with pytest.raises(Forbidden):
        webhook_groups.rotate_secret(ctx, viewer, group_id)
    webhook_groups.delete(ctx, viewer, group_id)
    assert webhook_groups.get(ctx, owner, group_id)["id"] == group_id
    with pytest.raises(Forbidden):  # not a member of the other organization's team at all
        webhook_groups.page(ctx, viewer, people["other_team_id"], 1, 25)


def test_the_operator_reaches_every_organization(ctx, people):
    group_id = webhook_groups.create(ctx, people["owner"], people["team_id"], config()).id
    assert webhook_groups.get(ctx, OPERATOR, group_id)["id"] == group_id
    rotated = webhook_groups.rotate_secret(ctx, OPERATOR, group_id, grace=0)
    assert rotated.signing_secret.startswith("whsec_") and rotated.previous_signing_secret_expires_at is None
    assert webhook_groups.timeline(ctx, OPERATOR, group_id, utcnow()).group.id == group_id
    webhook_groups.delete(ctx, OPERATOR, group_id)
    with pytest.raises(NotFound):
        webhook_groups.get(ctx, people["owner"], group_id)


def test_what_delivery_would_refuse_is_invalid_with_field_errors(ctx, people):
    owner, team_id = people["owner"], people["team_id"]
    blocked = config()
    blocked["hooks"][1]["endpoint"] = "http://10.1.2.3/hook"
    with pytest.raises(Invalid) as refused:
        webhook_groups.create(ctx, owner, team_id, blocked)
    assert list(refused.value.errors) == ["hooks"] and list(refused.value.errors["hooks"]) == [1]
    with pytest.raises(Invalid) as refused:
        webhook_groups.create(ctx, owner, team_id, config(signing_secret=MASK))
    assert list(refused.value.errors) == ["signing_secret"]
    group_id = webhook_groups.create(ctx, owner, team_id, config()).id
    with pytest.raises(Invalid) as refused:  # nothing stored to keep
        webhook_groups.update(ctx, owner, group_id, config(signing_secret=MASK))
    assert refused.value.errors == {"signing_secret": ["there is no stored signing secret to keep"]}


def test_the_overview_shows_groups_without_their_secrets(ctx, people):
    owner = people["owner"]
    group_id = webhook_groups.create(ctx, owner, people["team_id"], config(generate_signing_secret=True)).id
    found = webhook_groups.overview(ctx, owner, utcnow(), 500)
    assert [group.id for group in found.groups] == [group_id] and not found.truncated
    assert len(found.hooks[group_id]) == 7 and found.waiting == {} and found.health == {}
    assert not hasattr(found.groups[0], "signing_secret_enc")
