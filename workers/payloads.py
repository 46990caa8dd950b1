"""What a receiver gets: the entity itself, or the answer of the hook's GraphQL origin."""

import json

from workers import http
from workers import placeholders

ORIGIN_MAX_BYTES = 5 * 1024 * 1024


class OriginError(Exception):
    """The GraphQL origin could not produce a payload (a failed attempt, kind origin_error)."""


def trusted_origin(url, settings):
    """Whether ``url`` is the platform's own GraphQL API (listed in ORIGIN_URLS)."""
    return any(url.startswith(prefix) for prefix in settings.origin_urls)


def origin_payload(row, settings, session):
    """POST the filled GraphQL request to the origin; the platform's credentials go only to
    an origin listed in ORIGIN_URLS, never to a URL an organizer typed."""
    body = placeholders.fill(row.origin_body, placeholders.values_for(row, json.loads(row.entity)))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if trusted_origin(row.origin_endpoint, settings):
        if settings.origin_api_key:
            headers["x-api-key"] = settings.origin_api_key
        if settings.origin_token:
            headers["Authorization"] = f"Bearer {settings.origin_token}"
    result = http.send(session, row.origin_method or "POST", row.origin_endpoint, body=body.encode(),
                       headers=headers, timeouts=settings.timeouts, max_bytes=ORIGIN_MAX_BYTES + 1)
    if result.error_kind is not None:
        raise OriginError(f"origin request failed ({result.error_kind}): {result.error_detail}")
    excerpt = result.body[:300].decode("utf-8", "replace")
    if result.status_code != 200:
        raise OriginError(f"origin answered HTTP {result.status_code}: {excerpt}")
    if len(result.body) > ORIGIN_MAX_BYTES:
        raise OriginError(f"origin answer is larger than {ORIGIN_MAX_BYTES} bytes")
    try:
        answer = json.loads(result.body)
    except ValueError:
        raise OriginError(f"origin answer is not JSON: {excerpt}") from None
    if not isinstance(answer, dict) or (answer.get("errors") and not answer.get("data")):
        raise OriginError(f"origin answered with errors and no data: {excerpt}")
    return result.body.decode("utf-8")


def build(row, settings, session):
    """The payload text of a delivery: stored after its first attempt, identical ever after."""
    if row.payload is not None:
        return row.payload
    if row.origin_endpoint:
        return origin_payload(row, settings, session)
    return row.entity
