"""The delivery lifecycle: the statuses a delivery takes, the moves between them, the one
``decide()`` that every path (attempt, lease expiry, give-back, redeliver, replay, cancel,
skip) asks for the status a move leads to.

::

    fan-out ─► pending ─claim─► in_flight ─answer 200─► delivered
                 ▲  ▲               │ │ └─failed, attempts left─► retrying ─claim─► in_flight
                 │  └─give back─────┘ └─failed, none left───────► dead
                 │   (rate limit or pause: the attempt is returned; a retrying row goes back to retrying)
                 └─ redeliver (delivered, dead, skipped) / replay (dead): a new series
    fan-out to a disabled hook ─► skipped       group deleted ─► cancelled (from any owed status)

A lost lease (the worker died) counts as a failed attempt. Nothing leaves ``delivered``,
``dead``, ``skipped`` or ``cancelled`` but a redelivery or replay. The status column has a
CHECK constraint (migration 0008) holding exactly ``Status``.

Also here: how an attempt can fail (``ErrorKind``; workers.classification decides which) and
the statuses of the notification outbox. They live in the storage layer because the ledger
stores and filters on them; the domain (workers/) and the faces import them from here, so
the strings are written nowhere else.
"""

import enum


class Status(str, enum.Enum):
    """A delivery's status: the value stored in ``deliveries.status``."""

    PENDING = "pending"  # owed: the first attempt of a series is due
    IN_FLIGHT = "in_flight"  # claimed by a worker, under its lease
    RETRYING = "retrying"  # owed: an attempt failed, the next is due at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 200
    DEAD = "dead"  # every attempt of the series failed: a dead letter
    CANCELLED = "cancelled"  # the group was deleted while the delivery was owed
    SKIPPED = "skipped"  # fanned out to a disabled hook: recorded, never sent unless redelivered

    def __str__(self):
        return self.value


class Move(enum.Enum):
    FAN_OUT = "fan_out"
    SKIP = "skip"
    CLAIM = "claim"
    ATTEMPT = "attempt"
    LOSE_LEASE = "lose_lease"
    GIVE_BACK = "give_back"
    REDELIVER = "redeliver"
    REPLAY = "replay"
    CANCEL = "cancel"


S = Status
#: the moves: the statuses each starts from (None: the row is new) and those it may lead to
TRANSITIONS = {
    Move.FAN_OUT: ({None}, {S.PENDING}),
    Move.SKIP: ({None}, {S.SKIPPED}),
    Move.CLAIM: ({S.PENDING, S.RETRYING}, {S.IN_FLIGHT}),
    Move.ATTEMPT: ({S.IN_FLIGHT}, {S.DELIVERED, S.RETRYING, S.DEAD}),
    Move.LOSE_LEASE: ({S.IN_FLIGHT}, {S.RETRYING, S.DEAD}),
    Move.GIVE_BACK: ({S.IN_FLIGHT}, {S.PENDING, S.RETRYING}),
    Move.REDELIVER: ({S.DELIVERED, S.DEAD, S.SKIPPED}, {S.PENDING}),
    Move.REPLAY: ({S.DEAD}, {S.PENDING}),
    Move.CANCEL: ({S.PENDING, S.RETRYING, S.IN_FLIGHT}, {S.CANCELLED}),
}

#: owed and waiting for a claim
OPEN = (S.PENDING, S.RETRYING)
#: owed: a later delivery with the same ordering key waits while one of these is there
BLOCKING = (S.PENDING, S.RETRYING, S.IN_FLIGHT)
#: nothing more will happen to these unless someone redelivers or replays them
FINAL = (S.DELIVERED, S.DEAD, S.CANCELLED, S.SKIPPED)
#: the claim lanes of the send loop: first attempts of a series, and retries
LANES = (S.PENDING, S.RETRYING)


def sources(move):
    """The statuses ``move`` may start from (for the WHERE of its statement)."""
    return tuple(sorted(s for s in TRANSITIONS[move][0] if s is not None))


def decide(move, *, success=None, spent=None, max_attempts=None, lane=None):
    """The status ``move`` leads to.

    ATTEMPT needs ``success``, ``spent`` (attempts made in the current series, this one
    included) and ``max_attempts``; LOSE_LEASE needs ``spent`` and ``max_attempts`` (the lost
    attempt counts); GIVE_BACK needs the ``lane`` the row was claimed from.
    """
    if move is Move.ATTEMPT and success:
        status = S.DELIVERED
    elif move in (Move.ATTEMPT, Move.LOSE_LEASE):
        status = S.DEAD if spent >= max_attempts else S.RETRYING
    elif move is Move.GIVE_BACK:
        status = Status(lane)
    else:
        (status,) = TRANSITIONS[move][1]
    assert status in TRANSITIONS[move][1], (move, status)
    return status


class NotificationStatus(str, enum.Enum):
    """An operational event's status in the outbox (``notifications.status``)."""

    PENDING = "pending"  # due at next_attempt_at
    SENT = "sent"  # the notify_url answered 2xx
    FAILED = "failed"  # every attempt failed; dropped
    CANCELLED = "cancelled"  # the group was deleted or no longer has a notify_url

    def __str__(self):
        return self.value


class ErrorKind(str, enum.Enum):
    """Why an attempt failed: the value stored in ``attempts.error_kind``."""

    HTTP_STATUS = "http_status"  # the receiver answered, not with a success status
    TIMEOUT = "timeout"  # no connection or no answer in time
    CONNECTION = "connection"  # refused, reset, closed, unresolvable
    SSRF_BLOCKED = "ssrf_blocked"  # the host resolved to an address we may not reach
    TOKEN_ERROR = "token_error"  # the receiver's token endpoint gave no usable token
    ORIGIN_ERROR = "origin_error"  # the GraphQL origin could not produce the payload
    INTERNAL_ERROR = "internal_error"  # a bug of ours: it costs an attempt, not the batch
    WORKER_LOST = "worker_lost"  # the worker died mid-attempt (written by the scheduler)

    def __str__(self):
        return self.value
