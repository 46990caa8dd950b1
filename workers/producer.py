"""``emit()``: how the platform hands a trigger to doo-webhooks.

It validates synchronously (a bad entity raises ``marshmallow.ValidationError`` here, at the
caller, before anything is sent) and hands the trigger to the intake (workers.intake): the
Redis streams in production, needing only the broker URL; the embedded database of a
standalone service on this machine otherwise.
"""

import datetime
import functools
import uuid

import pathlib
import re

import redis
import sqlalchemy.exc
import tenacity
from marshmallow import ValidationError

from schemas.triggers import validate_trigger
from workers import intake


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


class BrokerUnavailable(Exception):
    """The trigger could not be handed over: nothing was sent, the caller must try again."""


@functools.lru_cache(maxsize=8)
def intake_for(broker_url):
    """Where triggers go: the Redis streams, or an embedded service's database inbox."""
    if broker_url.startswith("sqlite"):
        from storage.db import engine_for
        from storage.migrate import current
        path = pathlib.Path(sa_url(broker_url).database or "")
        if not path.is_file() or current(broker_url) is None:
            raise BrokerUnavailable(
                f"no doo-webhooks standalone has used {path} yet: start `doo-webhooks standalone` "
                "(same DOO_WEBHOOKS_DATA_DIR), or set DOO_WEBHOOKS_BROKER_URL to your Redis")
        return intake.DatabaseInbox(engine_for(broker_url))
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return intake.RedisStreams(broker_url)
    raise BrokerUnavailable(f"DOO_WEBHOOKS_BROKER_URL {broker_url!r}: not a redis:// URL")


def sa_url(text):
    import sqlalchemy as sa
    return sa.engine.make_url(text)


# The broker may be away for a moment (restart, failover): try for ~10 s, then tell the caller.
@tenacity.retry(retry=tenacity.retry_if_exception_type((redis.ConnectionError, redis.TimeoutError, OSError)),
                wait=tenacity.wait_exponential(multiplier=0.2, max=2), stop=tenacity.stop_after_delay(10),
                reraise=True)
def _publish(records, broker_url):
    intake_for(broker_url).publish(records)


def publish(records, broker_url):
    """Hand validated records to the intake, in order; raises BrokerUnavailable (one line)."""
    try:
        _publish(records, broker_url)
    except (redis.RedisError, OSError, sqlalchemy.exc.SQLAlchemyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrokerUnavailable(f"the trigger intake at {_masked(broker_url)} is unavailable: {first}") from exc


def _masked(url):
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _broker(broker_url):
    if broker_url is None:
        from ground.settings import from_env
        broker_url = from_env().broker_url
    return broker_url


def emit(trigger_type, entity, *, organization_id, event_id=None, event_guide_id=None,
         trigger_id=None, occurred_at=None, broker_url=None):
    """Validate a trigger and hand it to the intake; returns its trigger_id.

    :param trigger_type: e.g. ``"order_created"`` (an ``on_`` prefix is accepted).
    :param entity: the event, order or attendee as the platform's REST API returns it.
    :param trigger_id: makes the call idempotent: the same id twice fans out once.
    :param broker_url: default ``DOO_WEBHOOKS_BROKER_URL`` (empty: a standalone on this machine).
    :raises marshmallow.ValidationError: a bad trigger, before anything is sent.
    :raises BrokerUnavailable: the intake could not take it (nothing was sent).
    """
    record = prepare(trigger_type, entity, organization_id=organization_id, event_id=event_id,
                     event_guide_id=event_guide_id, trigger_id=trigger_id, occurred_at=occurred_at)
    publish([record], _broker(broker_url))
    return record["trigger_id"]


def emit_many(triggers, *, broker_url=None):
    """Validate many triggers, then hand them all over in one round trip; returns their
    trigger_ids in order. Each trigger is a dict of emit()'s arguments: ``type``, ``entity``,
    ``organization_id`` and optionally ``event_id``, ``event_guide_id``, ``trigger_id``,
    ``occurred_at``. One invalid trigger raises before any is sent (the error names its index)."""
    records = []
    for index, trigger in enumerate(triggers):
        trigger = dict(trigger)
        try:
            records.append(prepare(trigger.pop("type"), trigger.pop("entity"), **trigger))
        except ValidationError as exc:
            raise ValidationError({index: exc.messages}) from None
        except (KeyError, TypeError) as exc:
            raise ValidationError({index: [f"not a trigger: {exc}"]}) from None
    publish(records, _broker(broker_url))
    return [record["trigger_id"] for record in records]


class StreamPublisher:
    """What the API uses to hand over triggers and to wake the workers' send loops."""

    def __init__(self, broker_url):
        self.broker_url = broker_url

    def trigger(self, record):
        publish([record], self.broker_url)

    def triggers(self, records):
        publish(records, self.broker_url)

    def deliveries(self, ids):
        """These rows are due now: any worker's send loop may claim them (a nudge; without it,
        they are claimed at the next poll, DISPATCH_INTERVAL)."""
        if ids:
            self.nudge()

    def nudge(self):
        try:
            target = intake_for(self.broker_url)
            if isinstance(target, intake.RedisStreams):
                target.redis.publish(target.nudge_channel, 1)
        except (redis.RedisError, BrokerUnavailable):
            pass  # the send loops' next poll finds the rows
