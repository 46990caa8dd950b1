"""POST /v1/oauth: client credentials for an access token, as doo's own API does it."""

import datetime

from flask_smorest import abort
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api.envelopes import SuccessSchema
from app.api.envelopes import success
from app.auth import api_key_credential
from app.auth import client_matches
from app.errors import ApiBlueprint
from app.services import services
from ground.crypto import digest
from ground.crypto import new_secret
from storage import tenancy
from storage.db import utcnow

blp = ApiBlueprint("oauth", __name__, description="Access tokens for the management API.")


class TokenRequestSchema(Schema):
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    client_secret = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    grant_type = fields.String(required=True, validate=validate.OneOf(("client_credentials",)))


class TokenDataSchema(Schema):
    access_token = fields.String()
    refresh_token = fields.String(allow_none=True)
    expires_in = fields.Integer()


class TokenEnvelopeSchema(SuccessSchema):
    data = fields.Nested(TokenDataSchema)


@blp.route("/oauth", methods=["POST"])
@blp.arguments(TokenRequestSchema, error_status_code=400)
@blp.response(200, TokenEnvelopeSchema)
@blp.doc(security=[{"apiKey": []}])
def issue_token(body):
    """Exchange client_id and client_secret (plus the x-api-key header) for a Bearer token."""
    svc = services()
    with svc.engine.begin() as conn:
        credential = api_key_credential(conn)
        if not client_matches(credential, body["client_id"], body["client_secret"]):
            # a 401 carries WWW-Authenticate (RFC 9110 §15.5.2), like every other 401 of the API
            abort(401, message="client_id and client_secret do not match this API key.",
                  headers={"WWW-Authenticate": 'Bearer realm="doo-webhooks"'})
        token = new_secret()
        now = utcnow()
        tenancy.purge_expired_tokens(conn, now)
        tenancy.store_access_token(conn, digest(token), credential.id,
                                   now + datetime.timedelta(seconds=svc.settings.access_token_ttl))
    return success({"access_token": token, "refresh_token": None, "expires_in": svc.settings.access_token_ttl})
