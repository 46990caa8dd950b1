"""The trigger intake on real Redis and PostgreSQL: partitioned streams, one owner at a time,
a dead owner's entries first, poison messages set aside; and standalone's database inbox."""

import collections
import json
import threading

import pytest
import redis
import sqlalchemy as sa

from storage.db import engine_for
from storage.tables import deliveries
from storage.tables import triggers
from tests.conftest import REDIS_URL
from tests.integration.test_fanout import add_group
from tests.integration.test_fanout import organization
from tests.integration.test_fanout import trigger
from workers import intake


@pytest.fixture
def streams():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    made = intake.RedisStreams(REDIS_URL)
    made.ensure_groups()
    yield made
    client.flushdb()


@pytest.fixture
def engine(pg_database_url):
    return engine_for(pg_database_url)


def stored(engine):
    """(entity_id, trigger_id) of every stored trigger, in the order they were stored."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(triggers.c.entity_id, triggers.c.trigger_id)
                                               .order_by(triggers.c.id))]


def test_every_trigger_of_an_entity_goes_to_one_partition():
    record = {"organization_id": 1, "entity_kind": "order", "entity_id": "42"}
    assert {intake.partition_of(dict(record, trigger_id=str(n))) for n in range(20)} == {intake.partition_of(record)}
    spread = {intake.partition_of(dict(record, entity_id=str(n))) for n in range(200)}
    assert len(spread) == intake.PARTITIONS  # and entities spread over all of them


def test_a_batch_is_stored_in_emit_order_and_leaves_the_stream(streams, engine):
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", "https://crm.example/a"), ("order_updated", "https://crm.example/a")])
    records = [trigger(tenant, "order_created" if n % 2 == 0 else "order_updated", entity_id=n % 3)
               for n in range(30)]
    streams.publish(records)
    fanned = []
    consumer = intake.StreamConsumer(streams, engine, on_fanned_out=fanned.extend)
    while consumer.poll():
        pass
    assert streams.depth() == 0
    by_entity = collections.defaultdict(list)
    for entity_id, trigger_id in stored(engine):
        by_entity[entity_id].append(trigger_id)
    for entity_id in ("0", "1", "2"):  # each entity's triggers in the order they were emitted
        assert by_entity[entity_id] == [r["trigger_id"] for r in records if r["entity_id"] == entity_id]
    assert len(fanned) == 30 and {row["status"] for row in fanned} == {"pending"}
    with engine.connect() as conn:  # the entity is stored as the producer encoded it, byte for byte
        texts = dict(conn.execute(sa.select(triggers.c.trigger_id, triggers.c.entity)).all())
    assert texts == {r["trigger_id"]: json.dumps(r["entity"], separators=(",", ":"), ensure_ascii=False)
                     for r in records}


def test_a_dead_owners_pending_entries_come_first_and_once(streams, engine):
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", "https://crm.example/a")])
    first = [trigger(tenant, entity_id=7) for _ in range(3)]
    streams.publish(first)
    key = streams.keys[intake.partition_of(first[0])]
    # an owner read them and died before storing them: they are pending in the group
    assert len(streams.redis.xreadgroup(intake.GROUP, intake.CONSUMER, {key: ">"})[0][1]) == 3
    later = [trigger(tenant, entity_id=7) for _ in range(2)]
    streams.publish(later)
    consumer = intake.StreamConsumer(streams, engine)
    while consumer.poll():
        pass
    assert [t for _, t in stored(engine)] == [r["trigger_id"] for r in first + later]
    assert streams.redis.xpending(key, intake.GROUP)["pending"] == 0 and streams.depth() == 0


def test_one_owner_at_a_time(streams, engine):
    tenant = organization(engine)
    record = trigger(tenant, entity_id=9)
    streams.publish([record])
    partition = intake.partition_of(record)
    streams.redis.set(f"{streams.keys[partition]}:owner", "another worker", px=10_000)
    consumer = intake.StreamConsumer(streams, engine)
    assert consumer.take([partition]) == 0 and stored(engine) == []  # owned: left alone
    streams.redis.delete(f"{streams.keys[partition]}:owner")
    assert consumer.take([partition]) == 1 and len(stored(engine)) == 1
    assert streams.redis.get(f"{streams.keys[partition]}:owner") is None  # let go after the batch


def test_a_trigger_that_cannot_be_stored_is_set_aside_and_the_rest_go_on(streams, engine):
    tenant = organization(engine)
    good = [trigger(tenant, entity_id=5) for _ in range(2)]
    broken = dict(good[0], trigger_id="broken", occurred_at="not a time")
    streams.publish([good[0], broken, good[1]])
    consumer = intake.StreamConsumer(streams, engine)
    while consumer.poll():
        pass
    assert [t for _, t in stored(engine)] == [good[0]["trigger_id"], good[1]["trigger_id"]]
    [(_, fields)] = streams.redis.xrange(intake.REJECTED)
    assert json.loads(fields[b"r"])["trigger_id"] == "broken" and b"not a time" in fields[b"error"]
    assert streams.depth() == 0


def test_lost_redis_data_recreates_the_group_and_goes_on(streams, engine):
    tenant = organization(engine)
    consumer = intake.StreamConsumer(streams, engine)
    stop = threading.Event()
    streams.redis.flushdb()  # the groups are gone with the streams
    record = trigger(tenant, entity_id=3)
    streams.publish([record])
    runner = threading.Thread(target=consumer.run, args=(stop,))
    runner.start()
    try:
        deadline = 200
        while not stored(engine) and deadline:
            stop.wait(0.05)
            deadline -= 1
    finally:
        stop.set()
        runner.join(10)
    assert [t for _, t in stored(engine)] == [record["trigger_id"]]


def test_the_database_inbox_fans_out_each_trigger_once_in_order(database_url):
    engine = engine_for(database_url)
    tenant = organization(engine)
    add_group(engine, tenant, [("order_created", "https://crm.example/a")])
    records = [trigger(tenant, entity_id=n % 2) for n in range(5)]
    inbox = intake.DatabaseInbox(engine)
    inbox.publish(records)
    inbox.publish([records[0]])  # the same trigger_id again: fanned out once
    assert inbox.depth() == 6
    consumer = intake.InboxConsumer(engine, batch=4)
    while consumer.poll():
        pass
    assert inbox.depth() == 0
    assert [t for _, t in stored(engine)] == [r["trigger_id"] for r in records]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one() == 5
