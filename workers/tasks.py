"""The Celery face: the worker process's delivery engine as a Celery bootstep, and thin tasks
for the messages of the Celery queues (from producers of earlier versions, or an operator)."""

import functools
import logging

import sqlalchemy.exc
from celery import bootsteps

from ground import settings as settings_module
from workers import delivery
from workers import intake
from workers.celery_app import app
from workers.context import WorkerContext
from workers.engine import Engine
from workers.producer import StreamPublisher
from workers.queues import DELIVER
from workers.queues import FAN_OUT

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def context():
    settings = settings_module.from_env()
    return WorkerContext.create(settings, StreamPublisher(settings.broker_url))


class DeliveryEngine(bootsteps.StartStopStep):
    """Runs workers.engine.Engine (intake and send loops) for as long as the Celery worker
    runs; a warm shutdown lets what is in flight finish and be recorded."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.engine = None

    def start(self, worker):
        self.engine = Engine.for_streams(context()).start()
        log.info("delivery engine started")

    def stop(self, worker):
        if self.engine is not None:
            self.engine.stop()
            self.engine = None


app.steps["worker"].add(DeliveryEngine)


# A trigger exists only in its message until fan_out commits: on a database outage the
# message goes back to the broker (short countdowns only, far below the visibility timeout).
@app.task(name=FAN_OUT, bind=True, autoretry_for=(sqlalchemy.exc.OperationalError,),
          retry_backoff=2, retry_backoff_max=60, max_retries=None)
def fan_out(self, record):
    """A trigger sent as a Celery message (how producers before the streams sent them)."""
    intake.fan_out_batch(context().engine, [record])


@app.task(name=DELIVER)
def deliver(ids):
    """One attempt for each due delivery among ``ids``, on this task's thread."""
    delivery.deliver_batch(context(), ids)
