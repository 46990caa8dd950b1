"""The deliveries and dead-letter pages' filters (the API's fields, from a query string) and
their keyset pages: newest first, with links to the older and newer page."""

import datetime

from flask import abort
from flask import url_for
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from app import deliveries as views
from app.api.deliveries import STATUSES
from app.api.fields import LedgerDateTime
from schemas.webhook_config import HookType
from services import deliveries
from services.errors import said

PAGE_SIZE = 50


def flat(errors):
    """marshmallow's nested messages as one line."""
    return "; ".join(said(errors))


class ListingSchema(Schema):
    """The filters of the listings, as the API's (same type and time fields), from a query string."""
    status = fields.String(validate=validate.OneOf(STATUSES))
    type = HookType()
    entity = fields.String(validate=validate.Length(min=1, max=64))
    group = fields.String(validate=validate.Length(min=1, max=64))
    since = LedgerDateTime()
    until = LedgerDateTime()
    before = fields.String(validate=validate.Length(max=120))
    after = fields.String(validate=validate.Length(max=120))


def args_of(source):
    raw = {k: v.strip() for k, v in source.items() if k in ListingSchema().fields and v.strip()}
    try:
        args = ListingSchema().load(raw)
    except ValidationError as exc:
        abort(400, description="The filters are not valid: " + flat(exc.messages))
    if any("\x00" in str(v) for v in args.values()):
        abort(400, description="The filters must not contain NUL characters.")
    return raw, args


def _cursor(text):
    """(created_at, id) from a page link's ``before``/``after``."""
    when, _, delivery_id = (text or "").rpartition("_")
    try:
        return datetime.datetime.fromisoformat(when), delivery_id
    except ValueError:
        abort(400, description="The page position is not valid.")


def page(ctx, caller, raw, args, group_limit, **fixed):
    """One keyset page of the caller's deliveries for the filters: (summaries, page links, the
    caller's groups by id). Someone else's group is a 404, as in the API."""
    filters = dict(group_id=args.get("group"), status=args.get("status"), hook_type=args.get("type"),
                   entity_id=args.get("entity"), since=args.get("since"), until=args.get("until"))
    filters.update(fixed)
    older = _cursor(args["before"]) if args.get("before") else None
    newer = _cursor(args["after"]) if args.get("after") and older is None else None
    found = deliveries.browse(ctx, caller, PAGE_SIZE + 1, group_limit, older_than=older, newer_than=newer, **filters)
    rows = found.rows
    more = len(rows) > PAGE_SIZE
    rows = rows[1:] if (newer and more) else rows[:PAGE_SIZE]
    keep = {k: v for k, v in raw.items() if k not in ("before", "after")}
    links = {}
    if rows and (more or newer is not None):
        links["older"] = dict(keep, before=f"{rows[-1].created_at.isoformat()}_{rows[-1].id}")
    if rows and (older is not None or (newer is not None and more)):
        links["newer"] = dict(keep, after=f"{rows[0].created_at.isoformat()}_{rows[0].id}")
    if older is not None or newer is not None:
        links["newest"] = keep
    return [views.summary(row, url_for("dashboard.delivery", delivery_id=row.id)) for row in rows], links, found.groups
