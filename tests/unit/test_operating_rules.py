"""The plain rules behind operating deliveries: pacing, scope, receiver answers, ages, 410."""

import datetime
import json
import types

import pytest

from app.deliveries import EXCERPT_CHARS
from app.deliveries import receiver_answer
from workers import initialization
from workers.operations import parse_age

T0 = datetime.datetime(2030, 1, 1, 12, 0, 0)


def hook(hook_id=1, organization_id=1, event_id=None, guide_id=None, endpoint="https://crm.example/in"):
    return types.SimpleNamespace(id=hook_id, group_id="g", type="order_updated", endpoint=endpoint,
                                 organization_id=organization_id, group_event_id=event_id,
                                 group_event_guide_id=guide_id)


def snapshot(pk, entity_id, organization_id=1, event_id="7", guide_id=None, occurred_at=T0):
    return types.SimpleNamespace(id=pk, organization_id=organization_id, entity_kind="order", entity_id=entity_id,
                                 event_id=event_id, event_guide_id=guide_id, occurred_at=occurred_at)


@pytest.mark.parametrize("rate", [1, 7, 30, 50])
def test_the_plan_never_puts_more_than_the_rate_in_any_minute(rate):
    rows = initialization.plan([snapshot(i, str(i)) for i in range(200)], [hook()], T0, rate, T0)
    due = [row["next_attempt_at"] for row in rows]
    assert due[0] == T0 and due == sorted(due)
    for i, start in enumerate(due):  # every window of 60 s that starts at a due time
        assert sum(start <= d < start + datetime.timedelta(seconds=60) for d in due[i:]) <= rate
    # and the pace is used: the rate is reached, not just respected
    assert sum(d < T0 + datetime.timedelta(seconds=60) for d in due) == min(rate, 200)


def test_the_plan_keeps_each_snapshots_sequence_and_marks_its_rows():
    rows = initialization.plan([snapshot(5, "42", occurred_at=T0)], [hook(1), hook(2, endpoint="https://b.example")],
                               T0, 50, T0)
    assert [(r["trigger_pk"], r["hook_id"], r["source"], r["status"], r["lease_until"]) for r in rows] == [
        (5, 1, "init", "pending", None), (5, 2, "init", "pending", None)]
    assert rows[0]["sequence"] == rows[1]["sequence"] == int((T0 - datetime.datetime(1970, 1, 1)).total_seconds() * 1e6)
    assert rows[0]["ordering_key"] != rows[1]["ordering_key"]  # different endpoints never wait for each other


@pytest.mark.parametrize("scope, entity, expected", [
    ({}, {}, True),
    ({"event_id": "7"}, {}, True),
    ({"event_id": "8"}, {}, False),
    ({"guide_id": "G"}, {"guide_id": "G"}, True),
    ({"guide_id": "G"}, {}, False),
    ({}, {"organization_id": 2}, False),
])
def test_scope(scope, entity, expected):
    assert initialization.in_scope(hook(**scope), snapshot(1, "1", **entity)) is expected


def test_types_of_a_resource():
    assert initialization.types_of("order") == ["order_created", "order_updated", "order_removed", "order_cancelled"]


@pytest.mark.parametrize("excerpt, answer, rest", [
    (None, None, None),
    ('{"message":"down","description":"back soon"}', {"message": "down", "description": "back soon"}, None),
    ('{"message":"only"}', {"message": "only", "description": None}, None),
    ('{"message":{"code":7}}', {"message": '{"code": 7}', "description": None}, None),
    ('{"error":"other"}', None, '{"error":"other"}'),
    ("<html>Bad gateway</html>", None, "<html>Bad gateway</html>"),
    ('["message"]', None, '["message"]'),
])
def test_receiver_answer(excerpt, answer, rest):
    assert receiver_answer(excerpt) == (answer, rest)


def test_receiver_answer_is_cut_at_64_kib():
    assert receiver_answer("x" * 100_000) == (None, "x" * EXCERPT_CHARS)
    assert EXCERPT_CHARS == 65536
    long_json = json.dumps({"description": "y" * 100_000})
    assert receiver_answer(long_json)[0]["description"] == "y" * EXCERPT_CHARS


@pytest.mark.parametrize("text, expected", [
    ("30d", datetime.timedelta(days=30)), ("12h", datetime.timedelta(hours=12)),
    ("90m", datetime.timedelta(minutes=90)), ("45s", datetime.timedelta(seconds=45)),
    (" 2w ", datetime.timedelta(weeks=2)),
])
def test_parse_age(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1y", "1.5d", "30 days"])
def test_parse_age_refuses(text):
    with pytest.raises(ValueError):
        parse_age(text)
