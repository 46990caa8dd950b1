"""Who is calling: doo-style x-api-key plus a Bearer token from POST /v1/oauth. This face only
reads the headers and keeps the caller on ``flask.g``; services.access decides."""

from flask import g
from flask import request

from app.context import context
from services import access


def api_key():
    return request.headers.get("x-api-key", "").strip()


def bearer_token():
    """The Bearer token of the Authorization header; "" when the header carries none, None
    when there is no header (services.access.authenticate tells the two apart)."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def current_caller(bearer_required=True):
    """The authenticated Caller of this request (services.errors.Unauthorized when there is none)."""
    cached = g.get("caller")
    if cached is not None and (g.get("caller_has_bearer") or not bearer_required):
        return cached
    token = bearer_token()
    g.caller = access.authenticate(context(), api_key(), token, token_required=bearer_required)
    g.caller_has_bearer = bool(token)
    return g.caller


# Who may call what; everything else under /v1 needs x-api-key and a Bearer token.
PUBLIC_PREFIXES = ("/v1/openapi.json", "/v1/docs")
PLATFORM_ROUTES = {("/v1/triggers", "POST")}
API_KEY_ONLY_ROUTES = {("/v1/oauth", "POST")}
BEARER_OPTIONAL_ROUTES = {("/v1/webhooks/<group_id>", "DELETE")}  # doo's DELETE example sends only x-api-key


def authenticate_request():
    """Run before the body is parsed: an anonymous caller learns nothing from validation errors."""
    rule = request.url_rule.rule if request.url_rule is not None else None
    if rule is None or not rule.startswith("/v1/") or rule.startswith(PUBLIC_PREFIXES):
        return None  # unknown routes get their 404/405 from Flask
    route = (rule, request.method)
    if route in PLATFORM_ROUTES:
        access.require_platform(context(), api_key())
    elif route in API_KEY_ONLY_ROUTES:
        access.check_api_key(context(), api_key())
    elif request.method != "OPTIONS":
        current_caller(bearer_required=route not in BEARER_OPTIONAL_ROUTES)
    return None
