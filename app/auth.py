"""Who is calling: doo-style x-api-key plus a Bearer token from POST /v1/oauth."""

import dataclasses

from flask import request
from flask_smorest import abort

from app.services import services
from doo_webhooks.crypto import digest
from storage import queries
from storage.db import utcnow

ROLES = ("team_admin", "team_member", "team_viewer")
WRITE_ROLES = ("team_admin", "team_member")


@dataclasses.dataclass(frozen=True)
class Caller:
    organizer_id: int
    credential_id: int
    memberships: tuple

    def organization_ids(self, write=False):
        return sorted({m.organization_id for m in self.memberships if not write or m.role in WRITE_ROLES})

    def team(self, team_id, write=False):
        """The caller's membership of ``team_id``; 403 when there is none (or it may not write)."""
        for membership in self.memberships:
            if membership.team_id == team_id:
                if write and membership.role not in WRITE_ROLES:
                    abort(403, message=f"Your role {membership.role!r} in team {team_id} may only read.")
                return membership
        abort(403, message=f"You are not a member of team {team_id}.")


def _unauthorized(message):
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="doo-webhooks"'})


def api_key_credential(conn):
    api_key = request.headers.get("x-api-key", "").strip()
    if not api_key:
        _unauthorized("Missing x-api-key header.")
    credential = queries.credential_by_api_key(conn, digest(api_key))
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
    with services().engine.begin() as conn:
        credential = api_key_credential(conn)
        token = bearer_token()
        if token is None:
            if bearer_required or request.headers.get("Authorization"):
                _unauthorized("Missing or malformed 'Authorization: Bearer <access_token>' header; "
                              "get a token from POST /v1/oauth.")
        else:
            row = queries.access_token(conn, digest(token))
            if row is None or row.credential_id != credential.id or row.expires_at <= utcnow():
                _unauthorized("The access token is unknown, expired, or belongs to another API key.")
        memberships = tuple(queries.memberships_of(conn, credential.organizer_id))
    return Caller(credential.organizer_id, credential.id, memberships)


def require_platform():
    """The platform's key for POST /v1/triggers (printed by `doo-webhooks admin create-platform-key`)."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        _unauthorized("Missing x-api-key header (a platform key).")
    with services().engine.begin() as conn:
        if not queries.platform_key_exists(conn, digest(key)):
            _unauthorized("Unknown or revoked platform key.")
