"""``emit()``: how the platform hands a trigger to doo-webhooks.

It validates synchronously (a bad entity raises ``marshmallow.ValidationError`` here, at the
caller, before anything is sent) and publishes to the ``triggers`` queue. It needs only the
broker URL: no Flask, no database.
"""

import datetime
import functools
import uuid

import kombu.exceptions
import tenacity
from celery import Celery

from schemas.triggers import validate_trigger
from workers.queues import DELIVER
from workers.queues import DELIVERIES_QUEUE
from workers.queues import FAN_OUT
from workers.queues import TRIGGERS_QUEUE


def prepare(trigger_type, entity, *, organization_id, event_id=None, event_guide_id=None,
            trigger_id=None, occurred_at=None):
    """Validate and complete a trigger: the message fan_out will receive."""
    data = {"type": trigger_type, "entity": entity, "organization_id": organization_id}
    for key, value in (("event_id", event_id), ("event_guide_id", event_guide_id),
                       ("trigger_id", trigger_id), ("occurred_at", occurred_at)):
        if value is not None:
            data[key] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return complete(validate_trigger(data))


def complete(record):
    """Give a validated trigger its id and time when the caller left them out."""
    record["trigger_id"] = record["trigger_id"] or uuid.uuid4().hex
    record["occurred_at"] = record["occurred_at"] or (
        datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"))
    return record


@functools.lru_cache(maxsize=4)
def _celery(broker_url):
    app = Celery("doo_webhooks_producer", broker=broker_url, set_as_current=False)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    return app


# The broker may be away for a moment (restart, failover): try for ~10 s, then tell the caller.
@tenacity.retry(retry=tenacity.retry_if_exception_type((kombu.exceptions.OperationalError, OSError)),
                wait=tenacity.wait_exponential(multiplier=0.2, max=2), stop=tenacity.stop_after_delay(10),
                reraise=True)
def publish(record, broker_url):
    _celery(broker_url).send_task(FAN_OUT, args=[record], queue=TRIGGERS_QUEUE)


def emit(trigger_type, entity, *, organization_id, event_id=None, event_guide_id=None,
         trigger_id=None, occurred_at=None, broker_url=None):
    """Validate a trigger and enqueue it; returns its trigger_id.

    :param trigger_type: e.g. ``"order_created"`` (an ``on_`` prefix is accepted).
    :param entity: the event, order or attendee as the platform's REST API returns it.
    :param trigger_id: makes the call idempotent: the same id twice fans out once.
    :param broker_url: default ``DOO_WEBHOOKS_BROKER_URL``.
    """
    if broker_url is None:
        from doo_webhooks.settings import from_env
        broker_url = from_env().broker_url
    record = prepare(trigger_type, entity, organization_id=organization_id, event_id=event_id,
                     event_guide_id=event_guide_id, trigger_id=trigger_id, occurred_at=occurred_at)
    publish(record, broker_url)
    return record["trigger_id"]


class CeleryPublisher:
    """Sends triggers and delivery batches through the Celery broker."""

    def __init__(self, broker_url, batch_size):
        self.broker_url = broker_url
        self.batch_size = batch_size

    def trigger(self, record):
        publish(record, self.broker_url)

    def deliveries(self, ids, countdown=None):
        # countdown is only ever the ordering delay (seconds), far below the visibility timeout
        app = _celery(self.broker_url)
        for start in range(0, len(ids), self.batch_size):
            app.send_task(DELIVER, args=[list(ids[start:start + self.batch_size])], queue=DELIVERIES_QUEUE,
                          countdown=countdown)
