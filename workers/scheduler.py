"""The scheduler process: dispatch_due about every second until told to stop."""

import logging
import threading

from workers.dispatch import dispatch_due

log = logging.getLogger(__name__)


def run(ctx, stop: threading.Event):
    """Sweep every ``dispatch_interval`` seconds; an error is logged and the next sweep tries again."""
    log.info("scheduler started (every %ss)", ctx.settings.dispatch_interval)
    while not stop.is_set():
        try:
            dispatch_due(ctx)
        except Exception:  # the database or broker may be away; the next sweep catches up
            log.exception("dispatch_due failed; retrying at the next sweep")
        stop.wait(ctx.settings.dispatch_interval)
    log.info("scheduler stopped")
