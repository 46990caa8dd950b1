"""fan_out against a real ledger (SQLite and PostgreSQL): scope, type, tenancy, idempotence, ordering keys.

Groups are written with storage.groups directly, so every scope the matcher must handle can
be set up without the API; triggers come from workers.producer.prepare, as in production.
"""

import datetime
import json
import itertools
import uuid

import pytest
import sqlalchemy as sa

from schemas.types import TYPES
import storage.groups
import storage.triggers
from storage import ledger
from storage import tenancy
from storage.db import engine_for
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import triggers
from workers.fanout import fan_out
from storage.ordering import key as ordering_key
from workers.producer import prepare

T0 = datetime.datetime(2030, 1, 1, 12, 0, 0)
_numbers = itertools.count(1)


@pytest.fixture
def engine(database_url):
    return engine_for(database_url)


def organization(engine):
    """A new organization with one team: (organization_id, team_id)."""
    n = next(_numbers)
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, f"Org {n}", T0)
        team = tenancy.create_team(conn, org, f"Team {n}", T0)
    return org, team


def add_group(engine, tenant, hook_specs, event_id=None, event_guide_id=None):
    """A group with ``hook_specs`` given as (type, endpoint) pairs; returns (group_id, {(type, endpoint): hook_id})."""
    org, team = tenant
    group_id = str(uuid.uuid4())
    group = {"id": group_id, "organization_id": org, "team_id": team, "name": "g", "event_id": event_id,
             "event_guide_id": event_guide_id, "created_at": T0, "updated_at": T0}
    rows = [{"type": t, "type_key": t, "method": "POST", "endpoint": e} for t, e in hook_specs]
    with engine.begin() as conn:
        storage.groups.insert_group(conn, group, rows)
        stored = storage.groups.hooks_of(conn, [group_id]).get(group_id, [])
    return group_id, {(h.type, h.endpoint): h.id for h in stored}


def entity(kind, entity_id, event_id):
    if kind == "event":
        return {"id": event_id, "status": "live"}
    if kind == "order":
        return {"order_details": {"id": entity_id, "status": "active"}, "event": {"id": event_id}}
    return {"id": entity_id, "status": "active", "order_id": 900, "event_id": event_id}


def trigger(tenant, trigger_type="order_created", entity_id=42, event_id=7, event_guide_id=None,
            trigger_id=None, occurred_at=None):
    return prepare(trigger_type, entity(TYPES[trigger_type], entity_id, event_id), organization_id=tenant[0],
                   event_guide_id=event_guide_id, trigger_id=trigger_id or uuid.uuid4().hex,
                   occurred_at=occurred_at)


def rows_of(engine, ids=None):
    with engine.connect() as conn:
        stmt = sa.select(deliveries)
        if ids is not None:
            stmt = stmt.where(deliveries.c.id.in_(ids))
        return conn.execute(stmt).all()


def stored_trigger(engine, trigger_id):
    with engine.connect() as conn:
        return storage.triggers.trigger_by_id(conn, trigger_id)


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


# --- scope -----------------------------------------------------------------------------

SCOPES = {
    "organization": {},
    "event 7": {"event_id": "7"},
    "event 8": {"event_id": "8"},
    "guide G1": {"event_guide_id": "G1"},
    "guide G2": {"event_guide_id": "G2"},
}
TRIGGERS = {
    "event 7 guide G1": {"event_id": 7, "event_guide_id": "G1"},
    "event 7 no guide": {"event_id": 7},
    "event 8 guide G2": {"event_id": 8, "event_guide_id": "G2"},
    "event 9 no guide": {"event_id": 9},
}
MATCHES = {
    ("organization", "event 7 guide G1"): True,
    ("organization", "event 7 no guide"): True,
    ("organization", "event 8 guide G2"): True,
    ("organization", "event 9 no guide"): True,
    ("event 7", "event 7 guide G1"): True,
    ("event 7", "event 7 no guide"): True,
    ("event 7", "event 8 guide G2"): False,
    ("event 7", "event 9 no guide"): False,
    ("event 8", "event 7 guide G1"): False,
    ("event 8", "event 7 no guide"): False,
    ("event 8", "event 8 guide G2"): True,
    ("event 8", "event 9 no guide"): False,
    ("guide G1", "event 7 guide G1"): True,
    ("guide G1", "event 7 no guide"): False,
    ("guide G1", "event 8 guide G2"): False,
    ("guide G1", "event 9 no guide"): False,
    ("guide G2", "event 7 guide G1"): False,
    ("guide G2", "event 7 no guide"): False,
    ("guide G2", "event 8 guide G2"): True,
    ("guide G2", "event 9 no guide"): False,
}


@pytest.mark.parametrize("trigger_name", list(TRIGGERS))
@pytest.mark.parametrize("scope_name", list(SCOPES))
@pytest.mark.parametrize("trigger_type", ["order_created", "event_updated"])
def test_scope_matrix(engine, scope_name, trigger_name, trigger_type):
    tenant = organization(engine)
    group_id, hook_ids = add_group(engine, tenant, [(trigger_type, "https://crm.example/in")], **SCOPES[scope_name])
    record = trigger(tenant, trigger_type, **TRIGGERS[trigger_name])

    ids = fan_out(engine, record, T0)

    expected = MATCHES[(scope_name, trigger_name)]
    assert len(ids) == (1 if expected else 0)
    rows = rows_of(engine)
    assert [r.id for r in rows] == ids
    if expected:
        assert (rows[0].group_id, rows[0].hook_id) == (group_id, hook_ids[(trigger_type, "https://crm.example/in")])
    assert stored_trigger(engine, record["trigger_id"]).delivery_count == len(ids)


@pytest.mark.parametrize("event_id", [7, "7"])
def test_event_scope_matches_numeric_and_text_ids(engine, event_id):
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", "https://crm.example/in")], event_id="7")
    assert len(fan_out(engine, trigger(tenant, event_id=event_id), T0)) == 1


def test_all_scopes_at_once(engine):
    """Every group whose scope takes the trigger gets its own delivery, the others none."""
    tenant = organization(engine)
    groups = {name: add_group(engine, tenant, [("order_created", f"https://crm.example/{name}")], **scope)[0]
              for name, scope in SCOPES.items()}
    for trigger_name, scope in TRIGGERS.items():
        ids = fan_out(engine, trigger(tenant, **scope), T0)
        got = {row.group_id for row in rows_of(engine, ids)}
        assert got == {groups[s] for s in SCOPES if MATCHES[(s, trigger_name)]}, trigger_name
        assert len(ids) == len(got)


# --- type ------------------------------------------------------------------------------

@pytest.mark.parametrize("trigger_type", sorted(TYPES))
def test_only_the_hook_of_the_trigger_type(engine, trigger_type):
    tenant = organization(engine)
    group_id, hook_ids = add_group(engine, tenant, [(t, f"https://crm.example/{t}") for t in TYPES])
    assert len(hook_ids) == len(TYPES)

    ids = fan_out(engine, trigger(tenant, trigger_type), T0)

    rows = rows_of(engine, ids)
    assert len(rows) == 1
    row = rows[0]
    assert row.hook_id == hook_ids[(trigger_type, f"https://crm.example/{trigger_type}")]
    assert (row.type, row.endpoint, row.group_id) == (trigger_type, f"https://crm.example/{trigger_type}", group_id)
    assert row.entity_kind == TYPES[trigger_type]


# --- tenancy and group life ------------------------------------------------------------

def test_other_organizations_groups_never_match(engine):
    mine, other = organization(engine), organization(engine)
    add_group(engine, other, [("order_created", "https://other.example/in")])
    add_group(engine, other, [("order_created", "https://other.example/ev7")], event_id="7")
    add_group(engine, other, [("order_created", "https://other.example/g1")], event_guide_id="G1")

    record = trigger(mine, event_id=7, event_guide_id="G1")
    assert fan_out(engine, record, T0) == []
    assert count(engine, deliveries) == 0
    assert stored_trigger(engine, record["trigger_id"]).delivery_count == 0

    # the same trigger for the other organization reaches all three: the groups themselves match
    assert len(fan_out(engine, trigger(other, event_id=7, event_guide_id="G1"), T0)) == 3


def test_deleted_groups_never_match(engine):
    tenant = organization(engine)
    deleted, _ = add_group(engine, tenant, [("order_created", "https://crm.example/deleted")])
    live, _ = add_group(engine, tenant, [("order_created", "https://crm.example/live")])
    with engine.begin() as conn:
        assert storage.groups.delete_group(conn, deleted, [tenant[0]], T0)

    ids = fan_out(engine, trigger(tenant), T0)
    assert [row.group_id for row in rows_of(engine, ids)] == [live]


def test_hooks_removed_by_update_never_match(engine):
    tenant = organization(engine)
    group_id, old = add_group(engine, tenant, [("order_created", "https://crm.example/old"),
                                               ("order_updated", "https://crm.example/old")])
    with engine.begin() as conn:
        storage.groups.update_group(conn, group_id, {"name": "renamed"},
                                    [{"type": "order_created", "type_key": "order_created", "method": "POST",
                                      "endpoint": "https://crm.example/new"}], T0)
        new = {h.endpoint: h.id for h in storage.groups.hooks_of(conn, [group_id])[group_id]}
    assert list(new) == ["https://crm.example/new"]

    created = rows_of(engine, fan_out(engine, trigger(tenant, "order_created"), T0))
    assert [(r.hook_id, r.endpoint) for r in created] == [(new["https://crm.example/new"], "https://crm.example/new")]
    assert created[0].hook_id not in old.values()
    # the type only the removed hooks had reaches nobody now
    assert fan_out(engine, trigger(tenant, "order_updated"), T0) == []


def test_a_disabled_hooks_trigger_is_recorded_as_skipped_and_blocks_nothing(engine):
    tenant = organization(engine)
    group_id, hook_ids = add_group(engine, tenant, [("order_created", "https://crm.example/a"),
                                                    ("order_created", "https://crm.example/b")])
    # a delivery owed before the hook was disabled: it waits for the hook
    (owed,) = [i for i in fan_out(engine, trigger(tenant, entity_id=42), T0)
               if rows_of(engine, [i])[0].endpoint == "https://crm.example/a"]
    with engine.begin() as conn:
        conn.execute(sa.update(hooks).where(hooks.c.id == hook_ids[("order_created", "https://crm.example/a")])
                     .values(disabled_at=T0, disabled_reason="the receiver answered 410 Gone"))
        conn.execute(sa.update(deliveries).values(status="delivered"))
        conn.execute(sa.update(deliveries).where(deliveries.c.id == owed).values(status="retrying"))
    later = T0 + datetime.timedelta(seconds=1)
    ids = fan_out(engine, trigger(tenant, entity_id=43, occurred_at="2030-01-10T08:00:01+00:00"), later)
    rows = {r.endpoint: r for r in rows_of(engine) if r.entity_id == "43"}
    # nothing is silently lost: the disabled hook's delivery is recorded, skipped, with the reason
    assert (rows["https://crm.example/a"].status, rows["https://crm.example/a"].skipped_reason) == (
        "skipped", "hook disabled: the receiver answered 410 Gone")
    assert rows["https://crm.example/b"].status == "pending"
    assert ids == [rows["https://crm.example/b"].id]  # only the owed one is to be sent
    # the send loops' claims take only the enabled hook's; the delivery owed from before
    # still waits for the hook, in its lane (retrying) as by its id
    with engine.begin() as conn:
        claimed = ledger.claim_due(conn, later, 60, 100, "pending")
        assert [(r.id, r.endpoint) for r in claimed] == [(rows["https://crm.example/b"].id, "https://crm.example/b")]
        assert ledger.claim_due(conn, later + datetime.timedelta(seconds=1), 60, 100, "retrying") == []
        assert ledger.claim(conn, [owed], later + datetime.timedelta(seconds=1), 60) == []
    # a skipped delivery never holds its entity's later deliveries back
    with engine.begin() as conn:
        conn.execute(sa.update(hooks).values(disabled_at=None))
        conn.execute(sa.update(deliveries).where(deliveries.c.id == owed).values(status="delivered"))
    (after,) = [i for i in fan_out(engine, trigger(tenant, entity_id=43, occurred_at="2030-01-10T08:00:02+00:00"),
                                   later) if rows_of(engine, [i])[0].endpoint == "https://crm.example/a"]
    with engine.begin() as conn:
        assert [r.id for r in ledger.claim(conn, [after], later + datetime.timedelta(seconds=1), 60)] == [after]


def test_several_groups_and_hooks_one_delivery_each(engine):
    tenant = organization(engine)
    a, a_hooks = add_group(engine, tenant, [("order_created", "https://crm.example/a1"),
                                            ("order_created", "https://crm.example/a2"),
                                            ("order_updated", "https://crm.example/a1")])
    b, b_hooks = add_group(engine, tenant, [("order_created", "https://erp.example/b")], event_id="7")
    c, _ = add_group(engine, tenant, [("order_created", "https://erp.example/c")], event_id="8")
    record = trigger(tenant, "order_created", entity_id=42, event_id=7)

    ids = fan_out(engine, record, T0)

    assert len(ids) == len(set(ids)) == 3
    rows = rows_of(engine, ids)
    assert sorted((r.group_id, r.hook_id, r.endpoint) for r in rows) == sorted([
        (a, a_hooks[("order_created", "https://crm.example/a1")], "https://crm.example/a1"),
        (a, a_hooks[("order_created", "https://crm.example/a2")], "https://crm.example/a2"),
        (b, b_hooks[("order_created", "https://erp.example/b")], "https://erp.example/b"),
    ])
    stored = stored_trigger(engine, record["trigger_id"])
    assert stored.delivery_count == 3
    for row in rows:
        assert row.trigger_pk == stored.id
        assert (row.organization_id, row.type, row.entity_kind, row.entity_id) == (tenant[0], "order_created", "order", "42")
        assert (row.status, row.attempts, row.payload) == ("pending", 0, None)
        assert row.next_attempt_at == row.created_at == T0
    # nothing is handed to a queue: the send loops claim the due rows from the ledger
    with engine.begin() as conn:
        assert sorted(r.id for r in ledger.claim_due(conn, T0, 60, 100, "pending")) == sorted(ids)


def test_trigger_is_stored_as_sent(engine):
    tenant = organization(engine)
    record = trigger(tenant, "order_updated", entity_id=42, event_id=7, event_guide_id="G1",
                     occurred_at=datetime.datetime(2030, 1, 1, 13, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))))
    fan_out(engine, record, T0)
    stored = stored_trigger(engine, record["trigger_id"])
    assert (stored.type, stored.organization_id, stored.event_id, stored.event_guide_id) == (
        "order_updated", tenant[0], "7", "G1")
    assert (stored.entity_kind, stored.entity_id) == ("order", "42")
    assert stored.occurred_at == datetime.datetime(2030, 1, 1, 12, 0)  # naive UTC
    assert stored.received_at == T0
    assert json.loads(stored.entity) == record["entity"]


# --- idempotence -----------------------------------------------------------------------

def test_same_trigger_id_fans_out_once(engine):
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", "https://crm.example/a")])
    record = trigger(tenant, trigger_id="platform-1")

    first = fan_out(engine, record, T0)
    assert len(first) == 1
    # a group created in between would match a new trigger, but the repeat must not fan out
    add_group(engine, tenant, [("order_created", "https://crm.example/b")])
    again = trigger(tenant, trigger_id="platform-1")
    assert fan_out(engine, again, T0 + datetime.timedelta(seconds=5)) == []

    assert count(engine, triggers) == 1
    assert [r.id for r in rows_of(engine)] == first
    stored = stored_trigger(engine, "platform-1")
    assert stored.delivery_count == 1
    assert stored.received_at == T0

    # a different trigger_id still fans out, to both groups
    assert len(fan_out(engine, trigger(tenant), T0)) == 2


def test_trigger_matching_nothing_is_stored(engine):
    tenant = organization(engine)
    add_group(engine, tenant, [("order_updated", "https://crm.example/a")])
    record = trigger(tenant, "order_created")
    assert fan_out(engine, record, T0) == []
    stored = stored_trigger(engine, record["trigger_id"])
    assert stored is not None and stored.delivery_count == 0
    assert count(engine, deliveries) == 0
    # and it is still only stored once
    assert fan_out(engine, record, T0) == []
    assert count(engine, triggers) == 1


# --- ordering keys ---------------------------------------------------------------------

def test_ordering_key_per_group_endpoint_and_entity(engine):
    tenant = organization(engine)
    crm = "https://crm.example/in"
    erp = "https://erp.example/in"
    g, _ = add_group(engine, tenant, [("order_created", crm), ("order_updated", crm), ("order_updated", erp)])
    other_group, _ = add_group(engine, tenant, [("order_created", crm)])

    def one(ids, group, endpoint):
        [row] = [r for r in rows_of(engine, ids) if (r.group_id, r.endpoint) == (group, endpoint)]
        return row

    early = datetime.datetime(2030, 1, 1, 11, 0, tzinfo=datetime.timezone.utc)
    late = datetime.datetime(2030, 1, 1, 11, 0, 1, tzinfo=datetime.timezone.utc)
    created = fan_out(engine, trigger(tenant, "order_created", entity_id=42, occurred_at=early), T0)
    updated = fan_out(engine, trigger(tenant, "order_updated", entity_id=42, occurred_at=late), T0)
    other_order = fan_out(engine, trigger(tenant, "order_created", entity_id=43, occurred_at=early), T0)

    created_crm, updated_crm = one(created, g, crm), one(updated, g, crm)
    # one order to one URL, whichever hook types carry it: one queue, in trigger order
    assert created_crm.ordering_key == updated_crm.ordering_key == ordering_key(g, crm, "order", "42")
    assert created_crm.sequence < updated_crm.sequence
    # another endpoint of the same group, another entity, another group: other queues
    assert one(updated, g, erp).ordering_key != created_crm.ordering_key
    assert one(other_order, g, crm).ordering_key != created_crm.ordering_key
    assert one(created, other_group, crm).ordering_key != created_crm.ordering_key
    # an event and an order with the same id are different entities
    assert ordering_key(g, crm, "event", "42") != ordering_key(g, crm, "order", "42")


def test_a_trigger_for_a_paused_hook_is_due_when_the_pause_ends(engine):
    """A receiver's Retry-After paused the hook: what is fanned out meanwhile waits for it."""
    tenant = organization(engine)
    _, hook_ids = add_group(engine, tenant, [("order_created", "https://crm.example/paused")])
    hook_id = hook_ids[("order_created", "https://crm.example/paused")]
    with engine.begin() as conn:
        conn.execute(sa.update(hooks).where(hooks.c.id == hook_id).values(
            paused_until=T0 + datetime.timedelta(seconds=30)))
    [delivery_id] = fan_out(engine, trigger(tenant, entity_id=4242), T0)
    assert rows_of(engine, [delivery_id])[0].next_attempt_at == T0 + datetime.timedelta(seconds=30)
