"""Entities the platform emits with a trigger: event, order, attendee.

The schemas only *validate*. ``load_entity`` returns a deep copy of the input plus a
top-level ``event_id``, so the receiver gets exactly what the platform sent (no
reformatted dates, no numbers turned into strings) and unknown fields survive at every
level.

Shapes (doo swagger models, see DESIGN.md §5 "Default payload"):

* event: ``EventsIdEditGetResponse``. Required ``id`` and ``status`` (draft, live,
  cancelled, done, deleted).
* order: ``OrdersIdGetResponse``. Required ``order_details.id``,
  ``order_details.status`` and ``event.id``.
* attendee: one item of ``OrdersIdGetResponse.order_details.attendees[]`` plus the ids
  of its order and event::

      {"id": 7, "status": "active", "order_id": 42, "event_id": 3,
       "first_name": ..., "ticket": {"id": ..., "status": "valid", ...},
       "answers": [...]}

  Required ``id``, ``status`` (active, inactive), ``order_id`` and ``event_id``.
  ``ticket.status``, when present, is one of pending, valid, cancelled, checked.

Every other documented field is optional (null allowed) but must have its documented
type when present. Ids (``id`` and ``*_id``, except the non-doo ``place_id`` and
``timezone_id`` and the free-text ``external_*_id``) are a non-empty string or an
integer (a float without fraction counts as one), at most 64 characters as text: the
ledger stores them in 64-character columns.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

ENTITY_KINDS = ("event", "order", "attendee")

EVENT_STATUSES = ("draft", "live", "cancelled", "done", "deleted")
ORDER_STATUSES = (
    "active",
    "organizer_accepted_cancellation",
    "organizer_cancelled",
    "pending_organizer_approval",
    "pending_organizer_review",
    "denied",
    "removed",
    "attendee_accepted_cancellation",
)
ATTENDEE_STATUSES = ("active", "inactive")
TICKET_STATUSES = ("pending", "valid", "cancelled", "checked")

ID_MAX_LENGTH = 64


def id_text(value) -> str | None:
    """The id as text, or None when ``value`` is not a valid id."""
    if isinstance(value, bool):  # bool is an int subclass; True is no id
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        text = str(int(value))
    elif isinstance(value, str):
        # the ledger stores ids as text, and PostgreSQL text cannot hold NUL
        if not value.strip() or "\x00" in value:
            return None
        text = value
    else:
        return None
    return text if len(text) <= ID_MAX_LENGTH else None


# --- fields: check the type, return the value untouched ----------------------------


class _Value(fields.Field):
    """A field that accepts ``null`` unless it is required."""

    def __init__(self, *, required: bool = False, **kwargs):
        kwargs.setdefault("allow_none", not required)
        super().__init__(required=required, **kwargs)


class Id(_Value):
    default_error_messages = {
        "invalid": "Not a valid id: expected a non-empty string or an integer "
        f"(at most {ID_MAX_LENGTH} characters)."
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if id_text(value) is None:
            raise self.make_error("invalid")
        return value


class Str(_Value):
    default_error_messages = {"invalid": "Not a valid string."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value


class Num(_Value):
    default_error_messages = {"invalid": "Not a valid number."}

    def _deserialize(self, value, attr, data, **kwargs):
        # bool is an int subclass; NaN and infinities are not JSON.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        return value


class Int(_Value):
    default_error_messages = {"invalid": "Not a valid integer."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return value
        if not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class Bool(_Value):
    default_error_messages = {"invalid": "Not a valid boolean."}

    def _deserialize(self, value, attr, data, **kwargs):
        # marshmallow's Boolean would accept "yes" or 1; the documented type is a JSON bool.
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Obj(_Value):
    """Any JSON object, for documented objects whose fields are not listed."""

    default_error_messages = {"invalid": "Not a valid object."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        return value


class Arr(_Value):
    """Any JSON array, for documented arrays whose items are not described."""

    default_error_messages = {"invalid": "Not a valid list."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        return value


def _status(choices, *, required: bool = False) -> Str:
    return Str(required=required, validate=validate.OneOf(choices))


def _nested(schema, *, required: bool = False) -> fields.Nested:
    return fields.Nested(schema, required=required, allow_none=not required)


def _list(item) -> fields.List:
    """An optional array of ``item`` (a field or a schema); items themselves are not null."""
    if isinstance(item, type) and issubclass(item, Schema):
        item = fields.Nested(item)
    return fields.List(item, allow_none=True)


class _Base(Schema):
    class Meta:
        unknown = INCLUDE  # the receiver sees every field the platform sent


class _Links(_Base):
    self = _nested(_Base.from_dict({"href": Str()}, name="_Href"))


class _Translations(_Base):
    de = Str()
    en = Str()


# --- event: EventsIdEditGetResponse ------------------------------------------------


class _Address(_Base):
    id = Id()
    place_id = Str()
    latitude = Str()
    longitude = Str()
    street_address = Str()
    street_number = Str()
    route = Str()
    city = Str()
    country = Str()
    timezone_id = Str()
    postcode = Str()
    administrative_area_level_1 = Str()
    administrative_area_level_2 = Str()
    administrative_area_level_3 = Str()
    administrative_area_level_4 = Str()
    administrative_area_level_5 = Str()
    sublocality_level_1 = Str()
    sublocality_level_2 = Str()
    sublocality_level_3 = Str()
    sublocality_level_4 = Str()
    sublocality_level_5 = Str()
    formatted_address = Str()
    timezone_offset = Num()


class _QuestionGroup(_Base):
    id = Id()
    default_questions = _list(Str(allow_none=False))
    additional_questions = Arr()


class _Questions(_Base):
    buyer_questions = _nested(_QuestionGroup)
    attendee_questions = _nested(_QuestionGroup)


class _Contact(_Base):
    name = Str()
    email = Str()
    phone = Str()
    organization = Str()
    organizer_id = Id()


class _Template(_Base):
    controlling = Bool()
    id = Id()
    name = Str()
    type = Num()
    default = Bool()
    template = Bool()
    data = Str()


class _EventAttributes(_Base):
    attributes = Arr()
    templates = _list(_Template)


class _EventSettings(_Base):
    custom_checkout_text = _nested(_Translations)
    has_white_labels = Num()
    payment_bank_transfer = Num()
    payment_credit_card = Num()
    payment_paypal = Num()


class _TicketCategory(_Base):
    id = Id()
    name = Str()
    description = Str()
    amount = Num()
    price = Num()
    vat = Num()
    vat_percent = Num()
    max = Num()
    min = Num()
    show_remaining_capacity = Bool()
    hide_ticket_category = Bool()
    is_featured = Bool()
    is_ended = Bool()
    start_date = Str()
    relative_start_date = Str()
    relative_start_date_type = Str()
    relative_end_date = Str()
    relative_end_date_type = Str()
    display_order = Str()
    available_amount = Num()
    taken_amount = Str()
    ticket_price = Num()
    ticket_fees = Num()
    max_available_amount = Num()
    min_available_amount = Num()


class _EventIdCheck(_Base):
    """Refuses a top-level ``event_id`` that disagrees with the entity's own."""

    event_id = Id()

    def source_event_id(self, data) -> object:
        raise NotImplementedError

    @validates_schema(skip_on_field_errors=False)
    def _event_id_agrees(self, data, **kwargs):
        given = data.get("event_id")
        source = self.source_event_id(data)
        if given is None or source is None:
            return  # missing or invalid ids are reported by their own fields
        if id_text(given) != id_text(source):
            raise ValidationError(
                f"event_id {given!r} disagrees with the entity's event id {source!r}.",
                "event_id",
            )


class EventSchema(_EventIdCheck):
    id = Id(required=True)
    status = _status(EVENT_STATUSES, required=True)
    user_id = Id()
    contact_detail_id = Id()
    location_id = Id()
    email_attachment_id = Id()
    image_id = Id()
    image_cover_id = Id()
    title = Str()
    organizer_name = Str()
    description = Str()
    short_description = Str()
    short_name = Str()
    comment = Str()
    venue_address = Str()
    venue_name = Str()
    start_date = Str()
    end_date = Str()
    created_date = Str()
    update_date = Str()
    draft_date = Str()
    live_date = Str()
    deletion_date = Str()
    cancelled_date = Str()
    is_deleted = Str()  # a string in the swagger, not a bool
    duplicate_email_detection = Bool()
    has_manual_approve = Bool()
    ticket_option = Bool()
    is_publishable = Bool()
    has_order_with_booking_approval = Bool()
    has_coupons = Bool()
    has_access_codes = Bool()
    show_bank_transfer = Bool()
    readonly_prefill = Bool()
    type = Str()
    event_type = Str()
    bank_transfer_period = Str()
    booking_approval = Str()
    total_event_capacity = Str()
    total_amount = Num()
    amount = Num()
    total_revenue = Num()
    participants_count = Num()
    fees_type = Num()
    vat_option = Num()
    vat_option_text = Str()
    creation_status = Num()
    image_shape_type = Str()
    image = Str()
    image_cover = Str()
    image_preview_url = Str()
    image_cover_preview_url = Str()
    email_attachments = Str()
    demo_screen = Arr()
    external_user_id = Str()
    address = _nested(_Address)
    questions = _nested(_Questions)
    contact = _nested(_Contact)
    terms = _nested(_Base.from_dict({"type": Str()}, name="_Terms"))
    event_attributes = _nested(_EventAttributes)
    ticket_limitation = _nested(_Base.from_dict({"min": Str(), "max": Str()}, name="_Limit"))
    event_settings = _nested(_EventSettings)
    ticket_categories = _list(_TicketCategory)
    _links = _nested(_Links)

    def source_event_id(self, data):
        return data.get("id")


# --- order: OrdersIdGetResponse ----------------------------------------------------


class _Ticket(_Base):
    id = Id()
    status = _status(TICKET_STATUSES)
    event_ticket_id = Id()
    custom_price = Bool()
    pdf_link = Str()
    name_tag_link = Str()
    passbook_link = Str()
    checkin_link = Str()


class _Answer(_Base):
    attendee_id = Id()
    id = Id()
    answer = Str()
    question = Str()
    display_type = Str()


class _AttendeeFields(_Base):
    """An item of ``order_details.attendees[]``: all optional inside an order."""

    id = Id()
    status = _status(ATTENDEE_STATUSES)
    member_id = Id()
    company_name = Str()
    salutation = Str()
    title = Str()
    first_name = Str()
    last_name = Str()
    email = Str()
    zip = Str()
    street = Str()
    city = Str()
    country = _nested(_Translations)
    house_num = Str()
    ticket = _nested(_Ticket)
    answers = _list(_Answer)


class _OriginalTickets(_Base):
    tickets_archive_url = Str()
    nametags_archive_url = Str()
    tickets_archive_zipped = Bool()
    nametags_archive_zipped = Bool()
    passbook_link = Arr()


class _Payment(_Base):
    amount = Str()  # a string in the swagger
    method = Str()
    payment_date = Str()
    booking_date = Str()
    status = Str()
    transaction_fees = Obj()
    original_tickets = _nested(_OriginalTickets)
    expected_attachments_link = Arr()
    invoice_file_url = Str()
    cancellation_invoice_link = Str()


_NumberedTranslations = _Base.from_dict({"1": Str(), "2": Str()}, name="_NumberedTranslations")


class _OrderDetails(_Base):
    id = Id(required=True)
    status = _status(ORDER_STATUSES, required=True)
    member_id = Id()
    invoice_id = Id()
    cancellation_invoice_id = Id()
    salutation = Str()
    title = Str()
    first_name = Str()
    last_name = Str()
    company_name = Str()
    email = Str()
    street = Str()
    house_num = Str()
    city = Str()
    zip = Str()
    country = _nested(_Translations)
    cancellation_date = Str()
    removed_date = Str()
    regenerate_requested_date = Str()
    booking_approval_date = Str()
    organizer_comment = Str()
    total_coupon_discount = Int()
    promotion_code = Str()
    access_code = Str()
    buyer_hash = Str()
    buyer_uploaded_files_answers = Bool()
    attendees = _list(_AttendeeFields)
    buyer_answers = Arr()
    payment = _nested(_Payment)
    answers_salutation_translations = _nested(_NumberedTranslations)
    answer_title_translations = _nested(_NumberedTranslations)


class _OrderTicketCategory(_Base):
    id = Id()
    name = Str()
    price = Int()
    vat = Int()
    vat_percent = Int()
    organizer_price = Int()


class _OrderEvent(_Base):
    id = Id(required=True)
    title = Str()
    start_date = Str()
    end_date = Str()
    event_type = Str()
    vat_option = Int()
    booking_approval = Str()
    status = Str()  # documented as a plain string here, not as the event status list
    ticket_categories = _list(_OrderTicketCategory)


class OrderSchema(_EventIdCheck):
    event = _nested(_OrderEvent, required=True)
    order_details = _nested(_OrderDetails, required=True)
    contact_center = Bool()
    cancellation_invoice = Str()
    invoice_details = _nested(_Base.from_dict({"use_company_name": Bool()}, name="_Invoice"))
    external_customer_id = Str(validate=validate.Length(max=255))
    _links = _nested(_Links)

    def source_event_id(self, data):
        event = data.get("event")
        return event.get("id") if isinstance(event, Mapping) else None


# --- attendee ----------------------------------------------------------------------


class AttendeeSchema(_AttendeeFields):
    id = Id(required=True)
    status = _status(ATTENDEE_STATUSES, required=True)
    order_id = Id(required=True)
    event_id = Id(required=True)


# --- loading -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedEntity:
    kind: str
    entity: dict
    entity_id: str
    event_id: str
    order_id: str | None


_SCHEMAS = {"event": EventSchema(), "order": OrderSchema(), "attendee": AttendeeSchema()}


MAX_DEPTH = 64  # doo's models nest 4 levels; far deeper is an attack on the recursion limit


def _too_deep(value) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return False


def load_entity(kind: str, data) -> LoadedEntity:
    """Validate ``data`` as an entity of ``kind`` and return it normalised.

    Raises ``ValidationError`` (messages keyed by field path) on bad input and
    ``ValueError`` for an unknown kind.
    """
    if kind not in _SCHEMAS:
        raise ValueError(f"unknown entity kind {kind!r}; expected one of {', '.join(ENTITY_KINDS)}")
    if not isinstance(data, Mapping):
        raise ValidationError({"_schema": [f"The {kind} must be a JSON object."]})
    if _too_deep(data):
        raise ValidationError({"_schema": [f"The {kind} is nested deeper than {MAX_DEPTH} levels."]})
    _SCHEMAS[kind].load(data)  # validation only: the result is rebuilt from the input

    entity = copy.deepcopy(dict(data))
    if kind == "event":
        event_id, entity_id, order_id = entity["id"], entity["id"], None
    elif kind == "order":
        details = entity["order_details"]
        event_id, entity_id, order_id = entity["event"]["id"], details["id"], details["id"]
    else:
        event_id, entity_id, order_id = entity["event_id"], entity["id"], entity["order_id"]
    # An agreeing event_id the platform sent stays as it was sent (e.g. "12" next to 12).
    if entity.get("event_id") is None:
        entity["event_id"] = event_id
    return LoadedEntity(
        kind=kind,
        entity=entity,
        entity_id=id_text(entity_id),
        event_id=id_text(event_id),
        order_id=None if order_id is None else id_text(order_id),
    )
