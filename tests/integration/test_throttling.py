"""Rate limits and pauses in the ledger and in Redis (issue 10): a throttled delivery goes
back without spending an attempt, a paused hook is not claimed, and the Redis limiter spaces
the requests of several processes as one."""

import asyncio
import time

import pytest

import storage.ledger
from storage import hook_health
from storage.db import engine_for
from test_ledger import T0
from test_ledger import Ledger
from test_ledger import seconds
from tests.conftest import REDIS_URL
from workers import rate_limit


@pytest.fixture
def ledger(database_url):
    return Ledger(engine_for(database_url))


def test_a_delivery_given_back_has_its_attempt_back_and_waits_its_turn(ledger):
    retrying = ledger.delivery(status="retrying", attempts=3)
    fresh = ledger.delivery()
    claimed = {row.id: row for row in ledger.claim([retrying, fresh], T0)}
    assert claimed[retrying].attempts == 4
    with ledger.engine.begin() as conn:
        storage.ledger.give_back(conn, [(retrying, "retrying", 4, T0 + seconds(2)),
                                        (fresh, "pending", 1, T0 + seconds(3))], T0)
    assert (ledger.row(retrying).status, ledger.row(retrying).attempts) == ("retrying", 3)
    assert (ledger.row(fresh).status, ledger.row(fresh).attempts) == ("pending", 0)
    assert ledger.row(fresh).lease_until is None
    assert ledger.attempts(retrying) == [] and ledger.attempts(fresh) == []
    assert ledger.claim_due(T0 + seconds(1)) == []  # not before its turn
    assert ledger.claim_due(T0 + seconds(3)) == [fresh]


def test_giving_back_a_row_someone_else_settled_changes_nothing(ledger):
    delivery = ledger.delivery()
    ledger.claim([delivery], T0)
    ledger.expire(T0 + seconds(3600))  # the lease ran out: the scheduler took it back
    taken_back = ledger.row(delivery)
    with ledger.engine.begin() as conn:
        storage.ledger.give_back(conn, [(delivery, "pending", 1, T0 + seconds(5))], T0)
    assert ledger.row(delivery) == taken_back


def test_a_paused_endpoint_is_not_claimed_until_its_pause_ends(ledger):
    paused = ledger.delivery(endpoint="https://crm.example/in")
    other_group = ledger.group()
    elsewhere = ledger.delivery(group_id=other_group, endpoint="https://crm.example/in")
    with ledger.engine.begin() as conn:
        hook_health.pause_endpoints(conn, [(ledger.group_id, "https://crm.example/in", T0 + seconds(30))], T0)
    # the pause is the group's endpoint's: the same URL in another group goes on
    assert ledger.claim_due(T0) == [elsewhere]
    assert ledger.row(paused).next_attempt_at == T0 + seconds(30)  # moved to the pause's end
    assert ledger.claim_due(T0 + seconds(29)) == []
    assert ledger.claim_due(T0 + seconds(30)) == [paused]


def test_a_row_claimed_during_a_pause_comes_with_it_for_the_send_loop_to_give_back(ledger):
    """Rows made due during a pause some other way (a redelivery, a retry another worker
    scheduled) are claimed with the hook's paused_until: the send loop gives them back."""
    with ledger.engine.begin() as conn:
        hook_health.pause_endpoints(conn, [(ledger.group_id, "https://crm.example/in", T0 + seconds(30))], T0)
    due_anyway = ledger.delivery(next_attempt_at=T0)
    with ledger.engine.begin() as conn:
        [row] = storage.ledger.claim_due(conn, T0 + seconds(1), 60, 10, "pending")
    assert (row.id, row.paused_until) == (due_anyway, T0 + seconds(30))


def test_a_shorter_pause_never_shortens_a_longer_one(ledger):
    delivery = ledger.delivery()
    with ledger.engine.begin() as conn:
        hook_health.pause_endpoints(conn, [(ledger.group_id, "https://crm.example/in", T0 + seconds(60))], T0)
        hook_health.pause_endpoints(conn, [(ledger.group_id, "https://crm.example/in", T0 + seconds(5))], T0)
    assert ledger.claim_due(T0 + seconds(59)) == []
    assert ledger.claim_due(T0 + seconds(60)) == [delivery]


async def _ask_until(limiter, key, rate, until):
    """One client asking the shared limiter as fast as it may; how many turns it was granted."""
    granted = 0
    while time.monotonic() < until:
        wait = await limiter.wait_for(key, rate)
        if wait == 0:
            granted += 1
        else:
            await asyncio.sleep(min(wait, max(0.0, until - time.monotonic())))
    return granted


def test_the_redis_limiter_shares_one_limit_between_clients():
    """Three clients with connections of their own (as three workers have) hammer one key:
    together they get the turns one client would, no more. (Several worker processes against
    a receiver that counts: tests/e2e/test_trust.py.)"""
    key, rate, seconds_ = f"test-{time.monotonic_ns()}", 20, 2.0

    async def run():
        limiters = [rate_limit.RedisLimiter(REDIS_URL) for _ in range(3)]
        started = time.monotonic()
        counts = await asyncio.gather(*(_ask_until(l, key, rate, started + seconds_) for l in limiters))
        elapsed = time.monotonic() - started
        for limiter in limiters:
            await limiter.close()
        return counts, elapsed

    counts, elapsed = asyncio.run(run())
    most = elapsed / rate_limit.interval(rate) + 1
    assert sum(counts) <= most
    # and it grants turns at all (a loaded machine may leave turns unasked: a floor, not a rate)
    assert sum(counts) >= 0.25 * seconds_ / rate_limit.interval(rate)
    # (no promise of fairness between clients: a worker whose rows wait too long gives them
    # back to the ledger, and whoever claims them next sends them)
