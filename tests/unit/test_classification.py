"""workers.classification: what came back from an attempt, as a verdict (success, error kind,
Retry-After, what disables a hook, what counts for a hook's health)."""

import datetime
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ground.settings import from_env
from storage.lifecycle import ErrorKind
from workers import classification
from workers.http import HttpResult
from workers.payloads import OriginError
from workers.tokens import TokenError

NOW = datetime.datetime(2030, 1, 1, 12, 0, 0)  # naive UTC, as the ledger's clock gives it
DAY = 24 * 3600


def http_date(moment):
    return email.utils.format_datetime(moment.replace(tzinfo=datetime.timezone.utc), usegmt=True)


def answer(status, headers=None, kind=None, detail=None):
    return HttpResult(status, headers or {}, b"", 5, kind, detail)


def verdict(status, headers=None, statuses=(200,)):
    return classification.answered(answer(status, headers), statuses, NOW)


# --- is_success ------------------------------------------------------------------------

def test_only_200_by_default():
    default = from_env({}).success_statuses
    assert default == (200,)
    assert classification.is_success(200, default)
    for code in (201, 202, 204, 299, 301, 302, 304, 400, 401, 404, 429, 500, 503):
        assert not classification.is_success(code, default), code
    assert not classification.is_success(None, default)  # no answer at all


def test_success_statuses_can_be_widened():
    assert classification.is_success(201, (200, 201, 204))
    assert classification.is_success(204, (200, 201, 204))
    assert not classification.is_success(202, (200, 201, 204))
    assert not classification.is_success(None, (200, 201, 204))


# --- parse_retry_after -----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("0", 0.0), ("1", 1.0), ("120", 120.0), (" 120 ", 120.0), ("0120", 120.0),
    ("86400", 86400.0), ("86401", 86400.0), ("999999999999999999999", 86400.0),
    ("0000000000000000000000000000000000000000030", 30.0),
])
def test_retry_after_seconds(value, expected):
    assert classification.parse_retry_after(value, NOW) == expected


def test_retry_after_http_date():
    assert classification.parse_retry_after(http_date(NOW + datetime.timedelta(seconds=90)), NOW) == 90.0
    assert classification.parse_retry_after("Tue, 01 Jan 2030 12:02:00 GMT", NOW) == 120.0
    # another zone, same instant
    assert classification.parse_retry_after("Tue, 01 Jan 2030 13:02:00 +0100", NOW) == 120.0
    # past dates mean now
    assert classification.parse_retry_after(http_date(NOW - datetime.timedelta(hours=1)), NOW) == 0.0
    # capped at a day
    assert classification.parse_retry_after(http_date(NOW + datetime.timedelta(days=3)), NOW) == DAY
    assert classification.parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == DAY


@pytest.mark.parametrize("value", [
    None, "", "   ", "soon", "-5", "1.5", "1e3", "+30", "120s", "30, 40",
    "Wed, 99 Foo 2024 25:00:00 GMT", "Tue, 01 Jan 2030",
    "\u00b2",                 # superscript two: str.isdigit() says yes, int() says no
    "\u0661\u0662\u0660",      # Arabic-Indic digits: not HTTP delta-seconds
])
def test_retry_after_garbage(value):
    assert classification.parse_retry_after(value, NOW) is None


def test_retry_after_with_more_digits_than_int_takes():
    # Python 3.11+ refuses int() of a string over 4300 digits; it is still "later than a day"
    assert classification.parse_retry_after("9" * 5000, NOW) == DAY


@given(st.one_of(st.text(max_size=60),
                 st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=12)))
def test_retry_after_never_raises(value):
    result = classification.parse_retry_after(value, NOW)
    assert result is None or 0.0 <= result <= DAY


# --- verdicts ---------------------------------------------------------------------------

def test_a_200_is_a_success_that_pauses_nothing_and_disables_nothing():
    found = verdict(200)
    assert (found.success, found.error_kind, found.pause, found.disable_reason) == (True, None, None, None)


@pytest.mark.parametrize("status", [201, 204, 301, 400, 404, 500])
def test_any_other_answer_is_a_failed_attempt(status):
    found = verdict(status)
    assert (found.success, found.status_code, found.error_kind) == (False, status, ErrorKind.HTTP_STATUS)


def test_a_redirect_is_not_followed_and_its_location_is_kept():
    found = verdict(302, {"location": "https://elsewhere.example/in"})
    assert found.error_detail == "redirect not followed: Location https://elsewhere.example/in"


def test_a_network_error_keeps_the_transports_kind():
    found = classification.answered(answer(None, kind="timeout", detail="read timed out"), (200,), NOW)
    assert (found.success, found.error_kind, found.error_detail) == (False, ErrorKind.TIMEOUT, "read timed out")


def test_only_410_disables_a_hook():
    assert verdict(410).disable_reason == "the receiver answered 410 Gone"
    for status in (200, 400, 404, 500, 503):
        assert verdict(status).disable_reason is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_429_and_503_pauses_the_endpoint(status):
    assert verdict(status, {"retry-after": "30"}).pause == 30.0


@pytest.mark.parametrize("status, headers", [
    (429, {}),  # no Retry-After: the usual retry schedule, no pause
    (429, {"Retry-After": "0"}),
    (429, {"Retry-After": "soon"}),
    (500, {"Retry-After": "30"}),  # only 429 and 503 carry a Retry-After that means "back off"
    (200, {"Retry-After": "30"}),
])
def test_no_pause_without_a_usable_retry_after_on_429_or_503(status, headers):
    assert verdict(status, headers).pause is None


@pytest.mark.parametrize("exc, kind", [
    (OriginError("the origin answered 500"), ErrorKind.ORIGIN_ERROR),
    (TokenError("no access_token"), ErrorKind.TOKEN_ERROR),
    (TokenError("refused", kind=ErrorKind.TIMEOUT), ErrorKind.TOKEN_ERROR),
    (TokenError("internal", kind=ErrorKind.SSRF_BLOCKED), ErrorKind.SSRF_BLOCKED),
    (KeyError("a bug"), ErrorKind.INTERNAL_ERROR),
])
def test_an_attempt_without_an_answer(exc, kind):
    found = classification.failed(exc)
    assert (found.success, found.status_code, found.error_kind) == (False, None, kind)


@pytest.mark.parametrize("found, counts", [
    (classification.Verdict(True), True),
    (classification.Verdict(False, 500, ErrorKind.HTTP_STATUS), True),
    (classification.Verdict(False, None, ErrorKind.TIMEOUT), True),
    (classification.Verdict(False, None, ErrorKind.CONNECTION), True),
    (classification.Verdict(False, None, ErrorKind.TOKEN_ERROR), True),
    (classification.Verdict(False, None, ErrorKind.SSRF_BLOCKED), True),
    # our own GraphQL origin or our own bug say nothing about the receiver
    (classification.Verdict(False, None, ErrorKind.ORIGIN_ERROR), False),
    (classification.Verdict(False, None, ErrorKind.INTERNAL_ERROR), False),
])
def test_what_counts_for_a_hooks_health(found, counts):
    assert found.counts_for_health is counts


@pytest.mark.parametrize("status, kind, delivered", [
    (200, None, True), (202, None, True), (299, None, True),
    (300, None, False), (500, None, False), (None, "timeout", False),
])
def test_a_notification_is_received_on_any_2xx(status, kind, delivered):
    assert classification.notification_delivered(answer(status, kind=kind)) is delivered
