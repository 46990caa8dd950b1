"""Response classification: what came back from one attempt, as one typed ``Verdict``.

An attempt ends in one of three ways: the receiver answered (``answered``), something failed
before it could (``failed``: the token endpoint, the GraphQL origin, our own bug), or the
worker died and the scheduler records the lost attempt (``ErrorKind.WORKER_LOST``). doo's
rules, all here:

* only a status in ``SUCCESS_STATUSES`` (200) is success; every other answer is a failed
  attempt, a 3xx too (redirects are never followed: the Location is kept in the detail);
* a 410 Gone disables the hook at once: the URL will never work again;
* a 429 or 503 with ``Retry-After`` asks for no request before then: the next attempt waits
  at least that long (workers.retry_schedule) and the endpoint is paused for every delivery;
* a failure of our own (the GraphQL origin, a bug) says nothing about the receiver's health.

Network errors are named by the transports (workers.transport, workers.http), which know
their libraries' exceptions, with the kinds of ``ErrorKind`` (storage.lifecycle: the ledger
stores them, and the scheduler writes WORKER_LOST).
"""

import dataclasses
import datetime
import email.utils

from storage.lifecycle import ErrorKind
from workers.payloads import OriginError
from workers.tokens import TokenError

GONE = 410
RETRY_AFTER_STATUSES = (429, 503)
MAX_RETRY_AFTER = 24 * 3600
DETAIL_CHARS = 1000


#: failures that say nothing about the receiver: our GraphQL origin failed, or our own bug
NOT_THE_RECEIVERS_FAULT = (ErrorKind.ORIGIN_ERROR, ErrorKind.INTERNAL_ERROR)


@dataclasses.dataclass(frozen=True)
class Verdict:
    success: bool
    status_code: int | None = None
    error_kind: ErrorKind | None = None
    error_detail: str | None = None
    #: seconds the receiver asked for no request (429/503 with a usable Retry-After), or None
    retry_after: float | None = None
    #: why this answer disables the hook at once, or None
    disable_reason: str | None = None

    @property
    def counts_for_health(self):
        """Whether the outcome tells anything about the receiver's health."""
        return self.success or self.error_kind not in NOT_THE_RECEIVERS_FAULT

    @property
    def pause(self):
        """Seconds to pause the endpoint for every delivery, or None."""
        return self.retry_after or None


def is_success(status_code, success_statuses):
    return status_code is not None and status_code in success_statuses


def answered(result, success_statuses, now):
    """The verdict on a transport's ``HttpResult`` (an answer, or a network error)."""
    if result.error_kind is not None:
        return Verdict(False, result.status_code, ErrorKind(result.error_kind), result.error_detail)
    if is_success(result.status_code, success_statuses):
        return Verdict(True, result.status_code)
    detail = result.error_detail
    location = _header(result.headers, "Location")
    if 300 <= result.status_code < 400 and location:
        detail = f"redirect not followed: Location {location}"[:DETAIL_CHARS]
    return Verdict(False, result.status_code, ErrorKind.HTTP_STATUS, detail,
                   retry_after=retry_after(result.status_code, result.headers, now),
                   disable_reason="the receiver answered 410 Gone" if result.status_code == GONE else None)


def failed(exc):
    """The verdict on an attempt that never got an answer."""
    if isinstance(exc, OriginError):
        return Verdict(False, None, ErrorKind.ORIGIN_ERROR, str(exc)[:DETAIL_CHARS])
    if isinstance(exc, TokenError):
        kind = ErrorKind.SSRF_BLOCKED if exc.kind == ErrorKind.SSRF_BLOCKED else ErrorKind.TOKEN_ERROR
        return Verdict(False, None, kind, str(exc)[:DETAIL_CHARS])
    return Verdict(False, None, ErrorKind.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS])


def notification_delivered(result):
    """An operational notification is received on any 2xx: it is our protocol, not doo's."""
    return result.error_kind is None and result.status_code is not None and 200 <= result.status_code < 300


def retry_after(status_code, headers, now):
    """Seconds a 429 or 503 asked for with Retry-After (capped at a day), or None."""
    if status_code not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(_header(headers, "Retry-After"), now)


def parse_retry_after(value, now):
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped at a day; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delta-seconds are ASCII digits ("²".isdigit() is True)
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(MAX_RETRY_AFTER)):  # past the cap; and int() refuses > 4300 digits
            return float(MAX_RETRY_AFTER)
        return float(min(int(digits), MAX_RETRY_AFTER))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return float(min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER))


def _header(headers, name):
    """A response header by name, whatever case the receiver used (workers.http passes a plain dict)."""
    name = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None
