"""workers.retry_schedule: the retry schedule with jitter, lengthened by a receiver's Retry-After."""

import datetime
import email.utils
import random
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ground.settings import DEFAULT_RETRY_SCHEDULE
from workers import classification
from workers import retry_schedule

NOW = datetime.datetime(2030, 1, 1, 12, 0, 0)  # naive UTC, as the ledger's clock gives it
DAY = 24 * 3600


def http_date(moment):
    return email.utils.format_datetime(moment.replace(tzinfo=datetime.timezone.utc), usegmt=True)


def settings(schedule=(10, 60, 300), jitter=0.0):
    return types.SimpleNamespace(retry_schedule=schedule, retry_jitter=jitter)


def delay(attempt, status, headers, settings, now, rng=random):
    """The wait after a failed attempt answered ``status`` with ``headers``: what
    workers.classification reads of the answer, then the schedule of workers.retry_schedule."""
    return retry_schedule.failure_delay(attempt, classification.retry_after(status, headers, now), settings, rng)


# --- retry_delay -----------------------------------------------------------------------

def test_schedule_without_jitter():
    schedule = DEFAULT_RETRY_SCHEDULE
    assert [retry_schedule.retry_delay(n, schedule, jitter=0) for n in range(1, 10)] == [
        10, 60, 300, 900, 3600, 10800, 21600, 43200, 86400]


@pytest.mark.parametrize("attempt", [9, 10, 11, 50, 10_000])
def test_last_delay_repeats(attempt):
    assert retry_schedule.retry_delay(attempt, DEFAULT_RETRY_SCHEDULE, jitter=0) == 86400


def test_single_value_schedule():
    assert [retry_schedule.retry_delay(n, (0.5,), jitter=0) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


def test_default_schedule_is_about_two_days():
    total = sum(retry_schedule.retry_delay(n, DEFAULT_RETRY_SCHEDULE, jitter=0) for n in range(1, 10))
    assert 1.5 * DAY < total < 2.5 * DAY


def test_seeded_jitter_is_reproducible_and_spreads_both_ways():
    draws = [retry_schedule.retry_delay(1, (100,), 0.2, random.Random(7)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(1234)
    values = [retry_schedule.retry_delay(1, (100,), 0.2, rng) for _ in range(500)]
    assert all(80 <= v <= 120 for v in values)
    assert min(values) < 85 and max(values) > 115  # it really jitters, over the whole range
    assert len(set(values)) > 400


def test_default_jitter_is_twenty_percent():
    rng = random.Random(99)
    values = [retry_schedule.retry_delay(2, DEFAULT_RETRY_SCHEDULE, rng=rng) for _ in range(500)]
    assert all(48 <= v <= 72 for v in values)
    assert min(values) < 50 and max(values) > 70


@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    attempt=st.integers(min_value=1, max_value=40),
    schedule=st.lists(st.floats(min_value=0, max_value=10 * DAY), min_size=1, max_size=12),
    jitter=st.floats(min_value=0, max_value=0.99),
)
def test_jitter_stays_within_bounds(seed, attempt, schedule, jitter):
    base = schedule[min(attempt, len(schedule)) - 1]
    delay = retry_schedule.retry_delay(attempt, tuple(schedule), jitter, random.Random(seed))
    slack = 1e-9 * max(base, 1)
    assert base * (1 - jitter) - slack <= delay <= base * (1 + jitter) + slack
    assert delay >= 0


# --- failure_delay ---------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_lengthens_on_429_and_503(status):
    assert delay(1, status, {"Retry-After": "120"}, settings(), NOW) == 120.0
    date = http_date(NOW + datetime.timedelta(minutes=30))
    assert delay(1, status, {"Retry-After": date}, settings(), NOW) == 1800.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_never_shortens(status):
    assert delay(2, status, {"Retry-After": "5"}, settings(), NOW) == 60.0
    assert delay(2, status, {"Retry-After": "0"}, settings(), NOW) == 60.0
    past = http_date(NOW - datetime.timedelta(minutes=5))
    assert delay(2, status, {"Retry-After": past}, settings(), NOW) == 60.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_capped_at_a_day(status):
    assert delay(1, status, {"Retry-After": str(10 * DAY)}, settings(), NOW) == DAY
    far = http_date(NOW + datetime.timedelta(days=30))
    assert delay(1, status, {"Retry-After": far}, settings(), NOW) == DAY
    # a schedule longer than a day is the schedule's business, not Retry-After's
    assert delay(1, status, {"Retry-After": "60"}, settings((2 * DAY,)), NOW) == 2 * DAY


@pytest.mark.parametrize("status", [None, 200, 301, 400, 401, 404, 408, 425, 500, 502, 504])
def test_retry_after_ignored_for_other_statuses(status):
    assert delay(1, status, {"Retry-After": "3600"}, settings(), NOW) == 10.0


@pytest.mark.parametrize("headers", [None, {}, {"Retry-After": "soon"}, {"Retry-After": ""},
                                     {"Retry-After": "\u00b2"}, {"X-Other": "3600"}])
def test_unusable_retry_after_keeps_the_schedule(headers):
    assert delay(3, 503, headers, settings(), NOW) == 300.0


@pytest.mark.parametrize("name", ["retry-after", "RETRY-AFTER", "Retry-after"])
def test_retry_after_header_name_is_case_insensitive(name):
    # workers.http hands over dict(response.headers): the names as the receiver spelt them
    assert delay(1, 429, {name: "120"}, settings(), NOW) == 120.0


def test_failure_delay_uses_the_settings_jitter():
    rng = random.Random(5)
    values = [delay(1, 500, {}, settings((100,), 0.2), NOW, rng) for _ in range(200)]
    assert all(80 <= v <= 120 for v in values) and len(set(values)) > 100


def test_failure_delay_follows_the_schedule():
    assert [delay(n, 500, {}, settings(), NOW) for n in (1, 2, 3, 4, 9)] == [10, 60, 300, 300, 300]
