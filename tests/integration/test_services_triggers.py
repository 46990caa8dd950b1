"""services.triggers called directly: a trigger is accepted only with a platform key and only
once the broker has it; an organizer reads only their own organizations' triggers."""

import pytest

from services import access
from services import triggers
from services.errors import NotFound
from services.errors import Unauthorized
from services.errors import Unavailable
from services.tenancy import OPERATOR
from storage.db import utcnow
from tests.support.api import RecordingPublisher
from tests.support.api import create_platform_key
from workers.fanout import fan_out
from workers.producer import prepare

HOOKS = {"name": "Box office CRM", "hooks": [
    {"type": "order_created", "method": "POST", "endpoint": "https://crm.example/orders"}]}


def _record(organization_id):
    return prepare("order_created", {"order_details": {"id": 1, "status": "active"}, "event": {"id": 7}},
                   organization_id=organization_id)


def test_a_trigger_is_queued_with_a_platform_key_and_refused_while_the_broker_is_away(make_app):
    ctx = make_app().extensions["doo_webhooks"]
    key = create_platform_key(ctx.engine)
    with pytest.raises(Unauthorized):
        triggers.accept(ctx, "dp_unknown", _record(1))
    assert ctx.publisher.triggers == []

    record = _record(1)
    assert triggers.accept(ctx, key, record) == record["trigger_id"]
    assert ctx.publisher.triggers == [record]

    away = make_app(publisher=RecordingPublisher(error=ConnectionError("refused"))).extensions["doo_webhooks"]
    with pytest.raises(Unavailable) as refused:
        triggers.accept(away, key, _record(1))
    assert refused.value.message == "The trigger could not be queued (broker unavailable); send it again."


def test_another_organizations_trigger_is_not_found(app, tenant_factory):
    ctx = app.extensions["doo_webhooks"]
    owner, stranger = tenant_factory(), tenant_factory()
    owner.create_group(HOOKS)
    record = _record(owner.organization_id)
    [delivery_id] = fan_out(ctx.engine, record, utcnow())

    stranger_caller = access.authenticate(ctx, stranger.api_key, stranger.access_token)
    with pytest.raises(NotFound) as refused:
        triggers.trigger(ctx, stranger_caller, record["trigger_id"])
    assert refused.value.message == f"No trigger {record['trigger_id']}."

    owner_caller = access.authenticate(ctx, owner.api_key, owner.access_token)
    found = triggers.trigger(ctx, owner_caller, record["trigger_id"])
    assert (found["organization_id"], found["entity_id"]) == (owner.organization_id, "1")
    assert [d["id"] for d in found["deliveries"]] == [delivery_id]
    assert triggers.trigger(ctx, OPERATOR, record["trigger_id"])["trigger_id"] == record["trigger_id"]
