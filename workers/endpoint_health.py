"""Endpoint health, as plain functions: when a failing hook is disabled, and the reasons
recorded for it and for the deliveries it skips. (What counts against a hook's health is the
answer's reading: workers.classification; the streak itself is kept by storage.hook_health.)"""

import datetime


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
