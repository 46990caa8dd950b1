"""workers.rules: success, the retry schedule with jitter, Retry-After, the next state."""

import datetime
import email.utils
import random
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doo_webhooks.settings import DEFAULT_RETRY_SCHEDULE
from doo_webhooks.settings import from_env
from workers import rules

NOW = datetime.datetime(2030, 1, 1, 12, 0, 0)  # naive UTC, as the ledger's clock gives it
DAY = 24 * 3600


def http_date(moment):
    return email.utils.format_datetime(moment.replace(tzinfo=datetime.timezone.utc), usegmt=True)


def settings(schedule=(10, 60, 300), jitter=0.0):
    return types.SimpleNamespace(retry_schedule=schedule, retry_jitter=jitter)


# --- is_success ------------------------------------------------------------------------

def test_only_200_by_default():
    default = from_env({}).success_statuses
    assert default == (200,)
    assert rules.is_success(200, default)
    for code in (201, 202, 204, 299, 301, 302, 304, 400, 401, 404, 429, 500, 503):
        assert not rules.is_success(code, default), code
    assert not rules.is_success(None, default)  # no answer at all


def test_success_statuses_can_be_widened():
    assert rules.is_success(201, (200, 201, 204))
    assert rules.is_success(204, (200, 201, 204))
    assert not rules.is_success(202, (200, 201, 204))
    assert not rules.is_success(None, (200, 201, 204))


# --- retry_delay -----------------------------------------------------------------------

def test_schedule_without_jitter():
    schedule = DEFAULT_RETRY_SCHEDULE
    assert [rules.retry_delay(n, schedule, jitter=0) for n in range(1, 10)] == [
        10, 60, 300, 900, 3600, 10800, 21600, 43200, 86400]


@pytest.mark.parametrize("attempt", [9, 10, 11, 50, 10_000])
def test_last_delay_repeats(attempt):
    assert rules.retry_delay(attempt, DEFAULT_RETRY_SCHEDULE, jitter=0) == 86400


def test_single_value_schedule():
    assert [rules.retry_delay(n, (0.5,), jitter=0) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


def test_default_schedule_is_about_two_days():
    total = sum(rules.retry_delay(n, DEFAULT_RETRY_SCHEDULE, jitter=0) for n in range(1, 10))
    assert 1.5 * DAY < total < 2.5 * DAY


def test_seeded_jitter_is_reproducible_and_spreads_both_ways():
    draws = [rules.retry_delay(1, (100,), 0.2, random.Random(7)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(1234)
    values = [rules.retry_delay(1, (100,), 0.2, rng) for _ in range(500)]
    assert all(80 <= v <= 120 for v in values)
    assert min(values) < 85 and max(values) > 115  # it really jitters, over the whole range
    assert len(set(values)) > 400


def test_default_jitter_is_twenty_percent():
    rng = random.Random(99)
    values = [rules.retry_delay(2, DEFAULT_RETRY_SCHEDULE, rng=rng) for _ in range(500)]
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
    delay = rules.retry_delay(attempt, tuple(schedule), jitter, random.Random(seed))
    slack = 1e-9 * max(base, 1)
    assert base * (1 - jitter) - slack <= delay <= base * (1 + jitter) + slack
    assert delay >= 0


# --- parse_retry_after -----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("0", 0.0), ("1", 1.0), ("120", 120.0), (" 120 ", 120.0), ("0120", 120.0),
    ("86400", 86400.0), ("86401", 86400.0), ("999999999999999999999", 86400.0),
    ("0000000000000000000000000000000000000000030", 30.0),
])
def test_retry_after_seconds(value, expected):
    assert rules.parse_retry_after(value, NOW) == expected


def test_retry_after_http_date():
    assert rules.parse_retry_after(http_date(NOW + datetime.timedelta(seconds=90)), NOW) == 90.0
    assert rules.parse_retry_after("Tue, 01 Jan 2030 12:02:00 GMT", NOW) == 120.0
    # another zone, same instant
    assert rules.parse_retry_after("Tue, 01 Jan 2030 13:02:00 +0100", NOW) == 120.0
    # past dates mean now
    assert rules.parse_retry_after(http_date(NOW - datetime.timedelta(hours=1)), NOW) == 0.0
    # capped at a day
    assert rules.parse_retry_after(http_date(NOW + datetime.timedelta(days=3)), NOW) == DAY
    assert rules.parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == DAY


@pytest.mark.parametrize("value", [
    None, "", "   ", "soon", "-5", "1.5", "1e3", "+30", "120s", "30, 40",
    "Wed, 99 Foo 2024 25:00:00 GMT", "Tue, 01 Jan 2030",
    "\u00b2",                 # superscript two: str.isdigit() says yes, int() says no
    "\u0661\u0662\u0660",      # Arabic-Indic digits: not HTTP delta-seconds
])
def test_retry_after_garbage(value):
    assert rules.parse_retry_after(value, NOW) is None


def test_retry_after_with_more_digits_than_int_takes():
    # Python 3.11+ refuses int() of a string over 4300 digits; it is still "later than a day"
    assert rules.parse_retry_after("9" * 5000, NOW) == DAY


@given(st.one_of(st.text(max_size=60),
                 st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=12)))
def test_retry_after_never_raises(value):
    result = rules.parse_retry_after(value, NOW)
    assert result is None or 0.0 <= result <= DAY


# --- failure_delay ---------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_lengthens_on_429_and_503(status):
    assert rules.failure_delay(1, status, {"Retry-After": "120"}, settings(), NOW) == 120.0
    date = http_date(NOW + datetime.timedelta(minutes=30))
    assert rules.failure_delay(1, status, {"Retry-After": date}, settings(), NOW) == 1800.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_never_shortens(status):
    assert rules.failure_delay(2, status, {"Retry-After": "5"}, settings(), NOW) == 60.0
    assert rules.failure_delay(2, status, {"Retry-After": "0"}, settings(), NOW) == 60.0
    past = http_date(NOW - datetime.timedelta(minutes=5))
    assert rules.failure_delay(2, status, {"Retry-After": past}, settings(), NOW) == 60.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_capped_at_a_day(status):
    assert rules.failure_delay(1, status, {"Retry-After": str(10 * DAY)}, settings(), NOW) == DAY
    far = http_date(NOW + datetime.timedelta(days=30))
    assert rules.failure_delay(1, status, {"Retry-After": far}, settings(), NOW) == DAY
    # a schedule longer than a day is the schedule's business, not Retry-After's
    assert rules.failure_delay(1, status, {"Retry-After": "60"}, settings((2 * DAY,)), NOW) == 2 * DAY


@pytest.mark.parametrize("status", [None, 200, 301, 400, 401, 404, 408, 425, 500, 502, 504])
def test_retry_after_ignored_for_other_statuses(status):
    assert rules.failure_delay(1, status, {"Retry-After": "3600"}, settings(), NOW) == 10.0


@pytest.mark.parametrize("headers", [None, {}, {"Retry-After": "soon"}, {"Retry-After": ""},
                                     {"Retry-After": "\u00b2"}, {"X-Other": "3600"}])
def test_unusable_retry_after_keeps_the_schedule(headers):
    assert rules.failure_delay(3, 503, headers, settings(), NOW) == 300.0


@pytest.mark.parametrize("name", ["retry-after", "RETRY-AFTER", "Retry-after"])
def test_retry_after_header_name_is_case_insensitive(name):
    # workers.http hands over dict(response.headers): the names as the receiver spelt them
    assert rules.failure_delay(1, 429, {name: "120"}, settings(), NOW) == 120.0


def test_failure_delay_uses_the_settings_jitter():
    rng = random.Random(5)
    values = [rules.failure_delay(1, 500, {}, settings((100,), 0.2), NOW, rng) for _ in range(200)]
    assert all(80 <= v <= 120 for v in values) and len(set(values)) > 100


def test_failure_delay_follows_the_schedule():
    assert [rules.failure_delay(n, 500, {}, settings(), NOW) for n in (1, 2, 3, 4, 9)] == [10, 60, 300, 300, 300]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_429_and_503_pauses_the_endpoint(status):
    assert rules.pause_seconds(status, {"retry-after": "30"}, NOW) == 30.0


@pytest.mark.parametrize("status, headers", [
    (429, {}),  # no Retry-After: the usual retry schedule, no pause
    (429, {"Retry-After": "0"}),
    (429, {"Retry-After": "soon"}),
    (500, {"Retry-After": "30"}),  # only 429 and 503 carry a Retry-After that means "back off"
    (200, {"Retry-After": "30"}),
])
def test_no_pause_without_a_usable_retry_after_on_429_or_503(status, headers):
    assert rules.pause_seconds(status, headers, NOW) is None
