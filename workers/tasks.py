"""The Celery face: thin tasks that call the plain functions of fanout, delivery and dispatch."""

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
    ids = fanout.fan_out(ctx.engine, record, utcnow())
    if ids:
        ctx.publisher.deliveries(ids)


@app.task(name=DELIVER)
def deliver(ids):
    # Nothing to retry here: a batch that fails before recording leaves its rows to the scheduler.
    delivery.deliver_batch(context(), ids)
