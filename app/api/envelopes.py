"""Response shapes of doo's API, for the OpenAPI document and for dumping."""

import urllib.parse

from flask import request
from marshmallow import RAISE
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from schemas.webhook_config import LinkSchema
from schemas.webhook_config import SelfLinksSchema
from schemas.webhook_config import WebhookOutSchema

SECURITY = [{"apiKey": [], "bearer": []}]


class SuccessSchema(Schema):
    response_status = fields.Integer()
    developer_message = fields.String()
    user_message = fields.String()
    _links = fields.Nested(SelfLinksSchema, data_key="_links", attribute="_links")


class IdEnvelopeSchema(SuccessSchema):
    data = fields.String(metadata={"description": "The webhook group id."})
    signing_secret = fields.String(metadata={
        "description": "Only when generate_signing_secret was true: the new secret, shown this once."})


class RotateArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    grace_seconds = fields.Integer(load_default=None, validate=validate.Range(min=0, max=30 * 86400), metadata={
        "description": "How long the previous secret keeps signing; default DOO_WEBHOOKS_SIGNING_GRACE."})


class RotatedSecretDataSchema(Schema):
    signing_secret = fields.String(metadata={"description": "The new secret (whsec_...), shown this once."})
    previous_signing_secret_expires_at = fields.String(allow_none=True)


class RotatedSecretSchema(SuccessSchema):
    data = fields.Nested(RotatedSecretDataSchema)


class GroupEnvelopeSchema(SuccessSchema):
    data = fields.Nested(WebhookOutSchema)


class PageLinksSchema(Schema):
    self = fields.Nested(LinkSchema)
    first = fields.Nested(LinkSchema)
    last = fields.Nested(LinkSchema)
    prev = fields.Nested(LinkSchema)
    next = fields.Nested(LinkSchema)


class EmbeddedWebhooksSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookOutSchema))


class PageSchema(Schema):
    """doo's HAL page: links and counters at the top level; subclasses add ``_embedded``."""
    _links = fields.Nested(PageLinksSchema, data_key="_links", attribute="_links")
    page_count = fields.Integer()
    page_size = fields.Integer()
    total_items = fields.Integer()
    page = fields.Integer()


class WebhookPageSchema(PageSchema):
    _embedded = fields.Nested(EmbeddedWebhooksSchema, data_key="_embedded", attribute="_embedded")


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


def success(data=None, **extra):
    body = {"response_status": 200, "developer_message": "Success", "user_message": "Success"}
    if data is not None:
        body["data"] = data
    body.update(extra)
    body.setdefault("_links", {"self": {"href": url(request.path)}})
    return body


def url(path):
    return request.host_url.rstrip("/") + path


def page_links(path, page, page_count, query=None):
    """HAL links as doo writes them: first without ?page, the others with it.

    ``query``: the listing's other arguments (filters, page_size), kept in every link so
    that following ``next`` pages through the same selection.
    """
    base = url(path)
    kept = urllib.parse.urlencode({k: v for k, v in (query or {}).items() if v is not None and k != "page"})

    def at(number):
        args = "&".join(part for part in (kept, f"page={number}" if number else "") if part)
        return f"{base}?{args}" if args else base
    links = {"self": {"href": at(page)}, "first": {"href": at(None)}, "last": {"href": at(page_count)}}
    if page > 1:
        links["prev"] = {"href": at(min(page - 1, page_count))}
    if page < page_count:
        links["next"] = {"href": at(page + 1)}
    return links
