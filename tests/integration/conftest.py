"""Fixtures of the API tests: the app with a recording publisher, its client, tenants."""

import pytest

from app import create_app
from api_helpers import TenantFactory  # tests/integration is on sys.path (no __init__.py)


class RecordingPublisher:
    """Stands in for the Celery publisher: keeps what it was given, sends nothing."""

    def __init__(self, error=None):
        self.error = error
        self.triggers = []
        self.delivery_batches = []

    def trigger(self, record):
        if self.error is not None:
            raise self.error
        self.triggers.append(record)

    def deliveries(self, ids):
        if self.error is not None:
            raise self.error
        self.delivery_batches.append(list(ids))


@pytest.fixture
def publisher():
    return RecordingPublisher()


@pytest.fixture
def make_app(settings, publisher):
    """``make_app(max_body_bytes=2048)``: the app with some settings changed."""
    def build(publisher=publisher, **changes):
        return create_app(settings.replace(**changes), publisher=publisher)
    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tenant_factory(app, client):
    return TenantFactory(app, client)
