"""The retry schedule: how long a failed delivery waits before its next attempt.

doo: a failed attempt is retried, and after 10 failed attempts the webhook is dead (a dead
letter; storage.lifecycle decides the status, workers.classification what counts as failed).
Delays follow ``retry_schedule`` with jitter; a receiver's ``Retry-After`` on 429/503 can only
lengthen the wait, never beyond a day.
"""

import random


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
