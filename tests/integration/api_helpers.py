"""Helpers for the API tests: tenants with real credentials, the seeds' configuration objects.

A ``Tenant`` is built the way ``doo-webhooks admin`` builds one (organization, team,
organizer with a role, credentials whose api key and client secret are stored as
``doo_webhooks.crypto.digest``), then it gets its access token through ``POST /v1/oauth``
with the Flask test client, like any API user.
"""

import copy
import dataclasses
import itertools
import json

from doo_webhooks.crypto import digest
from doo_webhooks.crypto import new_secret
from storage import queries
from storage.db import utcnow

SEED_SECRET = "super-strong-secret"
_counter = itertools.count(1)


@dataclasses.dataclass
class Tenant:
    client: object
    engine: object
    organization_id: int
    team_id: int
    organizer_id: int
    credential_id: int
    role: str
    api_key: str
    client_id: str
    client_secret: str
    organization_name: str = None
    access_token: str = None

    def token_request(self, **overrides):
        body = {"client_id": self.client_id, "client_secret": self.client_secret,
                "grant_type": "client_credentials"}
        body.update(overrides)
        return body

    def login(self):
        response = self.client.post("/v1/oauth", json=self.token_request(), headers={"x-api-key": self.api_key})
        assert response.status_code == 200, response.get_data(as_text=True)
        self.access_token = response.get_json()["data"]["access_token"]
        return self.access_token

    def headers(self, **extra):
        headers = {"x-api-key": self.api_key, "Authorization": f"Bearer {self.access_token}"}
        headers.update(extra)
        return headers

    # --- conveniences over the API --------------------------------------------------

    def create(self, config=None, team_id=None):
        response = self.client.post(f"/v1/team/{team_id or self.team_id}/webhooks",
                                    json=config if config is not None else seed_config(),
                                    headers=self.headers())
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["data"]

    def list(self, team_id=None, **params):
        return self.client.get(f"/v1/team/{team_id or self.team_id}/webhooks", query_string=params,
                               headers=self.headers())

    def add_team(self, role=None, name=None):
        """Another team of the same organization, with this organizer as a member."""
        with self.engine.begin() as conn:
            team_id = queries.create_team(conn, self.organization_id, name, utcnow())
            queries.add_membership(conn, self.organizer_id, team_id, role or self.role)
        return team_id


class TenantFactory:
    """``tenant_factory()`` makes a new organization; ``tenant_factory(organization_id=...)`` joins one."""

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self.engine = app.extensions["doo_webhooks"].engine

    def __call__(self, role="team_admin", organization_id=None, team_id=None, login=True):
        n = next(_counter)
        now = utcnow()
        api_key, client_id, client_secret = new_secret("dk_"), new_secret("dc_")[:40], new_secret("ds_")
        with self.engine.begin() as conn:
            organization_name = None
            if organization_id is None:
                organization_name = f"Organization {n}"
                organization_id = queries.create_organization(conn, organization_name, now)
            if team_id is None:
                team_id = queries.create_team(conn, organization_id, None, now)
            organizer_id = queries.create_organizer(conn, f"organizer{n}@example.org", f"Organizer {n}", now)
            queries.add_membership(conn, organizer_id, team_id, role)
            credential_id = queries.create_credentials(conn, organizer_id, digest(api_key), client_id,
                                                       digest(client_secret), now)
        tenant = Tenant(self.client, self.engine, organization_id, team_id, organizer_id, credential_id, role,
                        api_key, client_id, client_secret, organization_name)
        if login:
            tenant.login()
        return tenant


def create_platform_key(engine):
    key = new_secret("dp_")
    with engine.begin() as conn:
        queries.create_platform_key(conn, "platform", digest(key), utcnow())
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


# --- the seeds' configuration objects -------------------------------------------------

_SEED_DEFAULT = {
    "name": "My Test Webhook",
    "description": "Webhook for testing all the hook types",
    "hooks": [
        {"type": hook_type, "method": "POST", "endpoint": "https://requestb.in/123"}
        for hook_type in ("event_created", "event_removed", "event_updated", "order_created",
                          "order_removed", "order_updated", "order_cancelled")
    ],
    "authentication": {
        "grant_type": "client_credentials",
        "endpoint": "https://requestb.in/123",
        "credentials": {"client_id": "doo", "client_secret": SEED_SECRET},
        "header_format": "Authorization",
        "header_value_format": "Bearer %ACCESS_TOKEN%",
    },
}

EVENT_BODY = ("{\"operationName\":\"EventShort\",\"variables\":{\"id\":\"%EVENT_ID%\"},"
              "\"query\":\"query EventShort($id: ID!) {\\n event(id: $id) {\\n title\\n }\\n}\\n\"}")
ORDER_BODY = ("{\"operationName\":\"OrderShort\",\"variables\":{\"id\":\"%ORDER_ID%\"},"
              "\"query\":\"query OrderShort($id: ID!) {\\n  order(id: $id) {\\n    hash\\n  }\\n}\\n\"}")


def seed_config():
    """The seed's "Default case" configuration object (a fresh copy)."""
    return copy.deepcopy(_SEED_DEFAULT)


def graphql_hook(hook_type, body, endpoint="http://requestbin.net/r/123"):
    return {"type": hook_type, "method": "POST",
            "origin": {"method": "POST", "endpoint": "https://gql.doo.net", "body": body},
            "endpoint": endpoint}


def graphql_config():
    """The seed's GraphQL case: bodies are escaped JSON strings with %EVENT_ID% / %ORDER_ID%."""
    hooks = [graphql_hook(t, EVENT_BODY) for t in ("event_created", "event_removed", "event_updated")]
    hooks += [graphql_hook(t, ORDER_BODY) for t in ("order_cancelled", "order_created", "order_removed",
                                                     "order_updated")]
    return {
        "name": "Sample-Org",
        "description": "Sample-Description",
        "hooks": hooks,
        "authentication": {
            "grant_type": "client_credentials",
            "endpoint": "http://requestbin.net/r/456",
            "credentials": {"client_id": "doo", "client_secret": SEED_SECRET},
            "header_format": "Authorization",
            "header_value_format": "Bearer %ACCESS_TOKEN%",
        },
    }


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
