"""One attempt at a delivery, and the recording of a batch of them: orchestration only (what
an answer means is workers.classification's, what comes next storage.lifecycle's and
workers.retry_schedule').

``attempt_async`` is what the send loop (workers.sender) runs; ``attempt`` and
``deliver_batch`` are the same attempt on a thread, for the Celery ``deliver`` task. Both are
made of the same steps (_prepared, _with_token, _answered, _failed, _concluded).
"""

import asyncio
import datetime
import json
import logging
import time

import sqlalchemy.exc
import tenacity

from ground import __version__
from storage import hook_health
from storage import ledger
from storage import lifecycle
from storage.db import utcnow
from storage.lifecycle import Move
from storage.lifecycle import Status
from workers import classification
from workers import http
from workers import notifications
from workers import payloads
from workers import retry_schedule
from workers import signing
from workers.tokens import TokenError
from workers.tokens import authorization_header

log = logging.getLogger(__name__)

USER_AGENT = f"doo-webhooks/{__version__}"
REDACTED = "[redacted]"
TRIGGER_HEADER = "X-Doo-Trigger"

# A PostgreSQL restart or failover must not cost the result of requests already sent.
_db_retry = tenacity.retry(
    retry=tenacity.retry_if_exception_type(sqlalchemy.exc.OperationalError),
    wait=tenacity.wait_exponential(multiplier=0.2, max=5), stop=tenacity.stop_after_delay(60), reraise=True)


def lease_seconds(settings):
    """Long enough for one delivery's origin, token and receiver requests, at their timeouts."""
    return max(settings.lease_seconds, 3.3 * (settings.connect_timeout + settings.read_timeout))


@_db_retry
def _claim(ctx, ids):
    with ctx.engine.begin() as conn:
        return ledger.claim(conn, ids, utcnow(), lease_seconds(ctx.settings))


@_db_retry
def record_outcomes(ctx, outcomes, cancelled, given_back=()):
    """Write one batch of outcomes, cancellations and deliveries given back unattempted
    (ledger.give_back), and the events they cause, in one transaction; then the pauses
    receivers asked for."""
    with ctx.engine.begin() as conn:
        now = utcnow()
        buried = ledger.record(conn, outcomes)
        ledger.cancel(conn, cancelled, now)
        ledger.give_back(conn, given_back, now)
        disabled = []
        for reason in {o["disable_reason"] for o in outcomes if o.get("disable_reason")}:
            disabled += hook_health.disable_hooks(
                conn, [o["hook_id"] for o in outcomes if o.get("disable_reason") == reason], reason, now)
        # operational events, in the transaction that made the change
        notifications.exhausted(conn, buried, now)
        notifications.disabled(conn, disabled, now)
    pauses = [(o["group_id"], o["endpoint"], o["paused_until"]) for o in outcomes if o.get("paused_until")]
    if pauses:  # a transaction of its own: it locks hook rows the batch's health update may hold
        with ctx.engine.begin() as conn:
            hook_health.pause_endpoints(conn, pauses, utcnow())


def deliver_batch(ctx, ids):
    """Make one attempt for each due delivery among ``ids``; returns the outcomes."""
    return send_claimed(ctx, _claim(ctx, ids))


def send_claimed(ctx, rows):
    """One attempt for each claimed row (storage.ledger.claimed_details), then one record."""
    if not rows:
        return []
    cancelled = [row.id for row in rows if row.group_deleted_at is not None]
    live = [row for row in rows if row.group_deleted_at is None]
    outcomes = list(ctx.pool.map(lambda row: attempt(ctx, row), live)) if len(live) > 1 else \
        [attempt(ctx, row) for row in live]
    record_outcomes(ctx, outcomes, cancelled)
    for outcome in outcomes:
        ctx.observe(outcome)
    return outcomes


def base_headers(row, body, signing_secrets):
    return {
        "Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT,
        # which trigger this is, as GitHub's X-GitHub-Event and Shopify's X-Shopify-Topic say it:
        # one receiver URL may take several types, and the body (the entity) does not tell
        TRIGGER_HEADER: row.type,
        **signing.headers(row.id, body, signing_secrets),
    }


def _new_outcome(row):
    return {"id": row.id, "number": row.attempts, "hook_id": row.hook_id, "endpoint": row.endpoint,
            "started_at": utcnow(),
            "payload": None, "last_status_code": None, "last_error": None, "error_detail": None,
            "response_excerpt": None, "request_headers": None,
            "trigger_id": row.trigger_id, "group_id": row.group_id, "received_at": row.received_at}


def _prepared(ctx, row, session):
    """What goes out, before any token: (payload, body, headers, auth, client secret).
    Raises payloads.OriginError when a GraphQL origin fails."""
    payload = payloads.build(row, ctx.settings, session)
    body = payload.encode("utf-8")
    headers = base_headers(row, body, signing.active_secrets(ctx.box, row, utcnow()))
    auth = json.loads(row.authentication) if row.authentication else None
    secret = ctx.box.decrypt(row.client_secret_enc) if auth else None
    return payload, body, headers, auth, secret


def _with_token(ctx, headers, auth, secret):
    """The headers with the receiver's access token, and the token (None without OAuth)."""
    if not auth:
        return headers, None
    token = ctx.tokens.get(auth, secret)
    name, value = authorization_header(auth, token)
    return {**headers, name: value}, token


def _answered(ctx, outcome, result, headers, auth):
    """Keep what was sent and what came back in the outcome; returns the verdict on it."""
    outcome.update(response_excerpt=result.body.decode("utf-8", "replace") if result.body else None,
                   request_headers=json.dumps(_redacted(headers, auth)))
    return classification.answered(result, ctx.settings.success_statuses, utcnow())


def _failed(row, exc):
    """The verdict on an attempt that never got an answer."""
    if not isinstance(exc, (payloads.OriginError, TokenError)):  # a bug costs an attempt, not the batch
        log.error("attempt failed unexpectedly", exc_info=exc, extra={"delivery_id": row.id})
    return classification.failed(exc)


def _concluded(ctx, row, outcome, verdict, started):
    """Apply the verdict: what is recorded, and what comes next; returns the outcome."""
    settings = ctx.settings
    now = utcnow()
    # the retry schedule and max_attempts count within the current series (a redelivery starts one)
    in_series = row.attempts - row.attempt_base
    status = lifecycle.decide(Move.ATTEMPT, success=verdict.success, spent=in_series,
                              max_attempts=settings.max_attempts)
    delay = retry_schedule.failure_delay(in_series, verdict.retry_after, settings) if status is Status.RETRYING else None
    outcome.update(
        last_status_code=verdict.status_code, last_error=verdict.error_kind, error_detail=verdict.error_detail,
        disable_reason=verdict.disable_reason,
        health=verdict.success if verdict.counts_for_health else None,
        paused_until=now + datetime.timedelta(seconds=verdict.pause) if verdict.pause else None,
        status=status, now=now, duration_ms=int((time.monotonic() - started) * 1000),
        next_attempt_at=now + datetime.timedelta(seconds=delay) if delay is not None else now,
        delivered_at=now if status is Status.DELIVERED else None,
    )
    _log_attempt(row, outcome, delay)
    return outcome


def _log_attempt(row, outcome, delay):
    """Delivered attempts are the ledger's to record (a log line each would cost more than the
    send at thousands a second); failures are worth a line, a dead letter or a disabled hook a
    warning."""
    status = outcome["status"]
    if status is Status.DELIVERED:
        level, what = logging.DEBUG, "delivered"
    elif outcome["disable_reason"]:
        level, what = logging.WARNING, f"{outcome['disable_reason']}: hook disabled, the delivery waits for it"
    elif status is Status.DEAD:
        level, what = logging.WARNING, "dead after its last attempt (a dead letter now)"
    else:
        level, what = logging.INFO, f"failed, retrying in {delay:.0f}s"
    if log.isEnabledFor(level):
        log.log(level, "attempt %s: %s", row.attempts, what, extra={
            "trigger_id": row.trigger_id, "delivery_id": row.id, "group_id": row.group_id,
            "attempt": row.attempts, "status_code": outcome["last_status_code"],
            "error_kind": outcome["last_error"]})


def attempt(ctx, row):
    """One attempt at one claimed delivery, on this thread; never raises, returns the outcome."""
    started, outcome = time.monotonic(), _new_outcome(row)
    session = http.session_for(ctx.settings)
    try:
        payload, body, headers, auth, secret = _prepared(ctx, row, session)
        outcome["payload"] = payload
        result, token, sent = _send(ctx, session, row, body, headers, auth, secret)
        if result.status_code == 401 and auth:
            # The receiver no longer takes our token: drop it (unless another worker already
            # replaced it) and try once more with a new one.
            ctx.tokens.invalidate(auth, secret, token)
            result, token, sent = _send(ctx, session, row, body, headers, auth, secret)
        verdict = _answered(ctx, outcome, result, sent, auth)
    except Exception as exc:
        verdict = _failed(row, exc)
    return _concluded(ctx, row, outcome, verdict, started)


async def attempt_async(ctx, transport, row):
    """``attempt`` on an event loop: the request goes through ``transport`` (workers.transport);
    what may block (a GraphQL origin, a token fetch) runs on the context's thread pool."""
    loop = asyncio.get_running_loop()
    started, outcome = time.monotonic(), _new_outcome(row)
    try:
        if row.payload is None and row.origin_endpoint:
            prepared = await loop.run_in_executor(
                ctx.pool, lambda: _prepared(ctx, row, http.session_for(ctx.settings)))
        else:
            prepared = _prepared(ctx, row, None)
        payload, body, headers, auth, secret = prepared
        outcome["payload"] = payload
        for last_try in (False, True):
            sent, token = await loop.run_in_executor(ctx.pool, _with_token, ctx, headers, auth, secret) \
                if auth else (headers, None)
            result = await transport.send(row.method, row.endpoint, body=body, headers=sent,
                                          max_bytes=ctx.settings.response_excerpt_bytes)
            if last_try or not (result.status_code == 401 and auth):
                break
            ctx.tokens.invalidate(auth, secret, token)  # as in attempt(): once more with a new token
        verdict = _answered(ctx, outcome, result, sent, auth)
    except Exception as exc:
        verdict = _failed(row, exc)
    return _concluded(ctx, row, outcome, verdict, started)


def _send(ctx, session, row, body, headers, auth, secret):
    sent, token = _with_token(ctx, headers, auth, secret)
    result = http.send(session, row.method, row.endpoint, body=body, headers=sent,
                       timeouts=ctx.settings.timeouts, max_bytes=ctx.settings.response_excerpt_bytes)
    return result, token, sent


def _redacted(headers, auth):
    shown = dict(headers)
    if auth:
        shown[auth.get("header_format") or "Authorization"] = REDACTED
    return shown
