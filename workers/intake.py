"""The trigger intake: how triggers travel from the platform to fan-out, in order per entity.

A trigger is published to one of ``PARTITIONS`` Redis streams, chosen by its entity, so
all triggers of one entity queue in one stream in the order they were emitted. At any
moment one worker owns a partition (a short Redis lock): a worker takes every partition
with entries that nobody owns, fans their next entries out in one transaction,
acknowledges them and lets go. An earlier trigger of an entity is
therefore always stored before a later one, and the claim rule (a delivery waits while an
earlier one of its entity and receiver is owed) keeps their deliveries in order without
waiting on a clock.

At least once: an entry leaves the stream only after the transaction that stored it
committed. A worker killed mid-batch leaves its entries pending in the stream's consumer
group; whoever owns the partition next reads those pending entries before any new one
(the consumer name is shared, the lock makes it exclusive), and fan-out is idempotent by
trigger_id. Redis data lost (a restart without AOF) takes the not yet fanned-out
triggers with it: run Redis with appendonly, as docker-compose.yml does.

Embedded mode (standalone, no Redis) uses ``DatabaseInbox``: a table in the service's own
database, taken and deleted in the same transaction that fans the triggers out.
"""

import json
import logging
import uuid
import zlib

import redis
import sqlalchemy.exc

from storage import inbox
from storage.db import utcnow
from workers.fanout import fan_out_many

log = logging.getLogger(__name__)

#: Streams the triggers are spread over. Changing it while triggers wait would let two
#: triggers of one entity sit in different streams: drain the intake first.
PARTITIONS = 16
PREFIX = "doo:triggers"
GROUP = "fan-out"
#: One consumer name for every worker: the partition lock makes it one worker at a time, and
#: the next owner sees the pending entries of a previous owner that died.
CONSUMER = "owner"
LOCK_SECONDS = 10
BATCH = 500
REJECTED = f"{PREFIX}:rejected"
#: a message here wakes every worker's send loop: rows became due outside its own fan-out.
#: Pub/sub channels are server-wide, not per database: the name carries the database.
NUDGE_CHANNEL = "doo:due:{db}"

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def partition_of(record):
    """The stream of a trigger: the same for every trigger of one entity."""
    key = f"{record['organization_id']}:{record['entity_kind']}:{record['entity_id']}"
    return zlib.crc32(key.encode()) % PARTITIONS


def encode(record):
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def stream_fields(record):
    """A stream entry: the trigger (``r``) and, apart, its entity as the text the ledger stores
    (``e``), so fan-out neither parses nor re-encodes the entity."""
    meta = {key: value for key, value in record.items() if key != "entity"}
    return {"r": encode(meta), "e": encode(record["entity"])}


def from_fields(fields):
    """The record of a stream entry (one of stream_fields, or a whole record in ``r``)."""
    record = json.loads(fields[b"r"])
    if b"e" in fields:
        record["entity_text"] = fields[b"e"].decode("utf-8")
    return record


def fan_out_batch(engine, records):
    """Fan ``records`` out in one transaction; returns the new delivery rows."""
    with engine.begin() as conn:
        return fan_out_many(conn, records, utcnow())


class RedisStreams:
    """Publishing to and consuming from the partitioned trigger streams."""

    def __init__(self, url, timeout=30):
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=min(5, timeout), socket_timeout=timeout,
                                          health_check_interval=30)
        self.keys = [f"{PREFIX}:{p}" for p in range(PARTITIONS)]
        self.nudge_channel = NUDGE_CHANNEL.format(db=self.redis.connection_pool.connection_kwargs.get("db", 0))

    def publish(self, records):
        """XADD every record to its partition, in one round trip, in the order given."""
        pipe = self.redis.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self.keys[partition_of(record)], stream_fields(record))
        pipe.execute()

    def depth(self):
        """Triggers waiting for fan-out (taken but unacknowledged ones included)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys:
            pipe.xlen(key)
        return sum(pipe.execute())

    def ensure_groups(self):
        for key in self.keys:
            try:
                self.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise


class StreamConsumer:
    """A worker's intake loop: own a partition, fan out its next batch, let go, next one."""

    def __init__(self, streams, engine, on_fanned_out=None, batch=BATCH):
        self.streams = streams
        self.engine = engine
        self.on_fanned_out = on_fanned_out or (lambda rows: None)
        self.batch = batch
        self.token = uuid.uuid4().hex
        self._release = streams.redis.register_script(_RELEASE)

    def run(self, stop):
        """Until ``stop`` (a threading.Event) is set; Redis or database outages are waited out."""
        pause = 0.1
        while not stop.is_set():
            try:
                if not self.poll():
                    self.wait()
                pause = 0.1
            except (redis.ConnectionError, redis.TimeoutError, sqlalchemy.exc.OperationalError) as exc:
                log.warning("intake paused: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                stop.wait(pause)
                pause = min(pause * 2, 5)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("the trigger streams' consumer group is gone (Redis lost its data?): recreating it")
                self.streams.ensure_groups()

    def poll(self):
        """One round: take every partition that holds entries and no other worker owns, and
        fan their next entries out in one transaction; returns how many triggers it stored."""
        pipe = self.streams.redis.pipeline(transaction=False)
        for key in self.streams.keys:
            pipe.xlen(key)
        lengths = pipe.execute()
        return self.take([p for p in range(PARTITIONS) if lengths[p]])

    def wait(self, timeout_ms=1000):
        """Block until a trigger is added to any partition (or ``timeout_ms`` passes)."""
        ids = {}
        pipe = self.streams.redis.pipeline(transaction=False)
        for key in self.streams.keys:
            pipe.xrevrange(key, count=1)
        for key, last in zip(self.streams.keys, pipe.execute()):
            # a partition that still holds entries is owned by another worker right now: wait
            # for entries after them, not for them
            ids[key] = last[0][0] if last else "0-0"
        self.streams.redis.xread(ids, count=1, block=timeout_ms)

    def take(self, partitions):
        """Own what ``partitions`` no other worker owns now, fan their next entries out (one
        transaction for all: each partition's in its order), acknowledge them, let go."""
        if not partitions:
            return 0
        r = self.streams.redis
        keys = [self.streams.keys[p] for p in partitions]
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.set(f"{key}:owner", self.token, nx=True, px=LOCK_SECONDS * 1000)
        owned = [key for key, got in zip(keys, pipe.execute()) if got]
        if not owned:
            return 0
        try:
            # about one batch a round, shared by the partitions; a dead owner's entries first
            count = max(1, -(-self.batch // len(owned)))
            entries = self._read({key: "0" for key in owned}, count)
            fresh = [key for key in owned if not any(k == key for k, _, _ in entries)]
            if fresh:
                entries += self._read({key: ">" for key in fresh}, count)
            if not entries:
                return 0
            rows = self._fan_out(entries)
            pipe = r.pipeline(transaction=False)
            for key in owned:
                ids = [entry_id for k, entry_id, _ in entries if k == key]
                if ids:
                    pipe.xack(key, GROUP, *ids)
                    pipe.xdel(key, *ids)
            pipe.execute()
        finally:
            pipe = r.pipeline(transaction=False)
            for key in owned:
                self._release(keys=[f"{key}:owner"], args=[self.token], client=pipe)
            pipe.execute()
        self.on_fanned_out(rows)
        return len(entries)

    def _read(self, streams, count):
        """(key, entry id, fields) of the entries XREADGROUP gives for ``streams``, each
        stream's in order."""
        answer = self.streams.redis.xreadgroup(GROUP, CONSUMER, streams, count=count)
        entries, gone = [], []
        for key, got in answer or ():
            key = key.decode() if isinstance(key, bytes) else key
            for entry_id, fields in got:
                (entries if fields else gone).append((key, entry_id, fields))
        pipe = self.streams.redis.pipeline(transaction=False)
        for key, entry_id, _ in gone:  # deleted but never acknowledged (an owner died between the two)
            pipe.xack(key, GROUP, entry_id)
        if gone:
            pipe.execute()
        return entries

    def _fan_out(self, entries):
        records = [from_fields(fields) for _, _, fields in entries]
        try:
            return fan_out_batch(self.engine, records)
        except sqlalchemy.exc.OperationalError:
            raise  # the database is away: the entries stay pending for the next owner
        except Exception:
            # One bad message must not hold its partition up forever: store the others one by
            # one, and set the one that cannot be stored aside, with the reason, for an operator.
            log.exception("a batch of %d trigger(s) failed to fan out; trying them one by one", len(records))
            rows = []
            for (key, entry_id, fields), record in zip(entries, records):
                try:
                    rows += fan_out_batch(self.engine, [record])
                except sqlalchemy.exc.OperationalError:
                    raise
                except Exception as exc:
                    log.error("trigger set aside in %s: %s", REJECTED, exc,
                              extra={"trigger_id": record.get("trigger_id")})
                    self.streams.redis.xadd(REJECTED, {**fields, "error": repr(exc)[:1000], "stream": key,
                                                       "id": entry_id})
            return rows


class DatabaseInbox:
    """The embedded service's intake: triggers wait in its own database (table ``inbox``), so
    ``emit()`` from any process on the machine reaches it without a broker."""

    def __init__(self, engine):
        self.engine = engine

    def publish(self, records):
        with self.engine.begin() as conn:
            inbox.add_to_inbox(conn, [encode(record) for record in records], utcnow())

    def depth(self):
        with self.engine.begin() as conn:
            return inbox.inbox_depth(conn)


class InboxConsumer:
    """Takes inbox rows in the order they were added and fans them out in the same
    transaction that deletes them: each trigger is stored exactly once."""

    def __init__(self, engine, on_fanned_out=None, batch=BATCH, poll_seconds=0.05):
        self.engine = engine
        self.on_fanned_out = on_fanned_out or (lambda rows: None)
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.nudged = None

    def run(self, stop, nudged):
        """Until ``stop``; ``nudged`` (an Event) cuts the wait short when this process added triggers."""
        self.nudged = nudged
        pause = self.poll_seconds
        while not stop.is_set():
            try:
                if self.poll():
                    pause = self.poll_seconds
                    continue
            except sqlalchemy.exc.OperationalError as exc:
                log.warning("intake paused: %s", str(exc).splitlines()[0])
                pause = min(pause * 2, 5)
            nudged.wait(pause)
            nudged.clear()

    def poll(self):
        with self.engine.begin() as conn:
            taken = inbox.take_inbox(conn, self.batch)
            if not taken:
                return 0
            rows = fan_out_many(conn, [json.loads(row.record) for row in taken], utcnow())
            inbox.drop_from_inbox(conn, [row.id for row in taken])
        self.on_fanned_out(rows)
        return len(taken)

