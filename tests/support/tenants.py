"""A tenant for tests, in every tier: organization, team, organizer with a role, credentials, a live token.

``new_tenant`` builds one the way ``doo-webhooks admin`` does (the api key and the client secret are
stored as ``ground.crypto.digest``), then it gets its access token through ``POST /v1/oauth``
with the Flask test client, like any API user. The integration tests reach it as the
``tenant_factory`` fixture, e2e and fault tests as ``Pipeline.tenant``.
"""

import dataclasses
import itertools

from ground.crypto import digest
from ground.crypto import new_secret
from services.tenancy import Caller
from storage import tenancy
from storage.db import utcnow
from tests.support.seeds import seed_config

_numbers = itertools.count(1)


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
    organization_name: str = None  # None when the tenant joined an existing organization
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

    def create_group(self, config=None, team_id=None):
        """Create a webhook group (the seed's default one unless ``config``); its id."""
        response = self.client.post(f"/v1/team/{team_id or self.team_id}/webhooks",
                                    json=config if config is not None else seed_config(),
                                    headers=self.headers())
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["data"]

    def list_groups(self, team_id=None, **params):
        return self.client.get(f"/v1/team/{team_id or self.team_id}/webhooks", query_string=params,
                               headers=self.headers())

    def delete_group(self, group_id):
        response = self.client.delete(f"/v1/webhooks/{group_id}", headers=self.headers())
        assert response.status_code == 204, response.get_data(as_text=True)

    def add_team(self, role=None, name=None):
        """Another team of the same organization, with this organizer as a member."""
        with self.engine.begin() as conn:
            team_id = tenancy.create_team(conn, self.organization_id, name, utcnow())
            tenancy.add_membership(conn, self.organizer_id, team_id, role or self.role)
        return team_id


def new_tenant(app, client, role="team_admin", organization_id=None, team_id=None, login=True):
    """A new organization, team and organizer of ``role``; ``organization_id`` / ``team_id`` join
    existing ones instead. ``client`` is the test client the tenant talks to ``app`` through."""
    engine = app.extensions["doo_webhooks"].engine
    n = next(_numbers)
    now = utcnow()
    api_key, client_id, client_secret = new_secret("dk_"), new_secret("dc_")[:40], new_secret("ds_")
    organization_name = None
    with engine.begin() as conn:
        if organization_id is None:
            organization_name = f"Organization {n}"
            organization_id = tenancy.create_organization(conn, organization_name, now)
        if team_id is None:
            team_id = tenancy.create_team(conn, organization_id, None, now)
        organizer_id = tenancy.create_organizer(conn, f"organizer{n}@example.org", f"Organizer {n}", now)
        tenancy.add_membership(conn, organizer_id, team_id, role)
        credential_id = tenancy.create_credentials(conn, organizer_id, digest(api_key), client_id,
                                                   digest(client_secret), now)
    tenant = Tenant(client, engine, organization_id, team_id, organizer_id, credential_id, role,
                    api_key, client_id, client_secret, organization_name)
    if login:
        tenant.login()
    return tenant


def caller_of(ctx, tenant):
    """The services' Caller for ``tenant``, with its memberships as they are now (what the API
    and the dashboard pass to services/ after authenticating)."""
    with ctx.engine.begin() as conn:
        return Caller(tenant.organizer_id, tenant.credential_id, tuple(tenancy.memberships_of(conn, tenant.organizer_id)))
