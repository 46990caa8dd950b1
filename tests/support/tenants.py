"""A tenant for tests: organization, team, organizer, credentials and a live access token."""

import itertools

from doo_webhooks.crypto import digest
from storage import tenancy
from storage.db import utcnow

_numbers = itertools.count(1)


class Tenant:
    def __init__(self, engine, client, role="team_admin", organization_id=None):
        n = next(_numbers)
        self.api_key, self.client_id, self.client_secret = f"key-{n}", f"client-{n}", f"secret-{n}"
        with engine.begin() as conn:
            now = utcnow()
            self.organization_id = organization_id or tenancy.create_organization(conn, f"Org {n}", now)
            self.team_id = tenancy.create_team(conn, self.organization_id, f"Team {n}", now)
            self.organizer_id = tenancy.create_organizer(conn, f"organizer{n}@example.test", None, now)
            tenancy.add_membership(conn, self.organizer_id, self.team_id, role)
            tenancy.create_credentials(conn, self.organizer_id, digest(self.api_key), self.client_id,
                                       digest(self.client_secret), now)
        answer = client.post("/v1/oauth", headers={"x-api-key": self.api_key}, json={
            "client_id": self.client_id, "client_secret": self.client_secret, "grant_type": "client_credentials"})
        assert answer.status_code == 200, answer.json
        self.token = answer.json["data"]["access_token"]
        self.client = client

    def headers(self):
        return {"x-api-key": self.api_key, "Authorization": f"Bearer {self.token}"}

    def create_group(self, config):
        answer = self.client.post(f"/v1/team/{self.team_id}/webhooks", json=config, headers=self.headers())
        assert answer.status_code == 200, answer.json
        return answer.json["data"]

    def delete_group(self, group_id):
        answer = self.client.delete(f"/v1/webhooks/{group_id}", headers=self.headers())
        assert answer.status_code == 204
