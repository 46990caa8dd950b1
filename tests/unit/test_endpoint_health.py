"""The rules of endpoint health and operational notifications: what counts against a hook,
when a failing hook is disabled, why a delivery is skipped, and how a notification is retried."""

import datetime

import pytest

from ground.settings import SettingsError
from ground.settings import from_env
from workers import endpoint_health
from workers import notifications

T0 = datetime.datetime(2030, 1, 10, 8, 0, 0, 123456)


def test_the_auto_disable_cutoff_is_disable_after_ago_and_zero_means_never():
    assert endpoint_health.auto_disable_cutoff(T0, 432000) == T0 - datetime.timedelta(days=5)
    assert endpoint_health.auto_disable_cutoff(T0, 60) == T0 - datetime.timedelta(minutes=1)
    assert endpoint_health.auto_disable_cutoff(T0, 0) is None


def test_disable_after_defaults_to_five_days_and_refuses_a_negative():
    assert from_env({}).disable_after == 5 * 24 * 3600
    assert from_env({"DOO_WEBHOOKS_DISABLE_AFTER": "0"}).disable_after == 0
    with pytest.raises(SettingsError, match="DOO_WEBHOOKS_DISABLE_AFTER"):
        from_env({"DOO_WEBHOOKS_DISABLE_AFTER": "-1"})


def test_the_reasons_say_since_when_and_why():
    assert endpoint_health.failing_reason(T0) == "failing since 2030-01-10T08:00:00Z"
    assert endpoint_health.skipped_reason("the receiver answered 410 Gone") == "hook disabled: the receiver answered 410 Gone"
    assert endpoint_health.skipped_reason(None) == "hook disabled: disabled"
    assert len(endpoint_health.skipped_reason("x" * 300)) == 255


def test_a_notification_is_tried_five_times_with_a_growing_backoff_then_dropped():
    assert notifications.notification_next(1, True) == ("sent", None)
    waits = []
    for attempt in range(1, 6):
        status, wait = notifications.notification_next(attempt, False)
        if status == "failed":
            assert attempt == notifications.NOTIFY_MAX_ATTEMPTS == 5 and wait is None
            break
        assert status == "pending"
        waits.append(wait)
    assert waits == sorted(waits) and len(waits) == 4 and waits[0] >= 10
