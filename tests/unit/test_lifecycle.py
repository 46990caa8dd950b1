"""storage.lifecycle: the statuses, the moves between them, and decide()."""

import pytest

from storage import lifecycle
from storage.lifecycle import Move
from storage.lifecycle import Status


@pytest.mark.parametrize("spent", [1, 5, 9, 10])
def test_an_answered_200_is_delivered(spent):
    assert lifecycle.decide(Move.ATTEMPT, success=True, spent=spent, max_attempts=10) is Status.DELIVERED


@pytest.mark.parametrize("spent", [1, 2, 9])
def test_a_failure_before_the_last_attempt_retries(spent):
    assert lifecycle.decide(Move.ATTEMPT, success=False, spent=spent, max_attempts=10) is Status.RETRYING


@pytest.mark.parametrize("spent", [10, 11])
def test_a_failure_of_the_last_attempt_is_dead(spent):
    assert lifecycle.decide(Move.ATTEMPT, success=False, spent=spent, max_attempts=10) is Status.DEAD


def test_ten_failures_make_a_dead_letter():
    states = [lifecycle.decide(Move.ATTEMPT, success=False, spent=n, max_attempts=10) for n in range(1, 11)]
    assert states == [Status.RETRYING] * 9 + [Status.DEAD]


def test_a_lost_lease_counts_as_a_failed_attempt():
    assert lifecycle.decide(Move.LOSE_LEASE, spent=3, max_attempts=10) is Status.RETRYING
    assert lifecycle.decide(Move.LOSE_LEASE, spent=10, max_attempts=10) is Status.DEAD


@pytest.mark.parametrize("lane", lifecycle.LANES)
def test_a_row_given_back_returns_to_its_lane(lane):
    assert lifecycle.decide(Move.GIVE_BACK, lane=lane) is lane
    with pytest.raises(ValueError):
        lifecycle.decide(Move.GIVE_BACK, lane="in_flight_somewhere")


def test_only_finished_deliveries_are_sent_again_and_only_dead_ones_replayed():
    assert set(lifecycle.sources(Move.REDELIVER)) == {Status.DELIVERED, Status.DEAD, Status.SKIPPED}
    assert lifecycle.sources(Move.REPLAY) == (Status.DEAD,)
    assert lifecycle.decide(Move.REDELIVER) is lifecycle.decide(Move.REPLAY) is Status.PENDING


def test_every_status_is_reachable_and_the_final_ones_only_by_an_operator_again():
    reachable = set().union(*(targets for _, targets in lifecycle.TRANSITIONS.values()))
    assert reachable == set(Status)
    leaving_final = {move for move, (sources, _) in lifecycle.TRANSITIONS.items()
                     if sources & set(lifecycle.FINAL)}
    assert leaving_final == {Move.REDELIVER, Move.REPLAY}


def test_the_groups_of_statuses_partition_them():
    assert set(lifecycle.BLOCKING) | set(lifecycle.FINAL) == set(Status)
    assert not set(lifecycle.BLOCKING) & set(lifecycle.FINAL)
    assert set(lifecycle.OPEN) < set(lifecycle.BLOCKING)


def test_statuses_are_stored_and_shown_as_their_plain_names():
    assert Status.IN_FLIGHT == "in_flight" and str(Status.IN_FLIGHT) == "in_flight" and f"{Status.DEAD}" == "dead"
