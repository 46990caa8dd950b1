"""The retry schedule and the other timing rules, as plain functions: when to try again.

doo: a failed attempt is retried, and after 10 failed attempts the webhook is dead (a dead
letter; storage.lifecycle decides the status, workers.classification what counts as failed).
Delays follow ``retry_schedule`` with jitter; a receiver's ``Retry-After`` on 429/503 can only
lengthen the wait, never beyond a day.
"""

import datetime
import random

from storage.lifecycle import NotificationStatus


def retry_delay(failed_attempt, schedule, jitter=0.2, rng=random):
    """Seconds to wait after failed attempt number ``failed_attempt`` (1-based).

    The schedule's last delay repeats when the attempts outnumber it.
    """
    base = schedule[min(failed_attempt, len(schedule)) - 1]
    if jitter:
        base *= 1 + rng.uniform(-jitter, jitter)
    return max(0.0, base)


def failure_delay(attempt, retry_after, settings, rng=random):
    """The wait before the next attempt after failed attempt ``attempt``: the schedule's, or
    longer when the receiver asked for it (``retry_after``: workers.classification)."""
    delay = retry_delay(attempt, settings.retry_schedule, settings.retry_jitter, rng)
    return max(delay, retry_after) if retry_after is not None else delay


# --- endpoint health ---------------------------------------------------------------------

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
