"""dispatch_due: the scheduler's sweep that makes the database, not the broker, the source of truth.

Each run takes back deliveries whose worker died (expired lease), then enqueues every due,
unblocked delivery that has no live message: retries whose time has come, messages lost in
the broker, deliveries released by the one before them. It also disables the hooks that
have failed every attempt for DISABLE_AFTER seconds (one indexed query). Claims use SKIP LOCKED on
PostgreSQL, so several schedulers may run at once without sending anything twice.
"""

import logging

from doo_webhooks import metrics
from storage import queries
from storage.db import utcnow
from workers import notifications

log = logging.getLogger(__name__)
SWEEP_LIMIT = 1000


def dispatch_due(ctx, limit=SWEEP_LIMIT):
    """One sweep; returns how many deliveries were enqueued."""
    settings = ctx.settings
    buried = []
    with ctx.engine.begin() as conn:
        now = utcnow()
        lost = queries.expire_leases(conn, now, settings.max_attempts, buried=buried)
        notifications.exhausted(conn, buried, now)
    metrics.swept(0, lost, len(buried))
    if lost:
        log.warning("took back %d delivery(ies) whose worker stopped mid-attempt", lost)
    # endpoint health: hooks failing every attempt for DISABLE_AFTER seconds are disabled
    with ctx.engine.begin() as conn:
        disabled = notifications.auto_disable(conn, utcnow(), settings.disable_after)
    if disabled:
        log.warning("disabled %d hook(s) failing for %ss", len(disabled), settings.disable_after)
    enqueued = 0
    while True:
        with ctx.engine.begin() as conn:
            ids = queries.take_due(conn, utcnow(), settings.requeue_after, limit)
        # after the commit: a message must never point at a row another sweep may still change
        if ids:
            ctx.publisher.deliveries(ids)
            metrics.swept(len(ids), 0, 0)
        enqueued += len(ids)
        if len(ids) < limit:
            return enqueued
