"""services.initialization called directly: who may start one (a viewer may not, an organizer
only in their own organizations, the OPERATOR in every one), what it queues, its progress."""

import pytest

from services import initialization
from services.errors import Forbidden
from services.errors import Invalid
from services.errors import NotFound
from services.tenancy import OPERATOR
from storage.db import utcnow
from tests.support.tenants import caller_of
from workers.fanout import fan_out
from workers.producer import prepare

HOOKS = {"name": "Box office CRM", "hooks": [
    {"type": "order_updated", "method": "POST", "endpoint": "https://crm.example/orders"}]}


def an_order(ctx, tenant, order_id=1):
    """A stored order of ``tenant``'s (event 7), which initialization can re-send."""
    fan_out(ctx.engine, prepare("order_created", {"order_details": {"id": order_id, "status": "active"},
                                                  "event": {"id": 7}}, organization_id=tenant.organization_id,
                                event_id="7"), utcnow())


def test_a_viewer_is_forbidden_to_start_an_initialization(ctx, tenant_factory):
    owner = tenant_factory()
    viewer = caller_of(ctx, tenant_factory(role="team_viewer", organization_id=owner.organization_id,
                                           team_id=owner.team_id))
    with pytest.raises(Forbidden):
        initialization.start(ctx, viewer, "orders", {"event_id": "7"})
    with pytest.raises(Forbidden) as refused:
        initialization.start(ctx, viewer, "events", {"organization_id": owner.organization_id})
    assert refused.value.message == "Your role in this organization may only read."
    assert initialization.progress(ctx, viewer, 10).organizations == {}


def test_an_organizer_initializes_only_their_organizations(ctx, tenant_factory):
    owner, stranger = tenant_factory(), tenant_factory()
    group_id = owner.create_group(HOOKS)
    an_order(ctx, owner)
    mine, theirs = caller_of(ctx, owner), caller_of(ctx, stranger)

    with pytest.raises(Forbidden):
        initialization.start(ctx, theirs, "events", {"organization_id": owner.organization_id})
    with pytest.raises(NotFound):  # another organization's group answers like a missing one
        initialization.start(ctx, theirs, "orders", {"event_id": "7", "webhook_configuration_id": group_id})
    assert initialization.start(ctx, theirs, "orders", {"event_id": "7"})["items_processed"] == 0

    started = initialization.start(ctx, mine, "orders", {"event_id": "7", "webhook_configuration_id": group_id})
    assert (started["items_processed"], started["deliveries_queued"]) == (1, 1)
    assert started["last_due_at"] is not None
    progress = initialization.progress(ctx, mine, 10)
    assert progress.organizations[owner.organization_id]["total"] == 1 and group_id in progress.groups


def test_a_wrong_request_is_invalid_or_not_found(ctx, tenant_factory):
    caller = caller_of(ctx, tenant_factory())
    with pytest.raises(NotFound):
        initialization.start(ctx, caller, "venues", {})
    with pytest.raises(Invalid) as refused:
        initialization.start(ctx, caller, "orders", {})
    assert set(refused.value.errors) == {"event_id"}
    with pytest.raises(Invalid) as refused:
        initialization.start(ctx, caller, "orders", {"event_id": "7", "webhook_type": ["event_created"]})
    assert refused.value.errors == {"webhook_type": {0: ["event_created does not carry orders"]}}


def test_the_operator_initializes_every_organization(ctx, tenant_factory):
    first, second = tenant_factory(), tenant_factory()
    for order_id, tenant in enumerate((first, second), start=1):
        tenant.create_group(HOOKS)
        an_order(ctx, tenant, order_id)
    assert initialization.start(ctx, OPERATOR, "orders", {"event_id": "7"})["deliveries_queued"] == 2
