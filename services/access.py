"""Who is calling, and the credentials that say so: authenticating an API request (api key and
Bearer token), issuing those tokens, the platform's key, the dashboard's sessions and its login,
and the operator's bootstrap of tenants, keys and secrets.

Keys, client secrets, tokens and session ids are random 256-bit values that the database
keeps only as SHA-256 (ground.crypto.digest): a leaked table opens nothing. Every refusal to
authenticate is Unauthorized; its message says what was missing, never which part was wrong.
"""

import dataclasses
import datetime

from sqlalchemy.exc import IntegrityError

from ground.crypto import digest
from ground.crypto import new_secret
from ground.crypto import same
from services.errors import Conflict
from services.errors import Forbidden
from services.errors import Invalid
from services.errors import NotFound
from services.errors import Unauthorized
from services.tenancy import OPERATOR
from services.tenancy import ROLES
from services.tenancy import Caller
from storage import dashboard
from storage import groups
from storage import tenancy
from storage.db import utcnow

MISSING_API_KEY = "Missing x-api-key header."
UNKNOWN_API_KEY = "Unknown or revoked API key."
MISSING_TOKEN = ("Missing or malformed 'Authorization: Bearer <access_token>' header; "
                 "get a token from POST /v1/oauth.")
WRONG_TOKEN = "The access token is unknown, expired, or belongs to another API key."
WRONG_CLIENT = "client_id and client_secret do not match this API key."
MISSING_PLATFORM_KEY = "Missing x-api-key header (a platform key)."
UNKNOWN_PLATFORM_KEY = "Unknown or revoked platform key."
WRONG_LOGIN = "The API key, client id and client secret do not match an active credential."

#: secrets rotate re-encrypts this many groups per transaction: short locks on a large table
ROTATE_BATCH = 500


# --- the management API ----------------------------------------------------------------------

def _credential(conn, api_key):
    """The live credential of an API key, or Unauthorized (missing, unknown or revoked)."""
    if not api_key:
        raise Unauthorized(MISSING_API_KEY)
    credential = tenancy.credential_by_api_key(conn, digest(api_key))
    if credential is None:
        raise Unauthorized(UNKNOWN_API_KEY)
    return credential


def _caller_of(conn, credential_id, organizer_id):
    """The Caller a credential stands for, with its organizer's memberships as they are now."""
    return Caller(organizer_id, credential_id, tuple(tenancy.memberships_of(conn, organizer_id)))


def _client_matches(credential, client_id, client_secret):
    # compared as bytes: hmac.compare_digest refuses str with non-ASCII characters
    return (same(credential.client_id.encode(), client_id.encode())
            and same(credential.client_secret_hash, digest(client_secret)))


def check_api_key(ctx, api_key):
    """Unauthorized unless ``api_key`` is a live credential's (what POST /v1/oauth needs first)."""
    with ctx.engine.begin() as conn:
        _credential(conn, api_key)


def authenticate(ctx, api_key, token, token_required=True):
    """The Caller of an API key and its Bearer token, or Unauthorized.

    ``token`` is the Bearer token sent: None when no Authorization header came, "" when one
    came that carries no Bearer token (refused even where a token is optional, so a client
    that meant to send one learns it was not read).
    """
    with ctx.engine.begin() as conn:
        credential = _credential(conn, api_key)
        if token:
            row = tenancy.access_token(conn, digest(token))
            if row is None or row.credential_id != credential.id or row.expires_at <= utcnow():
                raise Unauthorized(WRONG_TOKEN)
        elif token_required or token is not None:
            raise Unauthorized(MISSING_TOKEN)
        return _caller_of(conn, credential.id, credential.organizer_id)


def issue_token(ctx, api_key, client_id, client_secret):
    """A new access token for the client credentials of ``api_key`` (POST /v1/oauth):
    {access_token, expires_in (seconds)}. Expired tokens are purged on the way."""
    ttl = ctx.settings.access_token_ttl
    with ctx.engine.begin() as conn:
        credential = _credential(conn, api_key)
        if not _client_matches(credential, client_id, client_secret):
            raise Unauthorized(WRONG_CLIENT)
        token, now = new_secret(), utcnow()
        tenancy.purge_expired_tokens(conn, now)
        tenancy.store_access_token(conn, digest(token), credential.id, now + datetime.timedelta(seconds=ttl))
    return {"access_token": token, "expires_in": ttl}


def require_platform(ctx, platform_key):
    """Unauthorized unless ``platform_key`` is a live platform key (POST /v1/triggers)."""
    if not platform_key:
        raise Unauthorized(MISSING_PLATFORM_KEY)
    with ctx.engine.begin() as conn:
        if not tenancy.platform_key_exists(conn, digest(platform_key)):
            raise Unauthorized(UNKNOWN_PLATFORM_KEY)


# --- the dashboard's sessions ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Session:
    """A live dashboard session: the CSRF token its forms carry, and who it acts for."""
    csrf_token: str
    caller: Caller


def log_in(ctx, api_key, client_id, client_secret):
    """A new dashboard session for exactly what POST /v1/oauth takes; returns the session id
    for the cookie (the database keeps its SHA-256). Unauthorized without saying which part
    is wrong."""
    with ctx.engine.begin() as conn:
        credential = tenancy.credential_by_api_key(conn, digest(api_key)) if api_key else None
        if credential is None or not client_id or not _client_matches(credential, client_id, client_secret):
            raise Unauthorized(WRONG_LOGIN)
        now = utcnow()
        dashboard.purge_expired_sessions(conn, now)
        value = new_secret()
        dashboard.create_session(conn, digest(value), credential.id, new_secret(), now,
                                 now + datetime.timedelta(seconds=ctx.settings.session_ttl))
    return value


def session(ctx, value):
    """The live Session of a session id, or None (unknown, expired, or its API key revoked).
    Its caller has the memberships as they are now: a changed role counts at once."""
    with ctx.engine.begin() as conn:
        row = dashboard.live_session(conn, digest(value), utcnow())
        if row is None:
            return None
        return Session(row.csrf_token, _caller_of(conn, row.id, row.organizer_id))


def log_out(ctx, value):
    """End the session of a session id on the server: the cookie, if kept, opens nothing."""
    with ctx.engine.begin() as conn:
        dashboard.end_session(conn, digest(value))


# --- the operator's bootstrap (doo-webhooks admin, secrets) -------------------------------------

def operator_only(caller):
    """Forbidden unless the caller is the command line's OPERATOR: these act on every organization."""
    if caller is not OPERATOR:
        raise Forbidden("Only the operator (the doo-webhooks command) may do this.")


def _bootstrap(ctx, caller, create):
    """``create(conn, now)`` in one transaction; a missing organization, team or organizer is NotFound."""
    operator_only(caller)
    try:
        with ctx.engine.begin() as conn:
            return create(conn, utcnow())
    except LookupError as exc:
        raise NotFound(str(exc)) from None


def create_organization(ctx, caller, name):
    """A new organization; its id."""
    return _bootstrap(ctx, caller, lambda conn, now: tenancy.create_organization(conn, name, now))


def create_team(ctx, caller, organization_id, name=None):
    """A new team of an organization; its id."""
    return _bootstrap(ctx, caller, lambda conn, now: tenancy.create_team(conn, organization_id, name, now))


def create_organizer(ctx, caller, email, name, team_ids, role="team_admin"):
    """A new organizer (a user) with ``role`` in each of ``team_ids``; its id. An email taken
    already is a Conflict."""
    if role not in ROLES:
        raise Invalid({"role": [f"Must be one of: {', '.join(ROLES)}."]})

    def create(conn, now):
        organizer_id = tenancy.create_organizer(conn, email, name, now)
        for team_id in team_ids:
            tenancy.add_membership(conn, organizer_id, team_id, role)
        return organizer_id
    try:
        return _bootstrap(ctx, caller, create)
    except IntegrityError:
        raise Conflict(f"an organizer with email {email!r} exists already") from None


def create_credentials(ctx, caller, organizer_id):
    """New API credentials of an organizer: {api_key, client_id, client_secret}, in clear this
    once (only their SHA-256 is stored)."""
    api_key, client_id, client_secret = new_secret("dk_"), new_secret("dc_")[:40], new_secret("ds_")
    _bootstrap(ctx, caller, lambda conn, now: tenancy.create_credentials(
        conn, organizer_id, digest(api_key), client_id, digest(client_secret), now))
    return {"api_key": api_key, "client_id": client_id, "client_secret": client_secret}


def create_platform_key(ctx, caller, name="platform"):
    """A new key for POST /v1/triggers, in clear this once (only its SHA-256 is stored)."""
    key = new_secret("dp_")
    _bootstrap(ctx, caller, lambda conn, now: tenancy.create_platform_key(conn, name, digest(key), now))
    return key


def rotate_secrets(ctx, caller):
    """Re-encrypt every stored receiver and signing secret under the newest key of
    SECRET_KEYS, a batch of groups per transaction; returns how many groups."""
    operator_only(caller)
    rotated, after = 0, ""
    while True:
        with ctx.engine.begin() as conn:
            rows = groups.groups_with_secrets(conn, after, ROTATE_BATCH)
            for row in rows:
                groups.set_group_secrets(conn, row.id, {
                    name: ctx.box.rotate(getattr(row, name)) if getattr(row, name) else None
                    for name in groups.SECRET_COLUMNS})
        rotated += len(rows)
        if not rows:
            return rotated
        after = rows[-1].id
