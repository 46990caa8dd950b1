"""The delivery rules, as plain functions: what an answer means and when to try again.

doo: only HTTP 200 means done, anything else is retried, and after 10 failed attempts the
webhook is dead (a dead letter: storage.lifecycle decides the status). Delays follow ``retry_schedule`` with jitter; a receiver's
``Retry-After`` on 429/503 can only lengthen the wait, never beyond a day.
"""

import datetime
import email.utils
import random

from storage.lifecycle import NotificationStatus

RETRY_AFTER_STATUSES = (429, 503)
MAX_RETRY_AFTER = 24 * 3600
GONE = 410


def is_success(status_code, success_statuses):
    return status_code is not None and status_code in success_statuses


def retry_delay(failed_attempt, schedule, jitter=0.2, rng=random):
    """Seconds to wait after failed attempt number ``failed_attempt`` (1-based).

    The schedule's last delay repeats when the attempts outnumber it.
    """
    base = schedule[min(failed_attempt, len(schedule)) - 1]
    if jitter:
        base *= 1 + rng.uniform(-jitter, jitter)
    return max(0.0, base)


def parse_retry_after(value, now):
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped at a day; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delta-seconds are ASCII digits ("²".isdigit() is True)
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(MAX_RETRY_AFTER)):  # past the cap; and int() refuses > 4300 digits
            return float(MAX_RETRY_AFTER)
        return float(min(int(digits), MAX_RETRY_AFTER))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return float(min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER))


def disable_reason(status_code):
    """Why an answer disables the hook at once, or None.

    410 Gone is the receiver saying the URL will never work again: retrying it for two days
    helps nobody. The hook is disabled and its deliveries wait, none lost, until it is enabled.
    """
    if status_code == GONE:
        return "the receiver answered 410 Gone"
    return None


def failure_delay(attempt, status_code, headers, settings, now, rng=random):
    """The wait before the next attempt after a failed one."""
    delay = retry_delay(attempt, settings.retry_schedule, settings.retry_jitter, rng)
    if status_code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(_header(headers, "Retry-After"), now)
        if asked is not None:
            delay = max(delay, asked)
    return delay


def pause_seconds(status_code, headers, now):
    """How long a receiver asked for no requests at all, or None. A 429 or 503 with
    Retry-After pauses its endpoint for every delivery, not only the one that was refused:
    the receiver is saying it is overloaded, and the other deliveries would only be refused
    too (and spend their attempts)."""
    if status_code not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(_header(headers, "Retry-After"), now) or None


def _header(headers, name):
    """A response header by name, whatever case the receiver used (workers.http passes a plain dict)."""
    name = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


# --- endpoint health ---------------------------------------------------------------------

#: failures that say nothing about the receiver: our GraphQL origin failed, or our own bug
NOT_THE_RECEIVERS_FAULT = ("origin_error", "internal_error")


def counts_for_health(success, error_kind):
    """Whether an attempt's outcome tells anything about the receiver's health."""
    return success or error_kind not in NOT_THE_RECEIVERS_FAULT


def auto_disable_cutoff(now, disable_after):
    """A hook failing since before this time (and still failing) is disabled; None: never."""
    if not disable_after:
        return None
    return now - datetime.timedelta(seconds=disable_after)


def failing_reason(failing_since):
    """The disabled_reason of an automatic disable."""
    return f"failing since {failing_since.replace(microsecond=0).isoformat()}Z"


def skipped_reason(disabled_reason):
    """Why a trigger's delivery to a disabled hook was recorded as skipped."""
    return f"hook disabled: {disabled_reason or 'disabled'}"[:255]


#: waits after failed notification attempt 1, 2, ...; after the last one the event is dropped
NOTIFY_BACKOFF = (10, 60, 300, 1800)
NOTIFY_MAX_ATTEMPTS = len(NOTIFY_BACKOFF) + 1


def notification_next(attempt, success):
    """(status, seconds to wait) after notification attempt number ``attempt``."""
    if success:
        return NotificationStatus.SENT, None
    if attempt >= NOTIFY_MAX_ATTEMPTS:
        return NotificationStatus.FAILED, None
    return NotificationStatus.PENDING, NOTIFY_BACKOFF[attempt - 1]
