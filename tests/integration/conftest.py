"""Fixtures of the API tests: the app with a recording publisher, its client, tenants."""

import pytest

from app import create_app
from api_helpers import RecordingPublisher  # tests/integration is on sys.path (no __init__.py)
from api_helpers import TenantFactory


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
