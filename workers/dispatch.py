"""dispatch_due: the scheduler's sweep over the ledger.

Workers claim due deliveries themselves (workers.sender); the sweep handles what no worker
will: it takes back deliveries whose worker died mid-attempt (expired lease: the lost
attempt is recorded, then the row is retried or buried) and disables the hooks that have
failed every attempt for DISABLE_AFTER seconds (one indexed query). Rows are taken with
SKIP LOCKED on PostgreSQL, so several schedulers may run at once.
"""

import logging

from workers import metrics
from storage import ledger
from storage.db import utcnow
from workers import notifications

log = logging.getLogger(__name__)
SWEEP_LIMIT = 1000


def dispatch_due(ctx, limit=SWEEP_LIMIT):
    """One sweep; returns how many deliveries were taken back from workers that died."""
    settings = ctx.settings
    buried = []
    with ctx.engine.begin() as conn:
        now = utcnow()
        lost = ledger.expire_leases(conn, now, settings.max_attempts, limit=limit, buried=buried)
        notifications.exhausted(conn, buried, now)
    metrics.swept(lost, len(buried))
    if lost:
        log.warning("took back %d delivery(ies) whose worker stopped mid-attempt", lost)
    # endpoint health: hooks failing every attempt for DISABLE_AFTER seconds are disabled
    with ctx.engine.begin() as conn:
        disabled = notifications.auto_disable(conn, utcnow(), settings.disable_after)
    if disabled:
        log.warning("disabled %d hook(s) failing for %ss", len(disabled), settings.disable_after)
    if lost:
        ctx.publisher.nudge()  # the send loops may claim these retries at once
    return lost
