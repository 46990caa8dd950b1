"""What the API tests share besides tenants: a platform key, a stand-in publisher, doo's error envelope."""

import json

from ground.crypto import digest
from ground.crypto import new_secret
from storage import tenancy
from storage.db import utcnow


def create_platform_key(engine):
    key = new_secret("dp_")
    with engine.begin() as conn:
        tenancy.create_platform_key(conn, "platform", digest(key), utcnow())
    return key


class RecordingPublisher:
    """Stands in for the publisher (workers.producer.StreamPublisher): keeps what it was given,
    sends nothing. ``triggers`` is the list of records given to ``trigger``."""

    def __init__(self, error=None):
        self.error = error
        self.triggers = []
        self.delivery_batches = []
        self.nudges = 0

    def trigger(self, record):
        if self.error is not None:
            raise self.error
        self.triggers.append(record)

    def deliveries(self, ids):
        if self.error is not None:
            raise self.error
        self.delivery_batches.append(list(ids))

    def nudge(self):
        if self.error is not None:
            raise self.error
        self.nudges += 1


def assert_error_envelope(response, status):
    """Every error answer: doo's envelope, response_status equal to the HTTP status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"response_status", "developer_message", "user_message", "errors"}, body
    assert body["response_status"] == status
    assert isinstance(body["developer_message"], str) and body["developer_message"]
    assert isinstance(body["user_message"], str) and body["user_message"]
    assert isinstance(body["errors"], dict)
    return body
