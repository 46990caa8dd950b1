"""The delivery ledger's state machine on a real database: claim, claim_due, record, expire_leases,
dispatch_due, delete_group. Every call gets an explicit ``now``; nothing sleeps.

Most tests run on SQLite and PostgreSQL (``database_url``); the concurrency tests need
PostgreSQL's row locks (``pg_database_url``): two connections, the first holding its
transaction open while the second works.
"""

import datetime
import itertools
import types
import uuid

import pytest
import sqlalchemy as sa

import storage.ledger
from storage import delivery_log
from storage import groups
from storage import tenancy
from storage import triggers
from storage.db import engine_for
from storage.db import utcnow
from storage.tables import deliveries
from storage.tables import hooks
from storage.tables import notifications
from workers.dispatch import dispatch_due

T0 = datetime.datetime(2030, 1, 1, 12, 0, 0)
LEASE = 60
_numbers = itertools.count(1)


def seconds(n):
    return datetime.timedelta(seconds=n)


class Ledger:
    """An organization with groups, and deliveries written straight into the ledger."""

    def __init__(self, engine):
        self.engine = engine
        n = next(_numbers)
        with engine.begin() as conn:
            self.organization_id = tenancy.create_organization(conn, f"Org {n}", T0)
            self.team_id = tenancy.create_team(conn, self.organization_id, f"Team {n}", T0)
        self.group_id = self.group()

    def group(self):
        group_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            groups.insert_group(conn, {
                "id": group_id, "organization_id": self.organization_id, "team_id": self.team_id,
                "name": "g", "created_at": T0, "updated_at": T0,
            }, [{"type": "order_created", "type_key": "order_created", "method": "POST",
                 "endpoint": "https://crm.example/in"}])
            self._hooks = getattr(self, "_hooks", {})
            self._hooks[group_id] = groups.hooks_of(conn, [group_id])[group_id][0].id
        return group_id

    def delivery(self, *, key=None, sequence=1, status="pending", attempts=0, next_attempt_at=T0 - seconds(1),
                 lease_until=None, group_id=None, endpoint="https://crm.example/in"):
        """One delivery (with its own trigger); returns its id."""
        group_id = group_id or self.group_id
        delivery_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            trigger_pk, created = triggers.store_trigger(conn, {
                "trigger_id": uuid.uuid4().hex, "type": "order_created", "organization_id": self.organization_id,
                "event_id": "7", "event_guide_id": None, "entity_kind": "order", "entity_id": "42",
                "entity": '{"order_details":{"id":42,"status":"active"},"event":{"id":7},"event_id":7}',
                "occurred_at": T0, "received_at": T0, "delivery_count": 1,
            })
            assert created
            conn.execute(sa.insert(deliveries).values(
                id=delivery_id, trigger_pk=trigger_pk, hook_id=self._hooks[group_id], group_id=group_id,
                organization_id=self.organization_id, type="order_created", endpoint=endpoint,
                entity_kind="order", entity_id="42", ordering_key=key or uuid.uuid4().hex, sequence=sequence,
                status=status, attempts=attempts, next_attempt_at=next_attempt_at, lease_until=lease_until,
                created_at=T0, updated_at=T0,
            ))
        return delivery_id

    def hook(self):
        """The hook of a new group of its own (deliveries made with that group_id go to it)."""
        return self._hooks[self.group()]

    def row(self, delivery_id):
        with self.engine.connect() as conn:
            return delivery_log.delivery(conn, delivery_id)

    def attempts(self, delivery_id):
        with self.engine.connect() as conn:
            return delivery_log.attempts_of(conn, delivery_id)

    def claim(self, ids, now, lease=LEASE):
        with self.engine.begin() as conn:
            return storage.ledger.claim(conn, ids, now, lease)

    def claimed_ids(self, ids, now, lease=LEASE):
        return [row.id for row in self.claim(ids, now, lease)]

    def record(self, *outcomes):
        with self.engine.begin() as conn:
            storage.ledger.record(conn, list(outcomes))

    def expire(self, now, max_attempts=10):
        with self.engine.begin() as conn:
            return storage.ledger.expire_leases(conn, now, max_attempts)

    def claim_due(self, now, status="pending", limit=1000, lease=LEASE, skip_endpoints=()):
        """What a send loop's claim of one lane takes: the ids, in the order claimed_details gives."""
        with self.engine.begin() as conn:
            return [row.id for row in storage.ledger.claim_due(conn, now, lease, limit, status, skip_endpoints)]

    def disable_hook(self, group_id, now=T0):
        with self.engine.begin() as conn:
            conn.execute(sa.update(hooks).where(hooks.c.id == self._hooks[group_id])
                         .values(disabled_at=now, disabled_reason="the receiver answered 410 Gone"))


def outcome(delivery_id, number, status, now, *, code=500, error="http_status", payload='{"v":1}',
            next_attempt_at=None, detail=None):
    """What workers.delivery.attempt hands to storage.ledger.record."""
    return {
        "id": delivery_id, "number": number, "started_at": now - seconds(1), "duration_ms": 1000,
        "payload": payload, "last_status_code": code, "last_error": error, "error_detail": detail,
        "response_excerpt": "answer", "request_headers": '{"webhook-id":"%s"}' % delivery_id,
        "status": status, "now": now, "next_attempt_at": next_attempt_at or now,
        "delivered_at": now if status == "delivered" else None,
    }


def delivered(delivery_id, number, now, payload='{"v":1}'):
    return outcome(delivery_id, number, "delivered", now, code=200, error=None, payload=payload)


@pytest.fixture
def ledger(database_url):
    return Ledger(engine_for(database_url))


# --- claim -----------------------------------------------------------------------------

def test_claim_takes_only_due_open_rows(ledger):
    pending = ledger.delivery(status="pending")
    retrying = ledger.delivery(status="retrying", attempts=3)
    due_now = ledger.delivery(status="pending", next_attempt_at=T0)  # next_attempt_at == now is due
    future = ledger.delivery(status="retrying", attempts=1, next_attempt_at=T0 + seconds(1))
    others = {status: ledger.delivery(status=status, attempts=2, lease_until=T0 + seconds(5) if status == "in_flight" else None)
              for status in ("in_flight", "delivered", "dead", "cancelled")}
    before = {i: ledger.row(i) for i in others.values()}

    rows = ledger.claim([pending, retrying, due_now, future, *others.values()], T0)

    assert sorted(r.id for r in rows) == sorted([pending, retrying, due_now])
    for delivery_id, attempts_before in ((pending, 0), (retrying, 3), (due_now, 0)):
        row = ledger.row(delivery_id)
        assert row.status == "in_flight"
        assert row.attempts == attempts_before + 1
        assert row.lease_until == T0 + seconds(LEASE)
        assert row.updated_at == T0
    by_id = {r.id: r for r in rows}
    assert by_id[retrying].attempts == 4  # the claim returns the attempt number it counted
    assert by_id[pending].method == "POST" and by_id[pending].group_deleted_at is None
    assert by_id[pending].trigger_id and by_id[pending].endpoint == "https://crm.example/in"

    # not due: left as it is, for a claim when its time comes
    row = ledger.row(future)
    assert (row.status, row.attempts, row.lease_until) == ("retrying", 1, None)
    for delivery_id, row in before.items():
        assert ledger.row(delivery_id) == row

    # the same ids again, even later: nothing left to take
    assert ledger.claim([pending, retrying, due_now], T0 + seconds(1)) == []
    assert ledger.row(pending).attempts == 1


def test_claim_of_nothing(ledger):
    assert ledger.claim([], T0) == []
    assert ledger.claim([str(uuid.uuid4())], T0) == []


def test_claim_returns_rows_in_sequence_order(ledger):
    late = ledger.delivery(sequence=20)
    early = ledger.delivery(sequence=10)
    assert ledger.claimed_ids([late, early], T0) == [early, late]


# --- ordering --------------------------------------------------------------------------

def test_ordering_key_releases_one_at_a_time(ledger):
    first, second, third = (ledger.delivery(key="order-42", sequence=n) for n in (1, 2, 3))

    assert ledger.claimed_ids([first, second, third], T0) == [first]
    # the first in flight still blocks
    assert ledger.claimed_ids([second, third], T0) == []
    assert ledger.row(second).status == "pending" and ledger.row(second).attempts == 0

    ledger.record(delivered(first, 1, T0 + seconds(1)))
    assert ledger.claimed_ids([second, third], T0 + seconds(2)) == [second]

    ledger.record(delivered(second, 1, T0 + seconds(3)))
    assert ledger.claimed_ids([third], T0 + seconds(4)) == [third]


def test_retrying_predecessor_blocks_even_before_its_time(ledger):
    first = ledger.delivery(key="k", sequence=1)
    second = ledger.delivery(key="k", sequence=2)
    assert ledger.claimed_ids([first], T0) == [first]
    ledger.record(outcome(first, 1, "retrying", T0 + seconds(1), next_attempt_at=T0 + seconds(600)))

    assert ledger.claimed_ids([first, second], T0 + seconds(2)) == []
    # nor do the send loops' claims of either lane take anything of this key
    assert ledger.claim_due(T0 + seconds(2), "pending") == []
    assert ledger.claim_due(T0 + seconds(2), "retrying") == []
    # its retry comes first, then the second
    assert ledger.claimed_ids([first, second], T0 + seconds(600)) == [first]


def test_dead_or_cancelled_predecessor_no_longer_blocks(ledger):
    dead = ledger.delivery(key="k", sequence=1, status="dead", attempts=10)
    cancelled = ledger.delivery(key="k", sequence=2, status="cancelled")
    waiting = ledger.delivery(key="k", sequence=3)
    assert ledger.claimed_ids([waiting], T0) == [waiting]
    assert ledger.row(dead).status == "dead" and ledger.row(cancelled).status == "cancelled"


def test_a_predecessor_dying_releases_the_next(ledger):
    first = ledger.delivery(key="k", sequence=1, attempts=9, status="retrying")
    second = ledger.delivery(key="k", sequence=2)
    assert ledger.claimed_ids([first, second], T0) == [first]
    ledger.record(outcome(first, 10, "dead", T0 + seconds(1)))
    assert ledger.claimed_ids([second], T0 + seconds(2)) == [second]


def test_different_keys_never_wait(ledger):
    a1 = ledger.delivery(key="a", sequence=1)
    a2 = ledger.delivery(key="a", sequence=2)
    b2 = ledger.delivery(key="b", sequence=2)
    c9 = ledger.delivery(key="c", sequence=9)
    assert sorted(ledger.claimed_ids([a1, a2, b2, c9], T0)) == sorted([a1, b2, c9])


def test_equal_sequences_go_in_trigger_order(ledger):
    first = ledger.delivery(key="k", sequence=5)   # stored first: the smaller trigger_pk
    second = ledger.delivery(key="k", sequence=5)
    assert ledger.claimed_ids([second, first], T0) == [first]


def test_later_sequence_never_overtakes_when_only_it_is_asked_for(ledger):
    first = ledger.delivery(key="k", sequence=1, next_attempt_at=T0 + seconds(60))  # not due yet
    second = ledger.delivery(key="k", sequence=2)
    assert ledger.claimed_ids([second], T0) == []
    assert ledger.row(first).status == "pending"


# --- record ----------------------------------------------------------------------------

def test_record_retry_then_delivery(ledger):
    d = ledger.delivery()
    [row] = ledger.claim([d], T0)
    assert row.attempts == 1

    ledger.record(outcome(d, 1, "retrying", T0 + seconds(2), code=500, next_attempt_at=T0 + seconds(12),
                          payload='{"frozen":1}', detail="HTTP 500"))
    row = ledger.row(d)
    assert (row.status, row.attempts, row.next_attempt_at) == ("retrying", 1, T0 + seconds(12))
    assert (row.last_status_code, row.last_error, row.payload) == (500, "http_status", '{"frozen":1}')
    assert (row.lease_until, row.delivered_at, row.updated_at) == (None, None, T0 + seconds(2))
    [attempt] = ledger.attempts(d)
    assert (attempt.number, attempt.status_code, attempt.error_kind, attempt.error_detail) == (1, 500, "http_status", "HTTP 500")
    assert (attempt.started_at, attempt.duration_ms, attempt.response_excerpt) == (T0 + seconds(1), 1000, "answer")

    assert ledger.claim([d], T0 + seconds(11)) == []  # not yet due
    assert [r.attempts for r in ledger.claim([d], T0 + seconds(12))] == [2]
    ledger.record(delivered(d, 2, T0 + seconds(13), payload='{"other":2}'))
    row = ledger.row(d)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 2, 200, None)
    assert row.delivered_at == T0 + seconds(13)
    assert row.payload == '{"frozen":1}'  # the first payload stays: retries send the same bytes
    assert [(a.number, a.status_code) for a in ledger.attempts(d)] == [(1, 500), (2, 200)]


def test_record_twice_writes_one_attempt(ledger):
    d = ledger.delivery()
    ledger.claim([d], T0)
    result = outcome(d, 1, "retrying", T0 + seconds(1), next_attempt_at=T0 + seconds(10))
    ledger.record(result)
    ledger.record(result)
    ledger.record(dict(result, status="delivered", last_status_code=200, last_error=None))
    assert len(ledger.attempts(d)) == 1
    assert ledger.attempts(d)[0].status_code == 500
    row = ledger.row(d)
    assert (row.status, row.last_status_code) == ("retrying", 500)


def test_record_ignores_a_stale_worker(ledger):
    d = ledger.delivery()
    ledger.claim([d], T0)                          # worker A: attempt 1, lease until T0+60
    assert ledger.expire(T0 + seconds(LEASE + 1)) == 1
    [row] = ledger.claim([d], T0 + seconds(LEASE + 2))  # worker B: attempt 2
    assert row.attempts == 2

    # worker A wakes up and reports success for attempt 1: nothing changes
    ledger.record(delivered(d, 1, T0 + seconds(LEASE + 3), payload='{"from":"A"}'))
    row = ledger.row(d)
    assert (row.status, row.attempts, row.payload, row.delivered_at) == ("in_flight", 2, None, None)
    assert row.lease_until == T0 + seconds(2 * LEASE + 2)
    [lost] = ledger.attempts(d)
    assert (lost.number, lost.error_kind, lost.status_code) == (1, "worker_lost", None)

    # worker B's result counts
    ledger.record(delivered(d, 2, T0 + seconds(LEASE + 4), payload='{"from":"B"}'))
    row = ledger.row(d)
    assert (row.status, row.payload) == ("delivered", '{"from":"B"}')
    assert [(a.number, a.error_kind, a.status_code) for a in ledger.attempts(d)] == [
        (1, "worker_lost", None), (2, None, 200)]


def test_record_does_not_touch_a_row_that_is_not_in_flight(ledger):
    d = ledger.delivery(status="retrying", attempts=1, next_attempt_at=T0 + seconds(30))
    before = ledger.row(d)
    ledger.record(delivered(d, 1, T0))
    assert ledger.row(d) == before


def test_record_batch(ledger):
    a, b, c = ledger.delivery(), ledger.delivery(), ledger.delivery()
    ledger.claim([a, b, c], T0)
    ledger.record(delivered(a, 1, T0 + seconds(1)),
                  outcome(b, 1, "retrying", T0 + seconds(1), next_attempt_at=T0 + seconds(10)),
                  outcome(c, 1, "dead", T0 + seconds(1), code=None, error="connection"))
    assert [ledger.row(i).status for i in (a, b, c)] == ["delivered", "retrying", "dead"]
    assert [len(ledger.attempts(i)) for i in (a, b, c)] == [1, 1, 1]


# --- expire_leases ---------------------------------------------------------------------

def test_expired_lease_becomes_retrying_with_a_lost_attempt(ledger):
    d = ledger.delivery()
    ledger.claim([d], T0)
    assert ledger.expire(T0 + seconds(LEASE)) == 0  # lease_until == now: not yet expired
    assert ledger.row(d).status == "in_flight"

    now = T0 + seconds(LEASE + 1)
    assert ledger.expire(now) == 1
    row = ledger.row(d)
    assert (row.status, row.attempts, row.last_error) == ("retrying", 1, "worker_lost")
    assert (row.lease_until, row.next_attempt_at) == (None, now)
    [lost] = ledger.attempts(d)
    assert (lost.number, lost.error_kind, lost.started_at, lost.duration_ms) == (1, "worker_lost", now, 0)
    assert lost.error_detail

    assert ledger.expire(now + seconds(1)) == 0  # once
    assert [r.attempts for r in ledger.claim([d], now)] == [2]


def test_expired_lease_at_max_attempts_is_dead(ledger):
    last = ledger.delivery(status="retrying", attempts=9)
    earlier = ledger.delivery(status="retrying", attempts=8)
    ledger.claim([last, earlier], T0)
    assert ledger.expire(T0 + seconds(LEASE + 1), max_attempts=10) == 2
    assert (ledger.row(last).status, ledger.row(last).attempts) == ("dead", 10)
    assert (ledger.row(earlier).status, ledger.row(earlier).attempts) == ("retrying", 9)
    assert [a.number for a in ledger.attempts(last)] == [10]


def test_expire_leases_ignores_rows_not_in_flight(ledger):
    rows = [ledger.delivery(status=s, lease_until=T0 - seconds(100)) for s in
            ("pending", "retrying", "delivered", "dead", "cancelled")]
    before = [ledger.row(i) for i in rows]
    assert ledger.expire(T0) == 0
    assert [ledger.row(i) for i in rows] == before


# --- claim_due: the send loops' claim, one lane at a time ------------------------------

def test_claim_due_takes_the_due_unblocked_rows_of_its_lane(ledger):
    now = T0
    pending = ledger.delivery(next_attempt_at=now - seconds(5))
    pending_now = ledger.delivery(next_attempt_at=now)  # next_attempt_at == now is due
    retry = ledger.delivery(status="retrying", attempts=2, next_attempt_at=now - seconds(5))
    future = ledger.delivery(next_attempt_at=now + seconds(1))
    future_retry = ledger.delivery(status="retrying", attempts=1, next_attempt_at=now + seconds(1))
    blocker = ledger.delivery(key="k", sequence=1, status="retrying", attempts=1, next_attempt_at=now + seconds(300))
    blocked = ledger.delivery(key="k", sequence=2, next_attempt_at=now - seconds(50))
    off = ledger.group()
    ledger.disable_hook(off)
    waits_for_hook = ledger.delivery(group_id=off, next_attempt_at=now - seconds(50))
    retry_waits_for_hook = ledger.delivery(group_id=off, status="retrying", attempts=1,
                                           next_attempt_at=now - seconds(50))
    in_flight = ledger.delivery(status="in_flight", attempts=1, next_attempt_at=now - seconds(100),
                                lease_until=now + seconds(30))
    finished = [ledger.delivery(status=s, attempts=1, next_attempt_at=now - seconds(100))
                for s in ("delivered", "dead", "cancelled", "skipped")]
    untouched = [future, future_retry, blocker, blocked, waits_for_hook, retry_waits_for_hook, in_flight, *finished]
    before = {i: ledger.row(i) for i in untouched}

    with ledger.engine.begin() as conn:
        first_attempts = storage.ledger.claim_due(conn, now, LEASE, 1000, "pending")
    assert sorted(r.id for r in first_attempts) == sorted([pending, pending_now])
    assert {r.attempts for r in first_attempts} == {1}  # the claim counts the attempt it hands out
    with ledger.engine.begin() as conn:
        retries = storage.ledger.claim_due(conn, now, LEASE, 1000, "retrying")
    assert [(r.id, r.attempts) for r in retries] == [(retry, 3)]
    for delivery_id, attempts_before in ((pending, 0), (pending_now, 0), (retry, 2)):
        row = ledger.row(delivery_id)
        assert (row.status, row.attempts) == ("in_flight", attempts_before + 1)
        assert (row.lease_until, row.updated_at) == (now + seconds(LEASE), now)
    for delivery_id, row in before.items():
        assert ledger.row(delivery_id) == row

    # claimed rows are in flight: nothing is left to take now in either lane
    assert ledger.claim_due(now, "pending") == [] and ledger.claim_due(now, "retrying") == []
    # a second later the rows that were not due yet are, each in its own lane
    assert ledger.claim_due(now + seconds(1), "pending") == [future]
    assert ledger.claim_due(now + seconds(1), "retrying") == [future_retry]
    # the blocked one waits for its predecessor, the disabled hook's for the hook
    assert ledger.row(blocked).status == "pending" and ledger.row(waits_for_hook).status == "pending"
    ledger.claim([blocker], now + seconds(300))
    ledger.record(delivered(blocker, 2, now + seconds(301)))
    assert ledger.claim_due(now + seconds(302), "pending") == [blocked]
    with ledger.engine.begin() as conn:
        conn.execute(sa.update(hooks).where(hooks.c.id == ledger._hooks[off]).values(disabled_at=None))
    assert ledger.claim_due(now + seconds(302), "pending") == [waits_for_hook]
    assert ledger.claim_due(now + seconds(302), "retrying") == [retry_waits_for_hook]


def test_claim_due_takes_one_delivery_of_a_key_at_a_time(ledger):
    first, second, third = (ledger.delivery(key="k", sequence=n) for n in (1, 2, 3))
    other = ledger.delivery(key="other", sequence=2)
    # one statement: the first of the key and the first of another key, never two of one key
    assert sorted(ledger.claim_due(T0)) == sorted([first, other])
    assert ledger.claim_due(T0) == []  # the first in flight still blocks
    ledger.record(delivered(first, 1, T0 + seconds(1)))
    assert ledger.claim_due(T0 + seconds(2)) == [second]
    ledger.record(outcome(second, 1, "retrying", T0 + seconds(3), next_attempt_at=T0 + seconds(10)))
    # a retry of the key, even before its time, holds the key's first attempts in the other lane
    assert ledger.claim_due(T0 + seconds(4), "pending") == []
    assert ledger.claim_due(T0 + seconds(4), "retrying") == []
    assert ledger.claim_due(T0 + seconds(10), "pending") == []
    assert ledger.claim_due(T0 + seconds(10), "retrying") == [second]
    ledger.record(delivered(second, 2, T0 + seconds(11)))
    assert ledger.claim_due(T0 + seconds(12), "pending") == [third]


def test_claim_due_limit_takes_the_oldest_first(ledger):
    ids = [ledger.delivery(next_attempt_at=T0 - seconds(n)) for n in (1, 5, 3, 4, 2)]
    assert sorted(ledger.claim_due(T0, limit=2)) == sorted([ids[1], ids[3]])
    assert sorted(ledger.claim_due(T0, limit=2)) == sorted([ids[2], ids[4]])
    assert ledger.claim_due(T0, limit=10) == [ids[0]]


def test_claim_due_leaves_out_the_endpoints_it_is_told_to_skip(ledger):
    busy = ledger.delivery(endpoint="https://busy.example/in")
    free = ledger.delivery(endpoint="https://free.example/in")
    assert ledger.claim_due(T0, skip_endpoints={"https://busy.example/in"}) == [free]
    assert ledger.row(busy).status == "pending" and ledger.row(busy).attempts == 0
    assert ledger.claim_due(T0) == [busy]


# --- dispatch_due ----------------------------------------------------------------------

class RecordingPublisher:
    def __init__(self):
        self.nudges = 0

    def nudge(self):
        self.nudges += 1


def test_dispatch_due_takes_back_expired_leases_and_nudges_the_send_loops(ledger):
    # dispatch_due reads the clock itself: rows are placed far from it, so no timing matters
    past, later = utcnow() - datetime.timedelta(hours=1), utcnow() + datetime.timedelta(hours=1)
    ctx = types.SimpleNamespace(engine=ledger.engine, publisher=RecordingPublisher(),
                                settings=types.SimpleNamespace(max_attempts=10, disable_after=0))
    due = [ledger.delivery(next_attempt_at=past) for _ in range(2)]
    lost_worker = [ledger.delivery(status="in_flight", attempts=1, next_attempt_at=past, lease_until=past)
                   for _ in range(2)]
    lost_last = ledger.delivery(status="in_flight", attempts=10, next_attempt_at=past, lease_until=past)
    live_lease = ledger.delivery(status="in_flight", attempts=1, next_attempt_at=past, lease_until=later)
    untouched = {i: ledger.row(i) for i in [*due, live_lease]}

    # the sweep takes at most ``limit`` leases back; the next one takes the rest
    assert dispatch_due(ctx, limit=2) == 2
    assert ctx.publisher.nudges == 1
    assert dispatch_due(ctx, limit=2) == 1
    assert ctx.publisher.nudges == 2
    for delivery_id in lost_worker:
        row = ledger.row(delivery_id)
        assert (row.status, row.attempts, row.last_error, row.lease_until) == ("retrying", 1, "worker_lost", None)
        assert [a.error_kind for a in ledger.attempts(delivery_id)] == ["worker_lost"]
    assert ledger.row(lost_last).status == "dead"
    # the scheduler no longer hands out due rows (the send loops claim them) nor touches a live lease
    for delivery_id, row in untouched.items():
        assert ledger.row(delivery_id) == row

    # nothing taken back: no nudge
    assert dispatch_due(ctx, limit=2) == 0
    assert ctx.publisher.nudges == 2
    # and the rows it took back are claimable by the retry lane at once
    assert sorted(ledger.claim_due(utcnow(), "retrying")) == sorted(lost_worker)


# --- delete_group ----------------------------------------------------------------------

def test_delete_group_cancels_only_what_it_still_owes(ledger):
    other_group = ledger.group()
    mine = {s: ledger.delivery(status=s, attempts=1) for s in
            ("pending", "retrying", "in_flight", "delivered", "dead")}
    theirs = {s: ledger.delivery(status=s, attempts=1, group_id=other_group)
              for s in ("pending", "retrying")}
    untouched = [mine["in_flight"], mine["delivered"], mine["dead"], *theirs.values()]
    before = {i: ledger.row(i) for i in untouched}

    with ledger.engine.begin() as conn:
        assert not groups.delete_group(conn, ledger.group_id, [ledger.organization_id + 1000], T0)
    assert ledger.row(mine["pending"]).status == "pending"  # not yours: nothing happens

    with ledger.engine.begin() as conn:
        assert groups.delete_group(conn, ledger.group_id, [ledger.organization_id], T0 + seconds(1))
    for status in ("pending", "retrying"):
        row = ledger.row(mine[status])
        assert (row.status, row.lease_until, row.updated_at) == ("cancelled", None, T0 + seconds(1))
    for delivery_id, row in before.items():
        assert ledger.row(delivery_id) == row
    # the other group's rows are still claimed, each in its lane; the cancelled ones never
    assert ledger.claim_due(T0 + seconds(2), "pending") == [theirs["pending"]]
    assert ledger.claim_due(T0 + seconds(2), "retrying") == [theirs["retrying"]]

    with ledger.engine.begin() as conn:
        assert not groups.delete_group(conn, ledger.group_id, [ledger.organization_id], T0 + seconds(2))
        assert groups.get_group(conn, ledger.group_id) == (None, [])


# --- PostgreSQL: concurrent claimers and schedulers ------------------------------------

@pytest.fixture
def pg_ledger(pg_database_url):
    return Ledger(engine_for(pg_database_url))


def _open(engine):
    """A connection inside a transaction that gives up after 5 s waiting for a lock, never hangs."""
    conn = engine.connect()
    conn.begin()
    conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
    return conn


def test_concurrent_claims_take_disjoint_rows(pg_ledger):
    ids = [pg_ledger.delivery() for _ in range(10)]
    first, second = _open(pg_ledger.engine), _open(pg_ledger.engine)
    try:
        by_first = [r.id for r in storage.ledger.claim(first, ids[:6], T0, LEASE)]
        assert sorted(by_first) == sorted(ids[:6])
        # the first still holds its transaction: the second skips its rows instead of waiting
        by_second = [r.id for r in storage.ledger.claim(second, ids, T0, LEASE)]
        assert sorted(by_second) == sorted(ids[6:])
        second.commit()
        first.commit()
    finally:
        first.close()
        second.close()
    assert {pg_ledger.row(i).attempts for i in ids} == {1}
    assert {pg_ledger.row(i).status for i in ids} == {"in_flight"}


def test_concurrent_claims_of_the_same_ids(pg_ledger):
    ids = [pg_ledger.delivery() for _ in range(5)]
    first, second = _open(pg_ledger.engine), _open(pg_ledger.engine)
    try:
        assert sorted(r.id for r in storage.ledger.claim(first, ids, T0, LEASE)) == sorted(ids)
        assert storage.ledger.claim(second, ids, T0, LEASE) == []
        second.commit()
        first.commit()
    finally:
        first.close()
        second.close()
    assert {pg_ledger.row(i).attempts for i in ids} == {1}
    # after the first committed, a third claimer finds them in flight
    assert pg_ledger.claim(ids, T0) == []


def test_concurrent_claim_due_never_returns_the_same_id(pg_ledger):
    ids = [pg_ledger.delivery(next_attempt_at=T0 - seconds(n)) for n in range(1, 11)]
    first, second = _open(pg_ledger.engine), _open(pg_ledger.engine)
    try:
        by_first = [r.id for r in storage.ledger.claim_due(first, T0, LEASE, 4, "pending")]
        # the first still holds its transaction: the second skips its rows instead of waiting
        # (a wait would hit lock_timeout and fail the test)
        by_second = [r.id for r in storage.ledger.claim_due(second, T0, LEASE, 100, "pending")]
        assert sorted(by_first) == sorted(ids[-4:])  # the oldest due first
        assert set(by_first).isdisjoint(by_second)
        assert sorted(by_first + by_second) == sorted(ids)
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    assert {(pg_ledger.row(i).status, pg_ledger.row(i).attempts) for i in ids} == {("in_flight", 1)}


def test_concurrent_claim_due_never_overtakes_a_row_another_claim_holds(pg_ledger):
    """The later delivery of a key stays blocked while another transaction holds the earlier one
    (claimed, not yet committed): the second claim sees it still owed and skips the key."""
    first_of_key = pg_ledger.delivery(key="k", sequence=1)
    second_of_key = pg_ledger.delivery(key="k", sequence=2)
    first, second = _open(pg_ledger.engine), _open(pg_ledger.engine)
    try:
        assert [r.id for r in storage.ledger.claim_due(first, T0, LEASE, 100, "pending")] == [first_of_key]
        assert storage.ledger.claim_due(second, T0, LEASE, 100, "pending") == []
        second.commit()
        first.commit()
    finally:
        first.close()
        second.close()
    assert pg_ledger.row(second_of_key).status == "pending"


def test_claim_due_skips_rows_a_claim_by_ids_holds(pg_ledger):
    """A send loop's claim_due does not wait for deliver_batch's open claim of some ids, nor the reverse."""
    ids = [pg_ledger.delivery() for _ in range(4)]
    by_ids, send_loop = _open(pg_ledger.engine), _open(pg_ledger.engine)
    try:
        held = [r.id for r in storage.ledger.claim(by_ids, ids[:2], T0, LEASE)]
        claimed = [r.id for r in storage.ledger.claim_due(send_loop, T0, LEASE, 100, "pending")]
        assert sorted(held) == sorted(ids[:2])
        assert sorted(claimed) == sorted(ids[2:])
        # and the reverse: a claim of ids the send loop holds takes nothing, at once
        assert storage.ledger.claim(by_ids, ids[2:], T0, LEASE) == []
        send_loop.commit()
        by_ids.commit()
    finally:
        by_ids.close()
        send_loop.close()
    assert {(pg_ledger.row(i).status, pg_ledger.row(i).attempts) for i in ids} == {("in_flight", 1)}


@pytest.mark.parametrize("table", ["deliveries", "notifications"])
def test_a_status_outside_the_lifecycle_is_refused_by_the_database(ledger, table):
    """The CHECK constraint of migration 0008 (triggers on SQLite): a typo in a status is an
    error where it is written, not a row no query ever finds again."""
    delivery_id = ledger.delivery()
    with pytest.raises(sa.exc.IntegrityError):
        with ledger.engine.begin() as conn:
            if table == "deliveries":
                conn.execute(sa.update(deliveries).where(deliveries.c.id == delivery_id).values(status="deliverd"))
            else:
                conn.execute(sa.insert(notifications).values(
                    id="n1", group_id=ledger.group_id, type="hook.disabled", body="{}", status="sending",
                    attempts=0, next_attempt_at=T0, created_at=T0, updated_at=T0))
    assert ledger.row(delivery_id).status == "pending"
