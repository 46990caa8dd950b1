"""Trigger bodies: type, entity, scope ids, trigger id and occurred_at."""

import copy
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.triggers import TriggerSchema, validate_trigger

RECORD_KEYS = {
    "trigger_id", "type", "entity_kind", "entity_id", "event_id", "event_guide_id",
    "organization_id", "occurred_at", "entity", "order_id",
}


def order_entity():
    return {"order_details": {"id": 42, "status": "active", "note": "kept"}, "event": {"id": "3"}, "extra": [1]}


def body(**overrides):
    data = {"type": "order_created", "organization_id": 7, "entity": order_entity()}
    data.update(overrides)
    return data


def errors(data):
    with pytest.raises(ValidationError) as info:
        validate_trigger(data)
    return info.value.messages


# --- the record --------------------------------------------------------------------


def test_order_trigger_record():
    record = validate_trigger(body(trigger_id="t-1", occurred_at="2024-05-01T12:00:00+02:00"))
    assert record == {
        "trigger_id": "t-1",
        "type": "order_created",
        "entity_kind": "order",
        "entity_id": "42",
        "event_id": "3",
        "event_guide_id": None,
        "organization_id": 7,
        "occurred_at": "2024-05-01T10:00:00.000000+00:00",
        "entity": dict(order_entity(), event_id="3"),
        "order_id": "42",
    }


def test_minimal_record_defaults():
    record = validate_trigger(body())
    assert set(record) == RECORD_KEYS
    assert record["trigger_id"] is None
    assert record["occurred_at"] is None
    assert record["event_guide_id"] is None


def test_event_trigger_record():
    record = validate_trigger(
        {"type": "on_event_updated", "organization_id": 1, "entity": {"id": 3, "status": "live", "external_user_id": "u-1"}}
    )
    assert (record["type"], record["entity_kind"], record["entity_id"]) == ("event_updated", "event", "3")
    assert (record["event_id"], record["order_id"]) == ("3", None)
    assert record["entity"] == {"id": 3, "status": "live", "external_user_id": "u-1", "event_id": 3}


def test_attendee_trigger_record():
    entity = {"id": "a-7", "status": "active", "order_id": 42, "event_id": 3, "ticket": {"status": "checked"}}
    record = validate_trigger({"type": "attendee_checkin", "organization_id": 1, "entity": entity})
    assert (record["entity_kind"], record["entity_id"], record["order_id"], record["event_id"]) == (
        "attendee", "a-7", "42", "3",
    )


def test_input_entity_not_mutated():
    data = body()
    before = copy.deepcopy(data)
    validate_trigger(data)
    assert data == before


def test_schema_class_loads_the_same_record():
    assert TriggerSchema().load(body()) == validate_trigger(body())


# --- type --------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [("order_cancelled", "order_cancelled"), ("on_order_updated", "order_updated")])
def test_type_normalised(value, expected):
    assert validate_trigger(body(type=value))["type"] == expected


def test_unknown_type_refused_alone():
    messages = errors(body(type="order_paid"))
    assert set(messages) == {"type"}  # the entity cannot be checked without a type
    assert "order_created" in messages["type"][0]


def test_entity_loaded_as_the_kind_of_its_type():
    messages = errors(body(type="event_created"))  # an order entity under an event type
    assert set(messages["entity"]) >= {"id", "status"}


# --- required fields ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["type", "entity", "organization_id"])
def test_required_field_missing(field):
    data = body()
    del data[field]
    assert errors(data)[field] == ["Missing data for required field."]


@pytest.mark.parametrize("data", [[], "x", None])
def test_body_not_an_object(data):
    assert "_schema" in errors(data)


def test_unknown_top_level_field_refused():
    assert "organisation_id" in errors(body(organisation_id=7))


# --- entity ------------------------------------------------------------------------


def test_entity_errors_nested_under_entity():
    entity = order_entity()
    del entity["order_details"]["id"]
    entity["event"]["id"] = True
    messages = errors(body(entity=entity))
    assert messages["entity"]["order_details"]["id"] == ["Missing data for required field."]
    assert "id" in messages["entity"]["event"]


def test_entity_errors_reported_with_other_field_errors():
    entity = order_entity()
    entity["order_details"]["status"] = "paid"
    messages = errors(body(entity=entity, organization_id=0))
    assert set(messages) == {"entity", "organization_id"}


@pytest.mark.parametrize("entity", [None, [], "order", 42])
def test_entity_must_be_an_object(entity):
    assert "entity" in errors(body(entity=entity))


# --- organization_id ---------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 7, 2**31 - 1])
def test_organization_id_accepted(value):
    assert validate_trigger(body(organization_id=value))["organization_id"] == value


@pytest.mark.parametrize("value", [0, -1, True, "7", 7.5, 7.0, None, 2**31])
def test_organization_id_refused(value):
    assert "organization_id" in errors(body(organization_id=value))


# --- event_id and event_guide_id ---------------------------------------------------


@pytest.mark.parametrize("given", [3, "3", 3.0, None])
def test_event_id_agreeing_or_absent(given):
    assert validate_trigger(body(event_id=given))["event_id"] == "3"


def test_event_id_taken_from_entity_when_absent():
    assert "event_id" not in body()
    assert validate_trigger(body())["event_id"] == "3"


@pytest.mark.parametrize("given", [4, "4", "03"])
def test_event_id_disagreeing_refused(given):
    messages = errors(body(event_id=given))
    assert set(messages) == {"event_id"}


def test_event_id_refused_when_entity_has_a_disagreeing_one():
    entity = dict(order_entity(), event_id=4)
    assert "event_id" in errors(body(entity=entity))["entity"]


@pytest.mark.parametrize("value", [True, "", 1.5, {"id": 3}])
def test_event_id_invalid(value):
    assert "event_id" in errors(body(event_id=value))


@pytest.mark.parametrize("value, expected", [(5, "5"), ("g-5", "g-5"), (None, None)])
def test_event_guide_id(value, expected):
    assert validate_trigger(body(event_guide_id=value))["event_guide_id"] == expected


@pytest.mark.parametrize("value", [True, "", 2.5])
def test_event_guide_id_invalid(value):
    assert "event_guide_id" in errors(body(event_guide_id=value))


# --- trigger_id --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "t-1", "A-z_0.9:x", "x" * 64, "0198f3b2-7c1e-7d3a-9f00-1b2c3d4e5f60"])
def test_trigger_id_accepted(value):
    assert validate_trigger(body(trigger_id=value))["trigger_id"] == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a/b", "ä", "a\n", "\na", "t#1", 5])
def test_trigger_id_refused(value):
    assert "trigger_id" in errors(body(trigger_id=value))


# --- occurred_at -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000000+00:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000000+00:00"),
        ("2024-05-01T10:00:00.123456-05:30", "2024-05-01T15:30:00.123456+00:00"),
        (dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc), "2024-05-01T10:00:00.000000+00:00"),
        (None, None),
    ],
)
def test_occurred_at_in_utc(value, expected):
    assert validate_trigger(body(occurred_at=value))["occurred_at"] == expected


@pytest.mark.parametrize("value", ["2024-05-01T10:00:00", "2024-05-01", dt.datetime(2024, 5, 1, 10)])
def test_naive_occurred_at_refused(value):
    assert "occurred_at" in errors(body(occurred_at=value))


@pytest.mark.parametrize("value", ["yesterday", "", 1714550400, "2024-13-01T00:00:00Z"])
def test_garbage_occurred_at_refused(value):
    assert "occurred_at" in errors(body(occurred_at=value))


@given(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9998, 12, 31),
        timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                   dt.timezone(dt.timedelta(hours=-8))]),
    )
)
def test_occurred_at_keeps_the_instant(moment):
    text = validate_trigger(body(occurred_at=moment.isoformat()))["occurred_at"]
    parsed = dt.datetime.fromisoformat(text)
    assert parsed == moment
    assert parsed.utcoffset() == dt.timedelta(0)
    assert len(text) == len("2024-05-01T10:00:00.000000+00:00")
