"""Fixtures of the API tests: the app with a recording publisher, its client, tenants."""

import functools

import pytest

from app import create_app
from tests.support.api import RecordingPublisher
from tests.support.tenants import new_tenant


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
def ctx(app):
    """The app's services.context.Context, for calling services/ directly."""
    return app.extensions["doo_webhooks"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tenant_factory(app, client):
    """``tenant_factory()`` makes a new organization; ``tenant_factory(organization_id=...)`` joins one."""
    return functools.partial(new_tenant, app, client)
