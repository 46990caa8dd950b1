"""The Celery face: thin tasks that call the plain functions of fanout, delivery and dispatch."""

import datetime
import functools
import logging

import sqlalchemy.exc

from doo_webhooks import settings as settings_module
from storage.db import utcnow
from workers import delivery
from workers import fanout
from workers.celery_app import app
from workers.context import WorkerContext
from workers.producer import CeleryPublisher
from workers.queues import DELIVER
from workers.queues import FAN_OUT

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def context():
    settings = settings_module.from_env()
    return WorkerContext.create(settings, CeleryPublisher(settings.broker_url, settings.batch_size))


# A trigger exists only in its message until fan_out commits: on a database outage the
# message goes back to the broker (short countdowns only, far below the visibility timeout).
@app.task(name=FAN_OUT, bind=True, autoretry_for=(sqlalchemy.exc.OperationalError,),
          retry_backoff=2, retry_backoff_max=60, max_retries=None)
def fan_out(self, record):
    ctx = context()
    delay = ctx.settings.ordering_delay
    if delay:
        # Held back for the ordering delay, then sent by a short countdown message (the
        # scheduler picks them up too, should that message be lost).
        now = utcnow()
        ids = fanout.fan_out(ctx.engine, record, now, first_attempt_at=now + datetime.timedelta(seconds=delay))
        ctx.publisher.deliveries(ids, countdown=delay)
        return
    # No delay: the first batch is claimed by the fan-out's own transaction and sent right
    # here, with no broker round trip and no claim transaction.
    rest, claimed = fanout.fan_out_and_claim(ctx.engine, record, utcnow(), delivery.lease_seconds(ctx.settings),
                                             claim_limit=ctx.settings.batch_size)
    if rest:
        ctx.publisher.deliveries(rest)
    delivery.send_claimed(ctx, claimed)


@app.task(name=DELIVER)
def deliver(ids):
    # Nothing to retry here: a batch that fails before recording leaves its rows to the scheduler.
    delivery.deliver_batch(context(), ids)
