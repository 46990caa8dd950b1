"""The webhook configuration object (doo's "AddWebhook object") and its listing form."""

import hashlib
import json
import re

from marshmallow import EXCLUDE
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import post_load
from marshmallow import pre_load
from marshmallow import validate
from marshmallow import validates_schema

from schemas.types import PLACEHOLDERS
from schemas.types import TYPES
from schemas.types import normalize_type

MIN_RATE, MAX_RATE = 0.01, 10000  # requests per second: one every 100 s, up to what one process sends
METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")
PLACEHOLDER = re.compile(r"%[A-Z_]+%")
HASHED_TYPE = re.compile(r"^(?P<type>[a-z_]+)_[0-9a-f]{32}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
NOTIFY_NEEDS_SIGNING = ("operational notifications are signed with the group's signing secret: "
                        "set signing_secret (whsec_...) to use notify_url")
MASKED_ON_CREATE = ("this is the masked value from a listing, not a secret: send the real secret, "
                    "or update the group with PUT /v1/webhooks/<id>, which keeps the stored one")


class Id(fields.Field):
    """doo ids arrive as numbers or strings; they are kept as strings."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValidationError("Must be an integer or a string.")
        text = str(value).strip()
        if not text or len(text) > 64:
            raise ValidationError("Must be 1 to 64 characters.")
        return text

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class Url(fields.Url):
    def __init__(self, **kwargs):
        super().__init__(schemes={"http", "https"}, require_tld=False,
                         validate=validate.Length(max=2000), **kwargs)


class HookType(fields.String):
    """A webhook type; the ``on_`` prefix and the listed ``<type>_<32 hex>`` form are accepted."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        hashed = HASHED_TYPE.match(text)
        if hashed and hashed.group("type") in TYPES:
            text = hashed.group("type")
        try:
            return normalize_type(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class OriginSchema(Schema):
    class Meta:
        unknown = RAISE

    method = fields.String(load_default="POST", validate=validate.OneOf(("POST",)))
    endpoint = Url(required=True)
    body = fields.String(required=True, validate=validate.Length(min=2, max=100_000),
                         metadata={"description": "The GraphQL request as a JSON string; placeholders "
                                                  "%EVENT_ID%, %ORDER_ID%, %ATTENDEE_ID%, %ORGANIZATION_ID%."})


class HookSchema(Schema):
    class Meta:
        unknown = RAISE

    type = HookType(required=True, metadata={"description": "A webhook type, e.g. order_created."})
    method = fields.String(load_default="POST", validate=validate.OneOf(METHODS))
    endpoint = Url(required=True)
    origin = fields.Nested(OriginSchema, allow_none=True)
    max_per_second = fields.Float(allow_none=True, validate=validate.Range(min=MIN_RATE, max=MAX_RATE), metadata={
        "description": "Most requests per second to this endpoint, from all workers together; "
                       "wins over the group's max_per_second. A throttled delivery waits; it is not "
                       "a failed attempt."})
    # A listed hook may carry this; doo's update recipe posts the listing back. A PUT makes
    # new hooks, enabled: the state is read and ignored (enable a hook with its own call).
    disabled = fields.Raw(load_only=True, allow_none=True, metadata={"description": "Ignored on input (listings show it)."})
    disabled_reason = fields.Raw(load_only=True, allow_none=True, metadata={"description": "Ignored on input."})
    paused_until = fields.Raw(load_only=True, allow_none=True, metadata={"description": "Ignored on input (listings show it)."})

    @pre_load
    def upper_method(self, data, **kwargs):
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            data = dict(data, method=data["method"].upper())
        return data

    @validates_schema
    def check_placeholders(self, data, **kwargs):
        origin = data.get("origin")
        if not origin or "type" not in data:
            return
        allowed = PLACEHOLDERS[TYPES[data["type"]]]
        unknown = sorted(set(PLACEHOLDER.findall(origin["body"])) - set(allowed))
        if unknown:
            raise ValidationError(
                {"origin": {"body": [f"unknown placeholder(s) {', '.join(unknown)} for a {data['type']} hook; "
                                     f"allowed: {', '.join(allowed)}"]}})
        try:
            parsed = json.loads(PLACEHOLDER.sub("1", origin["body"]))
        except ValueError as exc:
            raise ValidationError({"origin": {"body": [f"must be a JSON string (a GraphQL request): {exc}"]}})
        if not isinstance(parsed, dict) or not isinstance(parsed.get("query"), str):
            raise ValidationError({"origin": {"body": ["must be a JSON object with a 'query' string"]}})

    @post_load
    def drop_listing_fields(self, data, **kwargs):
        data.pop("disabled", None)
        data.pop("disabled_reason", None)
        data.pop("paused_until", None)
        return data


class ClientCredentialsSchema(Schema):
    class Meta:
        unknown = RAISE

    client_id = fields.String(validate=validate.Length(max=255), allow_none=True)
    client_secret = fields.String(required=True, validate=validate.Length(min=1, max=1000),
                                  metadata={"description": "Returned masked as ********."})


class AuthenticationSchema(Schema):
    class Meta:
        unknown = RAISE

    grant_type = fields.String(load_default="client_credentials", validate=validate.OneOf(("client_credentials",)))
    endpoint = Url(required=True)
    credentials = fields.Nested(ClientCredentialsSchema, required=True)
    header_format = fields.String(load_default="Authorization", validate=validate.Regexp(
        HEADER_NAME, error="must be an HTTP header name of 1 to 100 characters"))
    header_value_format = fields.String(load_default="Bearer %ACCESS_TOKEN%", validate=[
        validate.Length(min=1, max=100),
        validate.Regexp(r"^[^\r\n]*%ACCESS_TOKEN%[^\r\n]*$", error="must contain %ACCESS_TOKEN% on one line"),
    ])


class WebhookConfigSchema(Schema):
    """The configuration object of POST /v1/team/<team_id>/webhooks and PUT /v1/webhooks/<id>."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True, validate=validate.Length(max=1000))
    event_id = Id(allow_none=True, metadata={"description": "Attach to this event only."})
    event_guide_id = Id(allow_none=True, metadata={"description": "Attach to events created from this guide."})
    hooks = fields.List(fields.Nested(HookSchema), required=True, validate=validate.Length(min=1, max=100))
    authentication = fields.Nested(AuthenticationSchema, allow_none=True)
    signing_secret = fields.String(allow_none=True, validate=validate.Regexp(
        r"^whsec_[A-Za-z0-9+/=]{32,90}$|^\*{8}$", error="must be whsec_ followed by 24 to 64 base64 bytes"),
        metadata={"description": "Standard Webhooks signing secret (whsec_...); returned masked. "
                                 "A new value on update is a rotation: the previous secret keeps "
                                 "signing beside it for DOO_WEBHOOKS_SIGNING_GRACE."})
    generate_signing_secret = fields.Boolean(load_only=True, load_default=False, metadata={
        "description": "true: the service generates a signing secret (whsec_...) and returns it once, "
                       "in this answer's signing_secret; on update this rotates the secret."})
    max_per_second = fields.Float(allow_none=True, validate=validate.Range(min=MIN_RATE, max=MAX_RATE), metadata={
        "description": "Most requests per second to each endpoint of this group (a hook's own "
                       "max_per_second wins), from all workers together."})
    notify_url = Url(allow_none=True, metadata={
        "description": "Receives signed operational events (delivery.exhausted, hook.disabled, "
                       "hook.recovered); needs signing_secret."})
    # A listed object carries these; doo's update recipe posts it back, so they are read and ignored.
    id = fields.Raw(load_only=True, allow_none=True)
    _links = fields.Raw(load_only=True, allow_none=True, data_key="_links")
    previous_signing_secret_expires_at = fields.Raw(load_only=True, allow_none=True, metadata={
        "description": "Ignored on input (listings show it)."})

    @validates_schema
    def one_scope(self, data, **kwargs):
        if data.get("event_id") is not None and data.get("event_guide_id") is not None:
            raise ValidationError("set event_id or event_guide_id, not both", "event_guide_id")

    @validates_schema
    def notify_needs_signing(self, data, **kwargs):
        if data.get("notify_url") and not (data.get("signing_secret") or data.get("generate_signing_secret")):
            raise ValidationError(NOTIFY_NEEDS_SIGNING, "notify_url")

    @validates_schema
    def one_secret_source(self, data, **kwargs):
        if data.get("generate_signing_secret") and data.get("signing_secret") not in (None, "********"):
            raise ValidationError("send signing_secret or generate_signing_secret: true, not both",
                                  "generate_signing_secret")

    @post_load
    def drop_listing_fields(self, data, **kwargs):
        data.pop("id", None)
        data.pop("_links", None)
        data.pop("previous_signing_secret_expires_at", None)
        return data


def refuse_masked(config):
    """On create there is no stored secret to keep: a mask is a mistake, said plainly."""
    errors = {}
    secret = ((config.get("authentication") or {}).get("credentials") or {}).get("client_secret")
    if secret == "********":
        errors["authentication"] = {"credentials": {"client_secret": [MASKED_ON_CREATE]}}
    if config.get("signing_secret") == "********":
        errors["signing_secret"] = [MASKED_ON_CREATE]
    if errors:
        raise ValidationError(errors)


def type_key(hook):
    """The stored type: the bare type, or ``<type>_<32 hex>`` digest of a GraphQL hook's origin."""
    origin = hook.get("origin")
    if not origin:
        return hook["type"]
    text = json.dumps([origin["method"], origin["endpoint"], origin["body"]], separators=(",", ":"))
    return f"{hook['type']}_{hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()}"


# --- listing form --------------------------------------------------------------------------

class LinkSchema(Schema):
    href = fields.String()


class SelfLinksSchema(Schema):
    self = fields.Nested(LinkSchema)


class HookOutSchema(Schema):
    type = fields.String()
    method = fields.String()
    endpoint = fields.String()
    origin = fields.Nested(OriginSchema)
    disabled = fields.Boolean(metadata={"description": "Present and true when the hook was disabled."})
    disabled_reason = fields.String(allow_none=True, metadata={"description": "Why, when it was disabled."})
    max_per_second = fields.Float(metadata={"description": "Present when the hook has a limit of its own."})
    paused_until = fields.String(metadata={
        "description": "Present while the receiver's Retry-After (429/503) pauses this endpoint (UTC)."})


class CredentialsOutSchema(Schema):
    client_id = fields.String(allow_none=True)
    client_secret = fields.String()


class AuthenticationOutSchema(Schema):
    grant_type = fields.String()
    endpoint = fields.String()
    credentials = fields.Nested(CredentialsOutSchema)
    header_format = fields.String()
    header_value_format = fields.String()


class WebhookOutSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    event_id = fields.String()
    event_guide_id = fields.String()
    hooks = fields.List(fields.Nested(HookOutSchema))
    authentication = fields.Nested(AuthenticationOutSchema)
    signing_secret = fields.String(metadata={"description": "Always masked (********)."})
    previous_signing_secret_expires_at = fields.String(metadata={
        "description": "Present after a rotation, while the previous secret still signs beside the new one (UTC)."})
    max_per_second = fields.Float()
    notify_url = fields.String()
    _links = fields.Nested(SelfLinksSchema, data_key="_links", attribute="_links")
