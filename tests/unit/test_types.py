"""Webhook types: the list, the on_ prefix, resources and placeholders."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from schemas.types import PLACEHOLDERS, RESOURCES, TYPES, WebhookType, normalize_type

EXPECTED_TYPES = {
    "event_created": "event",
    "event_updated": "event",
    "event_removed": "event",
    "order_created": "order",
    "order_updated": "order",
    "order_removed": "order",
    "order_cancelled": "order",
    "attendee_pending": "attendee",
    "attendee_validated": "attendee",
    "attendee_cancelled": "attendee",
    "attendee_checkin": "attendee",
}


class _Body(Schema):
    type = WebhookType(required=True)


def test_types_table():
    assert TYPES == EXPECTED_TYPES


def test_resources_table():
    assert RESOURCES == {"events": "event", "orders": "order", "attendees": "attendee"}


def test_placeholders_table():
    assert PLACEHOLDERS == {
        "event": ("%EVENT_ID%", "%ORGANIZATION_ID%"),
        "order": ("%ORDER_ID%", "%EVENT_ID%", "%ORGANIZATION_ID%"),
        "attendee": ("%ATTENDEE_ID%", "%ORDER_ID%", "%EVENT_ID%", "%ORGANIZATION_ID%"),
    }


def test_every_kind_has_a_resource_and_placeholders():
    kinds = set(EXPECTED_TYPES.values())
    assert set(RESOURCES.values()) == kinds
    assert set(PLACEHOLDERS) == kinds


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_canonical_name_kept(name):
    assert normalize_type(name) == name


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_on_prefix_dropped(name):
    assert normalize_type("on_" + name) == name


@pytest.mark.parametrize(
    "value",
    [
        "on_on_event_created",  # only one prefix is dropped
        "event_create",
        "Event_Created",
        "ON_event_created",
        " order_created",
        "order_created ",
        "event_created_92bd9a53281981160c955e339304b3e5",  # stored GraphQL key, not an input
        "contact_created",
        "on_",
        "",
    ],
)
def test_unknown_type_refused_with_the_valid_list(value):
    with pytest.raises(ValueError) as info:
        normalize_type(value)
    message = str(info.value)
    assert repr(value) in message
    for name in EXPECTED_TYPES:
        assert name in message


@pytest.mark.parametrize("value", [None, 5, ["event_created"]])
def test_non_string_refused(value):
    with pytest.raises(ValueError):
        normalize_type(value)


@given(st.text(max_size=30))
def test_normalize_accepts_exactly_the_types_and_their_prefixed_form(value):
    valid = value in EXPECTED_TYPES or (value.startswith("on_") and value[3:] in EXPECTED_TYPES)
    if valid:
        assert normalize_type(value) in EXPECTED_TYPES
    else:
        with pytest.raises(ValueError):
            normalize_type(value)


def test_field_loads_the_canonical_name():
    assert _Body().load({"type": "on_attendee_checkin"}) == {"type": "attendee_checkin"}
    assert _Body().load({"type": "order_cancelled"}) == {"type": "order_cancelled"}


def test_field_error_lists_the_valid_types():
    with pytest.raises(ValidationError) as info:
        _Body().load({"type": "order_paid"})
    (message,) = info.value.messages["type"]
    assert "order_paid" in message
    assert all(name in message for name in EXPECTED_TYPES)


@pytest.mark.parametrize("value", [5, None, {"type": "event_created"}])
def test_field_refuses_non_strings(value):
    with pytest.raises(ValidationError) as info:
        _Body().load({"type": value})
    assert "type" in info.value.messages
