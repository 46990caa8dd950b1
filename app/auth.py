"""Who is calling: doo-style x-api-key plus a Bearer token from POST /v1/oauth."""

from flask import g
from flask import request
from flask_smorest import abort

from app.services import services
from ground.crypto import digest
from ground.crypto import same
from services.tenancy import Caller
from services.tenancy import WRITE_ROLES  # noqa: F401  (app.api.organizers)
from storage import tenancy
from storage.db import utcnow


def _unauthorized(message):
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="doo-webhooks"'})


def credential_for(conn, api_key):
    """The live credential of an API key, or None (unknown or revoked)."""
    return tenancy.credential_by_api_key(conn, digest(api_key)) if api_key else None


def client_matches(credential, client_id, client_secret):
    """Whether client_id and client_secret are this credential's (POST /v1/oauth and the dashboard's login)."""
    # compared as bytes: hmac.compare_digest refuses str with non-ASCII characters
    return (same(credential.client_id.encode(), client_id.encode())
            and same(credential.client_secret_hash, digest(client_secret)))


def caller_of(conn, credential):
    """The Caller a credential stands for, with its organizer's memberships as they are now."""
    return Caller(credential.organizer_id, credential.id, tuple(tenancy.memberships_of(conn, credential.organizer_id)))


def api_key_credential(conn):
    api_key = request.headers.get("x-api-key", "").strip()
    if not api_key:
        _unauthorized("Missing x-api-key header.")
    credential = credential_for(conn, api_key)
    if credential is None:
        _unauthorized("Unknown or revoked API key.")
    return credential


def bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_caller(bearer_required=True):
    """Authenticate the request; 401 with the error envelope when it cannot be."""
    cached = g.get("caller")
    if cached is not None and (g.get("caller_has_bearer") or not bearer_required):
        return cached
    with services().engine.begin() as conn:
        credential = api_key_credential(conn)
        token = bearer_token()
        if token is None:
            if bearer_required or request.headers.get("Authorization"):
                _unauthorized("Missing or malformed 'Authorization: Bearer <access_token>' header; "
                              "get a token from POST /v1/oauth.")
        else:
            row = tenancy.access_token(conn, digest(token))
            if row is None or row.credential_id != credential.id or row.expires_at <= utcnow():
                _unauthorized("The access token is unknown, expired, or belongs to another API key.")
        caller = caller_of(conn, credential)
    g.caller = caller
    g.caller_has_bearer = token is not None
    return g.caller


def require_platform():
    """The platform's key for POST /v1/triggers (printed by `doo-webhooks admin create-platform-key`)."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        _unauthorized("Missing x-api-key header (a platform key).")
    with services().engine.begin() as conn:
        if not tenancy.platform_key_exists(conn, digest(key)):
            _unauthorized("Unknown or revoked platform key.")


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
        require_platform()
    elif route in API_KEY_ONLY_ROUTES:
        with services().engine.begin() as conn:
            api_key_credential(conn)
    elif request.method != "OPTIONS":
        current_caller(bearer_required=route not in BEARER_OPTIONAL_ROUTES)
    return None
