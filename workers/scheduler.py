"""The scheduler process: dispatch_due about every second until told to stop, and the
operational notifications (workers.notifications) on a thread of their own, so a slow
notify receiver never holds deliveries back."""

import logging
import threading

from workers import notifications
from workers.dispatch import dispatch_due

log = logging.getLogger(__name__)


def _every(ctx, stop, what, sweep):
    while not stop.is_set():
        try:
            sweep(ctx)
        except Exception:  # the database or broker may be away; the next sweep catches up
            log.exception("%s failed; retrying at the next sweep", what)
        stop.wait(ctx.settings.dispatch_interval)


def run(ctx, stop: threading.Event):
    """Sweep every ``dispatch_interval`` seconds; an error is logged and the next sweep tries again."""
    log.info("scheduler started (every %ss)", ctx.settings.dispatch_interval)
    notifier = threading.Thread(target=_every, args=(ctx, stop, "sending notifications", notifications.send_due),
                                name="notifier", daemon=True)
    notifier.start()
    _every(ctx, stop, "dispatch_due", dispatch_due)
    notifier.join(timeout=10)
    log.info("scheduler stopped")
