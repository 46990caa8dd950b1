"""services.deliveries called directly, as every face calls it, on SQLite and PostgreSQL:
tenancy (another organization's delivery answers like a missing one, a viewer may only
read), the delivery's state (an in-flight one is not redelivered) and OPERATOR, the command
line's caller, who sees every organization."""

import pytest
import sqlalchemy as sa

from services import deliveries as service
from services.errors import Conflict
from services.errors import Forbidden
from services.errors import NotFound
from services.tenancy import OPERATOR
from storage import delivery_log
from storage.db import utcnow
from storage.tables import deliveries
from tests.support.tenants import caller_of
from workers.fanout import fan_out
from workers.producer import prepare

HOOKS = {"name": "Box office CRM", "hooks": [
    {"type": "order_created", "method": "POST", "endpoint": "https://crm.example/orders"}]}


def dead_letter(ctx, tenant, order_id=1):
    """One dead delivery of a new group of ``tenant``'s: (group id, delivery id)."""
    group_id = tenant.create_group(HOOKS)
    record = prepare("order_created", {"order_details": {"id": order_id, "status": "active"}, "event": {"id": 7}},
                     organization_id=tenant.organization_id)
    [delivery_id] = fan_out(ctx.engine, record, utcnow())
    set_status(ctx, delivery_id, "dead")
    return group_id, delivery_id


def set_status(ctx, delivery_id, status):
    with ctx.engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.id == delivery_id).values(status=status))


def status_of(ctx, delivery_id):
    with ctx.engine.begin() as conn:
        return delivery_log.delivery(conn, delivery_id).status


def test_another_organizations_delivery_and_group_answer_like_missing_ones(ctx, tenant_factory):
    owner, stranger = tenant_factory(), tenant_factory()
    group_id, delivery_id = dead_letter(ctx, owner)
    other = caller_of(ctx, stranger)

    for use_case in (service.delivery, service.redeliver):
        with pytest.raises(NotFound) as refused:
            use_case(ctx, other, delivery_id)
        assert refused.value.message == f"No delivery {delivery_id}."
    with pytest.raises(NotFound):
        service.deliveries(ctx, other, 10, 0, group_id=group_id)
    with pytest.raises(NotFound):
        service.replay_chosen(ctx, other, [delivery_id])
    with pytest.raises(NotFound):
        service.enable_hook(ctx, other, group_id, 0)
    assert service.deliveries(ctx, other, 10, 0) == (0, [])
    assert service.replay(ctx, other) == ([], 0)
    assert status_of(ctx, delivery_id) == "dead"

    found = service.delivery(ctx, caller_of(ctx, owner), delivery_id)
    assert (found.row.id, found.attempts, found.request_headers) == (delivery_id, [], None)


def test_a_viewer_reads_but_is_forbidden_to_redeliver_or_replay(ctx, tenant_factory, publisher):
    owner = tenant_factory()
    viewer = caller_of(ctx, tenant_factory(role="team_viewer", organization_id=owner.organization_id,
                                           team_id=owner.team_id))
    group_id, delivery_id = dead_letter(ctx, owner)

    assert service.delivery(ctx, viewer, delivery_id).row.status == "dead"
    assert [row.id for row in service.dead_letters(ctx, viewer, 10, 0, team_id=owner.team_id)[1]] == [delivery_id]
    with pytest.raises(Forbidden):
        service.redeliver(ctx, viewer, delivery_id)
    with pytest.raises(Forbidden):
        service.replay(ctx, viewer, team_id=owner.team_id)
    with pytest.raises(Forbidden):
        service.replay(ctx, viewer)
    with pytest.raises(Forbidden):
        service.enable_hook(ctx, viewer, group_id, 0)
    assert status_of(ctx, delivery_id) == "dead" and publisher.delivery_batches == []


def test_an_in_flight_delivery_is_a_conflict_and_a_dead_one_goes_out_again(ctx, tenant_factory, publisher):
    owner = tenant_factory()
    caller = caller_of(ctx, owner)
    _, delivery_id = dead_letter(ctx, owner)
    set_status(ctx, delivery_id, "in_flight")

    with pytest.raises(Conflict) as refused:
        service.redeliver(ctx, caller, delivery_id)
    assert "only a dead, delivered or skipped delivery" in refused.value.message
    with pytest.raises(Conflict):
        service.replay_chosen(ctx, caller, [delivery_id])
    assert publisher.delivery_batches == []

    set_status(ctx, delivery_id, "dead")
    assert service.redeliver(ctx, caller, delivery_id).status == "pending"
    assert publisher.delivery_batches == [[delivery_id]]  # the workers are nudged after the commit


def test_the_operator_sees_and_replays_every_organizations_deliveries(ctx, tenant_factory, publisher):
    first, second = tenant_factory(), tenant_factory()
    _, one = dead_letter(ctx, first, order_id=1)
    _, two = dead_letter(ctx, second, order_id=2)

    total, rows = service.dead_letters(ctx, OPERATOR, 10, 0)
    assert total == 2 and {row.id for row in rows} == {one, two}
    assert [row.id for row in service.deliveries(ctx, OPERATOR, 10, 0, organization_id=second.organization_id)[1]] \
        == [two]
    assert service.delivery(ctx, OPERATOR, one).row.organization_id == first.organization_id

    ids, remaining = service.replay(ctx, OPERATOR)
    assert sorted(ids) == sorted([one, two]) and remaining == 0
    assert status_of(ctx, one) == status_of(ctx, two) == "pending"
