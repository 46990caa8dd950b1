"""Entity schemas: what is required, typed, passed through and normalised."""

import copy
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.entities import ENTITY_KINDS, AttendeeSchema, EventSchema, LoadedEntity, OrderSchema, load_entity

# Spelled out here, not imported, so a wrong list in the module fails these tests.
EVENT_STATUSES = ["draft", "live", "cancelled", "done", "deleted"]
ORDER_STATUSES = [
    "active",
    "organizer_accepted_cancellation",
    "organizer_cancelled",
    "pending_organizer_approval",
    "pending_organizer_review",
    "denied",
    "removed",
    "attendee_accepted_cancellation",
]
ATTENDEE_STATUSES = ["active", "inactive"]
TICKET_STATUSES = ["pending", "valid", "cancelled", "checked"]


def full_event():
    """An EventsIdEditGetResponse with every documented group filled."""
    return {
        "id": 3,
        "user_id": 11,
        "contact_detail_id": 12,
        "location_id": 13,
        "email_attachment_id": "att-1",
        "title": "Summit",
        "organizer_name": "ACME",
        "description": "<p>desc</p>",
        "short_description": "short",
        "short_name": "summit-2024",
        "comment": "",
        "venue_address": "Main St 1",
        "venue_name": "Hall",
        "start_date": "2024-05-01 10:00:00",
        "end_date": "2024-05-01T18:00:00+02:00",
        "created_date": "2024-01-01",
        "update_date": "2024-01-02",
        "draft_date": "2024-01-01",
        "live_date": None,
        "deletion_date": None,
        "cancelled_date": None,
        "is_deleted": "0",
        "duplicate_email_detection": False,
        "has_manual_approve": True,
        "ticket_option": False,
        "is_publishable": True,
        "has_order_with_booking_approval": False,
        "has_coupons": False,
        "has_access_codes": True,
        "show_bank_transfer": False,
        "readonly_prefill": False,
        "type": "public",
        "event_type": "conference",
        "bank_transfer_period": "7",
        "booking_approval": "none",
        "total_event_capacity": "100",
        "status": "live",
        "total_amount": 1234.5,
        "amount": 10,
        "total_revenue": 0,
        "participants_count": 42,
        "fees_type": 1,
        "vat_option": 2,
        "vat_option_text": "incl. VAT",
        "creation_status": 4,
        "image_shape_type": "square",
        "image": "https://img/1.png",
        "image_cover": "",
        "image_preview_url": "https://img/1s.png",
        "image_id": "img-1",
        "image_cover_id": 77,
        "image_cover_preview_url": "",
        "email_attachments": "[]",
        "demo_screen": [],
        "external_user_id": "crm-user-1",
        "address": {
            "id": 5,
            "place_id": "ChIJ",
            "latitude": "52.52",
            "longitude": "13.40",
            "street_address": "Main St 1",
            "street_number": "1",
            "route": "Main St",
            "city": "Berlin",
            "country": "DE",
            "timezone_id": "Europe/Berlin",
            "postcode": "10115",
            "administrative_area_level_1": "Berlin",
            "sublocality_level_1": "Mitte",
            "formatted_address": "Main St 1, Berlin",
            "timezone_offset": 7200,
        },
        "questions": {
            "buyer_questions": {"id": 1, "default_questions": ["first_name"], "additional_questions": []},
            "attendee_questions": {"id": "2", "default_questions": [], "additional_questions": [{"x": 1}]},
        },
        "contact": {"name": "N", "email": "n@example.org", "phone": "", "organization": "O", "organizer_id": "9"},
        "terms": {"type": "default"},
        "event_attributes": {
            "attributes": [],
            "templates": [
                {"controlling": True, "id": 1, "name": "t", "type": 2, "default": False, "template": True, "data": "{}"}
            ],
        },
        "ticket_limitation": {"min": "1", "max": "10"},
        "event_settings": {
            "custom_checkout_text": {"de": "Hallo", "en": "Hello"},
            "has_white_labels": 0,
            "payment_bank_transfer": 1,
            "payment_credit_card": 1,
            "payment_paypal": 0,
        },
        "ticket_categories": [
            {
                "id": "tc-1",
                "name": "Standard",
                "description": "",
                "amount": 100,
                "price": 19.99,
                "vat": 19,
                "vat_percent": 19,
                "max": 10,
                "min": 1,
                "show_remaining_capacity": True,
                "hide_ticket_category": False,
                "is_featured": False,
                "is_ended": False,
                "start_date": "2024-01-01",
                "relative_start_date": "1",
                "relative_start_date_type": "days",
                "relative_end_date": "0",
                "relative_end_date_type": "hours",
                "display_order": "1",
                "available_amount": 58,
                "taken_amount": "42",
                "ticket_price": 19.99,
                "ticket_fees": 0.99,
                "max_available_amount": 10,
                "min_available_amount": 1,
            }
        ],
        "_links": {"self": {"href": "https://api/v1/events/3/edit"}},
    }


def full_order():
    """An OrdersIdGetResponse with every documented group filled."""
    return {
        "contact_center": False,
        "event": {
            "id": "3",
            "title": "Summit",
            "start_date": "2024-05-01 10:00:00",
            "end_date": "2024-05-01 18:00:00",
            "event_type": "conference",
            "vat_option": 2,
            "booking_approval": "none",
            "status": "live",
            "ticket_categories": [
                {"id": 1, "name": "Std", "price": 1999, "vat": 19, "vat_percent": 19, "organizer_price": 1900}
            ],
        },
        "order_details": {
            "id": "42",
            "member_id": "m-1",
            "invoice_id": "inv-1",
            "cancellation_invoice_id": None,
            "salutation": "1",
            "title": "",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company_name": "",
            "email": "ada@example.org",
            "street": "Main St",
            "house_num": "1",
            "city": "Berlin",
            "zip": "10115",
            "country": {"de": "Deutschland", "en": "Germany"},
            "status": "active",
            "cancellation_date": None,
            "removed_date": None,
            "regenerate_requested_date": None,
            "booking_approval_date": None,
            "organizer_comment": "",
            "total_coupon_discount": 0,
            "promotion_code": "",
            "access_code": "",
            "buyer_hash": "abc",
            "buyer_uploaded_files_answers": False,
            "attendees": [
                {
                    "id": "7",
                    "member_id": "m-2",
                    "status": "active",
                    "first_name": "Bob",
                    "last_name": "B",
                    "email": "bob@example.org",
                    "country": {"de": "Deutschland", "en": "Germany"},
                    "ticket": {
                        "id": "t-7",
                        "status": "valid",
                        "event_ticket_id": 1,
                        "custom_price": False,
                        "pdf_link": "https://x/pdf",
                        "name_tag_link": "https://x/tag",
                        "passbook_link": "https://x/pass",
                        "checkin_link": "https://x/checkin",
                    },
                    "answers": [
                        {"attendee_id": "7", "id": 1, "answer": "yes", "question": "Vegan?", "display_type": "text"}
                    ],
                }
            ],
            "buyer_answers": [{"question": "Q", "answer": "A"}],
            "payment": {
                "amount": "19.99",
                "method": "paypal",
                "payment_date": "2024-04-01",
                "booking_date": "2024-04-01",
                "status": "paid",
                "transaction_fees": {"paypal": 0.5},
                "original_tickets": {
                    "tickets_archive_url": "https://x/t.zip",
                    "nametags_archive_url": "https://x/n.zip",
                    "tickets_archive_zipped": True,
                    "nametags_archive_zipped": False,
                    "passbook_link": [],
                },
                "expected_attachments_link": [],
                "invoice_file_url": "https://x/inv.pdf",
                "cancellation_invoice_link": None,
            },
            "answers_salutation_translations": {"1": "Herr", "2": "Frau"},
            "answer_title_translations": {"1": "Dr.", "2": "Prof."},
        },
        "cancellation_invoice": "",
        "invoice_details": {"use_company_name": False},
        "external_customer_id": "CRM-0001",
        "_links": {"self": {"href": "https://api/v1/orders/42"}},
    }


def attendee_entity():
    return {
        "id": 7,
        "status": "active",
        "order_id": 42,
        "event_id": 3,
        "first_name": "Bob",
        "ticket": {"id": "t-7", "status": "checked", "event_ticket_id": 1, "custom_price": False},
        "answers": [],
    }


BUILDERS = {"event": full_event, "order": full_order, "attendee": attendee_entity}


def set_path(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def drop_path(data, path):
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


def error_at(kind, data, path):
    """Load and return the messages found at ``path``; fail if there are none."""
    with pytest.raises(ValidationError) as info:
        load_entity(kind, data)
    messages = info.value.messages
    for key in path:
        assert key in messages, f"no error at {path!r}: {info.value.messages!r}"
        messages = messages[key]
    return messages


# --- whole documented payloads -----------------------------------------------------


@pytest.mark.parametrize("kind", ["event", "order", "attendee"])
def test_full_documented_payload_loads_unchanged_plus_event_id(kind):
    data = BUILDERS[kind]()
    loaded = load_entity(kind, data)
    expected = dict(data)
    expected.setdefault("event_id", {"event": 3, "order": "3", "attendee": 3}[kind])
    assert loaded.entity == expected
    assert loaded.kind == kind


def test_loaded_entity_ids():
    assert (load_entity("event", full_event()).entity_id, load_entity("event", full_event()).order_id) == ("3", None)
    order = load_entity("order", full_order())
    assert (order.entity_id, order.event_id, order.order_id) == ("42", "3", "42")
    att = load_entity("attendee", attendee_entity())
    assert (att.entity_id, att.event_id, att.order_id) == ("7", "3", "42")


def test_loaded_entity_is_frozen():
    loaded = load_entity("event", full_event())
    assert isinstance(loaded, LoadedEntity)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.entity_id = "other"


def test_entity_kinds():
    assert ENTITY_KINDS == ("event", "order", "attendee")


def test_unknown_kind_is_a_value_error():
    with pytest.raises(ValueError, match="contact"):
        load_entity("contact", {"id": 1})


# --- statuses ----------------------------------------------------------------------


@pytest.mark.parametrize("status", EVENT_STATUSES)
def test_event_status_accepted(status):
    assert load_entity("event", {"id": 1, "status": status}).entity["status"] == status


@pytest.mark.parametrize("status", ["published", "Live", "", "active", None, 1])
def test_event_status_refused(status):
    error_at("event", {"id": 1, "status": status}, ["status"])


@pytest.mark.parametrize("status", ORDER_STATUSES)
def test_order_status_accepted(status):
    data = {"order_details": {"id": 1, "status": status}, "event": {"id": 2}}
    assert load_entity("order", data).entity["order_details"]["status"] == status


@pytest.mark.parametrize("status", ["cancelled", "ACTIVE", "", "live", None])
def test_order_status_refused(status):
    data = {"order_details": {"id": 1, "status": status}, "event": {"id": 2}}
    error_at("order", data, ["order_details", "status"])


@pytest.mark.parametrize("status", ATTENDEE_STATUSES)
def test_attendee_status_accepted_standalone_and_in_order(status):
    assert load_entity("attendee", dict(attendee_entity(), status=status)).entity["status"] == status
    order = set_path(full_order(), ["order_details", "attendees", 0, "status"], status)
    load_entity("order", order)


@pytest.mark.parametrize("status", ["pending", "valid", "Active", ""])
def test_attendee_status_refused_standalone_and_in_order(status):
    error_at("attendee", dict(attendee_entity(), status=status), ["status"])
    order = set_path(full_order(), ["order_details", "attendees", 0, "status"], status)
    error_at("order", order, ["order_details", "attendees", 0, "status"])


@pytest.mark.parametrize("status", TICKET_STATUSES)
def test_ticket_status_accepted(status):
    att = set_path(attendee_entity(), ["ticket", "status"], status)
    assert load_entity("attendee", att).entity["ticket"]["status"] == status
    order = set_path(full_order(), ["order_details", "attendees", 0, "ticket", "status"], status)
    load_entity("order", order)


@pytest.mark.parametrize("status", ["checked_in", "active", "VALID", ""])
def test_ticket_status_refused(status):
    att = set_path(attendee_entity(), ["ticket", "status"], status)
    error_at("attendee", att, ["ticket", "status"])
    order = set_path(full_order(), ["order_details", "attendees", 0, "ticket", "status"], status)
    error_at("order", order, ["order_details", "attendees", 0, "ticket", "status"])


# --- required identifiers ----------------------------------------------------------


@pytest.mark.parametrize(
    "kind, path",
    [
        ("event", ["id"]),
        ("event", ["status"]),
        ("order", ["order_details", "id"]),
        ("order", ["order_details", "status"]),
        ("order", ["event", "id"]),
        ("order", ["order_details"]),
        ("order", ["event"]),
        ("attendee", ["id"]),
        ("attendee", ["status"]),
        ("attendee", ["order_id"]),
        ("attendee", ["event_id"]),
    ],
)
def test_missing_identifier_refused_at_its_path(kind, path):
    messages = error_at(kind, drop_path(BUILDERS[kind](), path), path)
    assert messages == ["Missing data for required field."]


@pytest.mark.parametrize(
    "kind, path",
    [("event", ["id"]), ("order", ["order_details", "id"]), ("order", ["event", "id"]), ("attendee", ["order_id"])],
)
def test_null_identifier_refused(kind, path):
    error_at(kind, set_path(BUILDERS[kind](), path, None), path)


@pytest.mark.parametrize("data", [[], "event", 5, None, [{"id": 1, "status": "live"}]])
@pytest.mark.parametrize("kind", ["event", "order", "attendee"])
def test_not_an_object_refused(kind, data):
    with pytest.raises(ValidationError) as info:
        load_entity(kind, data)
    assert "_schema" in info.value.messages


def test_nested_not_an_object_refused():
    error_at("order", dict(full_order(), order_details=["x"]), ["order_details"])
    error_at("event", dict(full_event(), address="Berlin"), ["address"])


# --- documented types --------------------------------------------------------------

WRONG_TYPES = [
    ("event", ["title"], 5),
    ("event", ["has_coupons"], "true"),
    ("event", ["has_coupons"], 1),
    ("event", ["total_amount"], "12"),
    ("event", ["total_amount"], True),
    ("event", ["is_deleted"], False),
    ("event", ["start_date"], 1714550400),
    ("event", ["demo_screen"], {}),
    ("event", ["external_user_id"], 5),
    ("event", ["user_id"], 1.5),
    ("event", ["address", "timezone_offset"], "7200"),
    ("event", ["address", "latitude"], 52.5),
    ("event", ["questions", "buyer_questions", "default_questions", 0], 1),
    ("event", ["contact"], "n@example.org"),
    ("event", ["contact", "organizer_id"], ""),
    ("event", ["event_attributes", "templates", 0, "controlling"], "yes"),
    ("event", ["event_settings", "payment_paypal"], "1"),
    ("event", ["event_settings", "custom_checkout_text", "de"], 1),
    ("event", ["ticket_categories"], {"id": 1}),
    ("event", ["ticket_categories", 0, "is_featured"], "no"),
    ("event", ["ticket_categories", 0, "price"], "19.99"),
    ("event", ["ticket_categories", 0, "taken_amount"], 42),
    ("event", ["ticket_limitation", "max"], 10),
    ("event", ["_links", "self", "href"], 1),
    ("order", ["contact_center"], "no"),
    ("order", ["invoice_details", "use_company_name"], 0),
    ("order", ["external_customer_id"], 5),
    ("order", ["external_customer_id"], "x" * 256),
    ("order", ["event", "vat_option"], "19"),
    ("order", ["event", "vat_option"], 1.5),
    ("order", ["event", "ticket_categories", 0, "price"], "1999"),
    ("order", ["order_details", "total_coupon_discount"], 1.5),
    ("order", ["order_details", "first_name"], ["Ada"]),
    ("order", ["order_details", "country", "de"], 1),
    ("order", ["order_details", "attendees"], {"id": 1}),
    ("order", ["order_details", "attendees", 0], None),
    ("order", ["order_details", "attendees", 0, "ticket", "custom_price"], "false"),
    ("order", ["order_details", "attendees", 0, "ticket", "event_ticket_id"], True),
    ("order", ["order_details", "attendees", 0, "answers", 0, "answer"], 3),
    ("order", ["order_details", "payment", "amount"], 19.99),
    ("order", ["order_details", "payment", "transaction_fees"], []),
    ("order", ["order_details", "payment", "original_tickets", "tickets_archive_zipped"], "no"),
    ("order", ["order_details", "answers_salutation_translations", "1"], 1),
    ("order", ["order_details", "buyer_uploaded_files_answers"], "false"),
    ("attendee", ["first_name"], 1),
    ("attendee", ["ticket"], "t-7"),
    ("attendee", ["ticket", "custom_price"], 0),
    ("attendee", ["answers"], "none"),
]


@pytest.mark.parametrize("kind, path, value", WRONG_TYPES)
def test_wrong_documented_type_refused(kind, path, value):
    error_at(kind, set_path(BUILDERS[kind](), path, value), path)


@pytest.mark.parametrize(
    "kind, path",
    [
        ("event", ["title"]),
        ("event", ["address"]),
        ("event", ["ticket_categories"]),
        ("event", ["has_coupons"]),
        ("event", ["external_user_id"]),
        ("order", ["external_customer_id"]),
        ("order", ["order_details", "attendees"]),
        ("order", ["order_details", "payment"]),
        ("attendee", ["ticket"]),
        ("attendee", ["ticket", "status"]),
    ],
)
def test_optional_field_may_be_null(kind, path):
    entity = load_entity(kind, set_path(BUILDERS[kind](), path, None)).entity
    for key in path:
        entity = entity[key]
    assert entity is None


# --- ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [(3, "3"), ("3", "3"), (0, "0"), ("evt_9f8e", "evt_9f8e"), (12.0, "12"), (10**18, str(10**18)), ("x" * 64, "x" * 64)],
)
def test_id_as_number_or_string(value, text):
    loaded = load_entity("event", {"id": value, "status": "live"})
    assert loaded.entity_id == text
    assert loaded.event_id == text
    assert loaded.entity["id"] is value  # kept as sent
    assert loaded.entity["event_id"] is value


@pytest.mark.parametrize("value", [True, False, 1.5, "", "   ", [], {}, float("nan"), float("inf"), "x" * 65])
def test_invalid_id_refused(value):
    error_at("event", {"id": value, "status": "live"}, ["id"])
    error_at("order", {"order_details": {"id": value, "status": "active"}, "event": {"id": 1}}, ["order_details", "id"])
    error_at("order", {"order_details": {"id": 1, "status": "active"}, "event": {"id": value}}, ["event", "id"])
    error_at("attendee", dict(attendee_entity(), order_id=value), ["order_id"])


def test_optional_ids_are_checked_too():
    error_at("event", dict(full_event(), location_id=True), ["location_id"])
    error_at("order", set_path(full_order(), ["order_details", "invoice_id"], ""), ["order_details", "invoice_id"])


# --- pass-through ------------------------------------------------------------------


def test_unknown_fields_pass_through_at_every_level():
    order = full_order()
    order["crm_tag"] = {"deep": [1, {"x": None}]}
    order["event"]["venue"] = "Hall"
    order["order_details"]["loyalty_points"] = 12.5
    order["order_details"]["attendees"][0]["badge"] = "VIP"
    order["order_details"]["attendees"][0]["ticket"]["seat"] = {"row": 1}
    order["order_details"]["attendees"][0]["answers"][0]["score"] = 3
    order["order_details"]["payment"]["provider_ref"] = "PAY-1"
    entity = load_entity("order", copy.deepcopy(order)).entity
    assert entity["crm_tag"] == {"deep": [1, {"x": None}]}
    assert entity["event"]["venue"] == "Hall"
    assert entity["order_details"]["loyalty_points"] == 12.5
    attendee = entity["order_details"]["attendees"][0]
    assert attendee["badge"] == "VIP"
    assert attendee["ticket"]["seat"] == {"row": 1}
    assert attendee["answers"][0]["score"] == 3
    assert entity["order_details"]["payment"]["provider_ref"] == "PAY-1"
    assert {k: v for k, v in entity.items() if k != "event_id"} == order


@pytest.mark.parametrize("kind, schema", [("event", EventSchema), ("order", OrderSchema), ("attendee", AttendeeSchema)])
def test_schemas_used_directly_load_to_the_input(kind, schema):
    # Other modules may load with the schema classes: unknown fields must survive there too.
    data = BUILDERS[kind]()
    data["x_unknown"] = {"a": [1, None]}
    assert schema().load(copy.deepcopy(data)) == data


def test_values_are_not_reformatted():
    event = dict(full_event(), start_date="01.05.2024 10:00", total_amount=12.0, amount=7)
    entity = load_entity("event", event).entity
    assert entity["start_date"] == "01.05.2024 10:00"
    assert type(entity["total_amount"]) is float
    assert type(entity["amount"]) is int
    assert entity["address"]["latitude"] == "52.52"


@pytest.mark.parametrize("value", ["crm-user-1", "", "  padded  ", "Ünïcødé/42", "0001"])
def test_external_user_id_passes_through(value):
    assert load_entity("event", dict(full_event(), external_user_id=value)).entity["external_user_id"] == value


@pytest.mark.parametrize("value", ["CRM-0001", "", "x" * 255, " 007 "])
def test_external_customer_id_passes_through(value):
    assert load_entity("order", dict(full_order(), external_customer_id=value)).entity["external_customer_id"] == value


def test_input_is_not_mutated_and_output_is_a_copy():
    order = full_order()
    before = copy.deepcopy(order)
    entity = load_entity("order", order).entity
    assert order == before  # no event_id added to the caller's dict
    entity["order_details"]["attendees"][0]["first_name"] = "changed"
    assert order["order_details"]["attendees"][0]["first_name"] == "Bob"


# --- event_id normalisation --------------------------------------------------------


def test_event_id_added_for_each_kind():
    assert load_entity("event", {"id": "e-1", "status": "draft"}).entity["event_id"] == "e-1"
    order = {"order_details": {"id": 1, "status": "active"}, "event": {"id": 99}}
    assert load_entity("order", order).entity["event_id"] == 99
    assert load_entity("attendee", attendee_entity()).entity["event_id"] == 3


@pytest.mark.parametrize("given", [3, "3", 3.0, None])
def test_agreeing_event_id_kept(given):
    loaded = load_entity("event", {"id": 3, "status": "live", "event_id": given})
    assert loaded.event_id == "3"
    assert loaded.entity["event_id"] == (3 if given is None else given)
    order = {"order_details": {"id": 1, "status": "active"}, "event": {"id": "3"}, "event_id": given}
    assert load_entity("order", order).event_id == "3"


@pytest.mark.parametrize("given", [4, "4", "03", "e-3"])
def test_disagreeing_event_id_refused(given):
    error_at("event", {"id": 3, "status": "live", "event_id": given}, ["event_id"])
    order = {"order_details": {"id": 1, "status": "active"}, "event": {"id": 3}, "event_id": given}
    error_at("order", order, ["event_id"])


def test_invalid_top_level_event_id_refused():
    error_at("event", {"id": 3, "status": "live", "event_id": True}, ["event_id"])


def test_errors_from_several_fields_are_reported_together():
    with pytest.raises(ValidationError) as info:
        load_entity("order", {"order_details": {"status": "x"}, "event": {"id": 1}, "event_id": 2, "contact_center": 1})
    messages = info.value.messages
    assert set(messages) == {"order_details", "event_id", "contact_center"}
    assert set(messages["order_details"]) == {"id", "status"}


# --- properties --------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# "x_" keeps generated keys clear of every documented field name.
extra_keys = st.dictionaries(st.text(min_size=1, max_size=12).map(lambda s: "x_" + s), json_values, max_size=5)
# an id is an integer or non-blank text without NUL (the ledger keeps ids as PostgreSQL text)
ids = st.integers(min_value=0, max_value=10**12) | st.text(min_size=1, max_size=64).filter(
    lambda text: text.strip() and "\x00" not in text)


@settings(max_examples=75, deadline=None)
@given(top=extra_keys, details=extra_keys, attendee=extra_keys, address=extra_keys)
def test_extra_unknown_keys_survive_unchanged(top, details, attendee, address):
    order = full_order()
    order.update(top)
    order["order_details"].update(details)
    order["order_details"]["attendees"][0].update(attendee)
    entity = load_entity("order", copy.deepcopy(order)).entity
    assert {k: v for k, v in entity.items() if k != "event_id"} == order

    event = full_event()
    event["address"].update(address)
    assert load_entity("event", copy.deepcopy(event)).entity["address"] == event["address"]


@settings(max_examples=75, deadline=None)
@given(status=st.sampled_from(ORDER_STATUSES), order_id=ids, event_id=ids,
       ticket=st.sampled_from(TICKET_STATUSES), attendee=st.sampled_from(ATTENDEE_STATUSES))
def test_any_valid_order_loads(status, order_id, event_id, ticket, attendee):
    order = full_order()
    order["order_details"].update(id=order_id, status=status)
    order["order_details"]["attendees"][0]["status"] = attendee
    order["order_details"]["attendees"][0]["ticket"]["status"] = ticket
    order["event"]["id"] = event_id
    loaded = load_entity("order", order)
    assert loaded.entity_id == loaded.order_id == str(order_id)
    assert loaded.event_id == str(event_id)
    assert loaded.entity["event_id"] == event_id


@settings(max_examples=75, deadline=None)
@given(status=st.text(max_size=40).filter(lambda s: s not in EVENT_STATUSES))
def test_any_other_event_status_refused(status):
    error_at("event", {"id": 1, "status": status}, ["status"])


@pytest.mark.parametrize("kind, entity", [
    ("event", {"id": "7\x00", "status": "live"}),
    ("order", {"order_details": {"id": 1, "status": "active"}, "event": {"id": "\x00"}}),
])
def test_ids_with_nul_are_refused(kind, entity):
    with pytest.raises(ValidationError):
        load_entity(kind, entity)


def test_absurdly_deep_entities_are_refused_without_recursion_errors():
    deep = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValidationError) as raised:
        load_entity("event", {"id": 1, "status": "live", "custom": deep})
    assert "deeper" in str(raised.value.messages)
