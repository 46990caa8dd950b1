"""Per-entity order, the one rule of it: deliveries that share group, receiver endpoint and
entity go out one after another, in trigger order.

Fan-out gives every delivery its ``key`` (the group, endpoint and entity, hashed) and its
``sequence`` (the trigger's occurred_at; the trigger's row number breaks ties, i.e. arrival in
the stream). A claim takes a delivery only when ``not_blocked``: no earlier delivery with the
same key is still owed (pending, in flight or retrying: lifecycle.BLOCKING). A dead,
cancelled or skipped one holds nothing back. Different keys never wait for each other."""

import datetime
import hashlib
import json

import sqlalchemy as sa

from storage import lifecycle
from storage.tables import deliveries

EPOCH = datetime.datetime(1970, 1, 1)


def key(group_id, endpoint, entity_kind, entity_id):
    """Deliveries sharing this key go out one after another, in trigger order."""
    text = json.dumps([group_id, endpoint, entity_kind, entity_id])
    return hashlib.sha256(text.encode()).hexdigest()


def sequence_of(occurred_at):
    """The ordering position of a trigger: its occurred_at in microseconds."""
    return int((occurred_at - EPOCH).total_seconds() * 1_000_000)


def not_blocked(d):
    """SQL: no earlier delivery with the same ordering key as ``d`` is still owed."""
    e = deliveries.alias("earlier")
    return ~sa.exists().where(
        e.c.ordering_key == d.c.ordering_key,
        e.c.status.in_(lifecycle.BLOCKING),
        sa.or_(e.c.sequence < d.c.sequence,
               sa.and_(e.c.sequence == d.c.sequence, e.c.trigger_pk < d.c.trigger_pk)),
    )
