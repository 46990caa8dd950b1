"""Deliveries and their attempts as the API shows them: plain functions, no Flask."""

import datetime
import json

from storage import lifecycle
from storage.lifecycle import Status

#: most of a receiver's answer shown per attempt (the ledger keeps RESPONSE_EXCERPT_BYTES)
EXCERPT_CHARS = 65536


def aware(value):
    """Stored times are naive UTC; the document promises RFC 3339 date-times with their offset."""
    return value.replace(tzinfo=datetime.timezone.utc) if value is not None else None


def summary(row, href):
    """One delivery in a listing (a row of delivery_log.list_deliveries or delivery_view)."""
    hook_live = row.hook_removed_at is None
    return {
        "id": row.id, "trigger_id": row.trigger_id, "group_id": row.group_id, "type": row.type,
        "endpoint": row.endpoint, "entity_kind": row.entity_kind, "entity_id": row.entity_id,
        "source": row.source, "status": row.status,
        # a delivery whose hook is disabled is neither sent nor lost: it waits for the hook
        "waiting_for_hook": row.status in lifecycle.OPEN and hook_live and row.hook_disabled_at is not None,
        "skipped_reason": row.skipped_reason if row.status == Status.SKIPPED else None,
        "hook": row.hook_position if hook_live else None,
        "attempts": row.attempts, "attempts_in_series": row.attempts - row.attempt_base,
        "next_attempt_at": aware(row.next_attempt_at) if row.status in lifecycle.OPEN else None,
        "last_status_code": row.last_status_code, "last_error": row.last_error,
        "created_at": aware(row.created_at), "delivered_at": aware(row.delivered_at),
        "_links": {"self": {"href": href}},
    }


def receiver_answer(excerpt):
    """(answer, excerpt): the receiver's ``{message, description}`` when its body is a JSON
    object with either key (doo's documented answer), else the body itself, cut at 64 KiB."""
    if excerpt is None:
        return None, None
    try:
        body = json.loads(excerpt)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("message" in body or "description" in body):
        return {key: _text(body.get(key)) for key in ("message", "description")}, None
    return None, excerpt[:EXCERPT_CHARS]


def _text(value):
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:EXCERPT_CHARS]


def attempt(row):
    answer, excerpt = receiver_answer(row.response_excerpt)
    return {
        "number": row.number, "started_at": aware(row.started_at), "duration_ms": row.duration_ms,
        "status_code": row.status_code, "response": answer, "response_excerpt": excerpt,
        "error_kind": row.error_kind, "error_detail": row.error_detail,
    }


def payload(text):
    """The stored payload as JSON (what the receiver got), or its text if it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def detail(row, attempt_rows, request_headers, hrefs):
    """One delivery with its payload, the request headers last sent and every attempt."""
    item = summary(row, hrefs["self"])
    item.update(
        payload=payload(row.payload),
        request_headers=json.loads(request_headers) if request_headers else None,
        attempt_log=[attempt(a) for a in attempt_rows],
    )
    item["_links"] = {name: {"href": href} for name, href in hrefs.items()}
    return item
