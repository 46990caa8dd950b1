"""Operational notifications: ``delivery.exhausted``, ``hook.disabled``, ``hook.recovered``.

An event is a row of the outbox (storage.tables.notifications) written in the transaction
that made the change, for groups with a ``notify_url``. The scheduler sends them on a thread
of its own (so a slow notify receiver never holds deliveries back): a POST of
``{type, timestamp, data}`` signed like a delivery (Standard Webhooks headers, the group's
signing secret), through the same SSRF guard, retried after NOTIFY_BACKOFF and dropped
after NOTIFY_MAX_ATTEMPTS attempts.
"""

import datetime
import json
import logging
import uuid

from storage import delivery_log
from storage import hook_health
from storage import outbox
from storage.db import utcnow
from storage.lifecycle import NotificationStatus
from workers import classification
from workers import endpoint_health
from workers import http
from workers import signing

log = logging.getLogger(__name__)

DELIVERY_EXHAUSTED = "delivery.exhausted"
HOOK_DISABLED = "hook.disabled"
HOOK_RECOVERED = "hook.recovered"
SEND_LIMIT = 50
#: a notify receiver gets less patience than a delivery receiver: these are alerts
MAX_READ_TIMEOUT = 5.0
#: waits after failed notification attempt 1, 2, ...; after the last one the event is dropped
NOTIFY_BACKOFF = (10, 60, 300, 1800)
NOTIFY_MAX_ATTEMPTS = len(NOTIFY_BACKOFF) + 1


def notification_next(attempt, success):
    """(status, seconds to wait) after notification attempt number ``attempt``."""
    if success:
        return NotificationStatus.SENT, None
    if attempt >= NOTIFY_MAX_ATTEMPTS:
        return NotificationStatus.FAILED, None
    return NotificationStatus.PENDING, NOTIFY_BACKOFF[attempt - 1]


def _stamp(value):
    return value.replace(microsecond=0).isoformat() + "Z" if value is not None else None


def _row(event_type, group_id, data, now):
    body = {"type": event_type, "timestamp": _stamp(now), "data": {"group_id": group_id, **data}}
    return {"id": str(uuid.uuid4()), "group_id": group_id, "type": event_type,
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False), "status": NotificationStatus.PENDING,
            "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now}


def _hook_data(hook):
    return {"hook": hook.position if hook.removed_at is None else None, "hook_type": hook.type_key,
            "endpoint": hook.endpoint}


def exhausted(conn, delivery_ids, now):
    """Queue delivery.exhausted for deliveries that just went dead."""
    rows = [_row(DELIVERY_EXHAUSTED, d.group_id, {
        "hook": d.hook_position if d.hook_removed_at is None else None, "hook_type": d.type,
        "endpoint": d.endpoint, "delivery_id": d.id, "trigger_id": d.trigger_id, "entity_kind": d.entity_kind,
        "entity_id": d.entity_id, "attempts": d.attempts, "last_status_code": d.last_status_code,
        "reason": d.last_error,
    }, now) for d in delivery_log.exhausted_details(conn, delivery_ids)]
    return outbox.add_notifications(conn, rows)


def disabled(conn, hook_ids, now):
    """Queue hook.disabled for hooks just disabled (their disabled_reason is the reason)."""
    hooks = hook_health.hook_details(conn, hook_ids)
    rows = [_row(HOOK_DISABLED, h.group_id, {**_hook_data(h), "reason": h.disabled_reason,
                                              "disabled_at": _stamp(h.disabled_at)}, now)
            for h in (hooks[i] for i in hook_ids if i in hooks)]
    return outbox.add_notifications(conn, rows)


def recovered(conn, hook_id, now, waiting):
    """Queue hook.recovered for a hook just enabled again."""
    hook = hook_health.hook_details(conn, [hook_id]).get(hook_id)
    if hook is None:
        return 0
    return outbox.add_notifications(conn, [_row(HOOK_RECOVERED, hook.group_id, {
        **_hook_data(hook), "reason": "enabled", "waiting": waiting}, now)])


def auto_disable(conn, now, disable_after):
    """Disable the hooks failing every attempt for ``disable_after`` seconds, with their
    hook.disabled events; returns their ids."""
    cutoff = endpoint_health.auto_disable_cutoff(now, disable_after)
    if cutoff is None:
        return []
    done = []
    for hook in hook_health.failing_hooks(conn, cutoff):
        done += hook_health.disable_hooks(conn, [hook.id], endpoint_health.failing_reason(hook.failing_since), now)
    disabled(conn, done, now)
    return done


def send_due(ctx, limit=SEND_LIMIT):
    """Send the due notifications once each (concurrently); returns how many were tried."""
    lease = ctx.settings.connect_timeout + MAX_READ_TIMEOUT + 30
    with ctx.engine.begin() as conn:
        rows = outbox.take_notifications(conn, utcnow(), lease, limit)
    if not rows:
        return 0
    outcomes = list(ctx.pool.map(lambda row: _attempt(ctx, row), rows)) if len(rows) > 1 else [_attempt(ctx, rows[0])]
    with ctx.engine.begin() as conn:
        for row, (status, wait, code, error) in zip(rows, outcomes):
            now = utcnow()
            outbox.record_notification(conn, row.id, row.attempts, status,
                                       now + datetime.timedelta(seconds=wait or 0), code, error, now)
    return len(rows)


def _attempt(ctx, row):
    """(status, wait, status code, error) of one attempt; never raises."""
    if row.group_deleted_at is not None or not row.notify_url or not row.signing_secret_enc:
        return NotificationStatus.CANCELLED, None, None, "the group was deleted or no longer has a notify_url"
    try:
        body = row.body.encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": http.USER_AGENT,
                   **signing.headers(row.id, body, signing.active_secrets(ctx.box, row, utcnow()))}
        settings = ctx.settings
        result = http.send(http.session_for(settings), "POST", row.notify_url, body=body, headers=headers,
                           timeouts=(settings.connect_timeout, min(settings.read_timeout, MAX_READ_TIMEOUT)),
                           max_bytes=1024)
        code, error = result.status_code, result.error_detail or result.error_kind
        success = classification.notification_delivered(result)
        if not success and error is None:
            error = f"the notify receiver answered {code}"
    except Exception as exc:  # a bug must cost an attempt, not the sweep
        log.exception("notification attempt failed unexpectedly", extra={"notification_id": row.id})
        code, error, success = None, f"{type(exc).__name__}: {exc}", False
    status, wait = notification_next(row.attempts, success)
    log.log(logging.INFO if success else logging.WARNING, "notification %s attempt %s: %s", row.type,
            row.attempts, status, extra={"group_id": row.group_id, "status_code": code})
    return status, wait, code, error
