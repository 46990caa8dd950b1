"""POST /v1/oauth: client credentials for an access token, as doo's own API does it."""

from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api.envelopes import SuccessSchema
from app.api.envelopes import success
from app.auth import api_key
from app.context import context
from app.errors import ApiBlueprint
from services import access

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
    token = access.issue_token(context(), api_key(), body["client_id"], body["client_secret"])
    return success(dict(token, refresh_token=None))
