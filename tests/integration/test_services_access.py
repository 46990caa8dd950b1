"""services.access called directly, as every face calls it, on SQLite and PostgreSQL: an API
key and its Bearer token make a Caller or are Unauthorized, tokens are issued only for the
key's own client credentials and refused once expired, the dashboard's sessions end on the
server, and only the command line's OPERATOR bootstraps tenants and keys."""

import datetime

import pytest
import sqlalchemy as sa

from services import access
from services.errors import Conflict
from services.errors import Forbidden
from services.errors import NotFound
from services.errors import Unauthorized
from services.tenancy import OPERATOR
from storage.db import utcnow
from storage.tables import access_tokens
from tests.support.api import create_platform_key


def test_a_token_is_issued_for_the_keys_own_client_credentials_only(ctx, tenant_factory):
    tenant = tenant_factory(login=False)
    with pytest.raises(Unauthorized) as refused:
        access.issue_token(ctx, tenant.api_key, tenant.client_id, "not the secret")
    assert refused.value.message == access.WRONG_CLIENT
    with pytest.raises(Unauthorized) as refused:
        access.issue_token(ctx, "dk_unknown", tenant.client_id, tenant.client_secret)
    assert refused.value.message == access.UNKNOWN_API_KEY

    issued = access.issue_token(ctx, tenant.api_key, tenant.client_id, tenant.client_secret)
    assert issued["expires_in"] == ctx.settings.access_token_ttl
    caller = access.authenticate(ctx, tenant.api_key, issued["access_token"])
    assert (caller.organizer_id, caller.credential_id) == (tenant.organizer_id, tenant.credential_id)
    assert caller.organization_ids(write=True) == [tenant.organization_id]


def test_an_expired_token_or_another_keys_token_is_refused(ctx, tenant_factory):
    tenant, other = tenant_factory(), tenant_factory()
    assert access.authenticate(ctx, tenant.api_key, tenant.access_token).organizer_id == tenant.organizer_id
    with pytest.raises(Unauthorized) as refused:
        access.authenticate(ctx, other.api_key, tenant.access_token)
    assert refused.value.message == access.WRONG_TOKEN

    with ctx.engine.begin() as conn:
        conn.execute(sa.update(access_tokens).values(expires_at=utcnow() - datetime.timedelta(seconds=1)))
    with pytest.raises(Unauthorized) as refused:
        access.authenticate(ctx, tenant.api_key, tenant.access_token)
    assert refused.value.message == access.WRONG_TOKEN


def test_a_missing_token_is_refused_unless_optional_and_a_malformed_one_always(ctx, tenant_factory):
    tenant = tenant_factory()
    with pytest.raises(Unauthorized) as refused:
        access.authenticate(ctx, "", tenant.access_token)
    assert refused.value.message == access.MISSING_API_KEY
    with pytest.raises(Unauthorized) as refused:
        access.authenticate(ctx, tenant.api_key, None)
    assert refused.value.message == access.MISSING_TOKEN
    assert access.authenticate(ctx, tenant.api_key, None, token_required=False).organizer_id == tenant.organizer_id
    with pytest.raises(Unauthorized):  # an Authorization header that carries no Bearer token
        access.authenticate(ctx, tenant.api_key, "", token_required=False)


def test_the_platform_key_is_checked(ctx):
    key = create_platform_key(ctx.engine)
    access.require_platform(ctx, key)
    for wrong, message in (("", access.MISSING_PLATFORM_KEY), ("dp_unknown", access.UNKNOWN_PLATFORM_KEY)):
        with pytest.raises(Unauthorized) as refused:
            access.require_platform(ctx, wrong)
        assert refused.value.message == message


def test_a_dashboard_session_acts_for_its_organizer_until_logged_out(ctx, tenant_factory):
    tenant = tenant_factory(login=False)
    with pytest.raises(Unauthorized) as refused:
        access.log_in(ctx, tenant.api_key, tenant.client_id, "not the secret")
    assert refused.value.message == access.WRONG_LOGIN

    value = access.log_in(ctx, tenant.api_key, tenant.client_id, tenant.client_secret)
    session = access.session(ctx, value)
    assert session.caller.organizer_id == tenant.organizer_id and session.csrf_token
    assert access.session(ctx, "not a session") is None
    access.log_out(ctx, value)
    assert access.session(ctx, value) is None


def test_the_operator_bootstraps_a_tenant_that_can_then_authenticate(ctx):
    organization_id = access.create_organization(ctx, OPERATOR, "Box office")
    team_id = access.create_team(ctx, OPERATOR, organization_id, "Everyone")
    organizer_id = access.create_organizer(ctx, OPERATOR, "ada@example.org", "Ada", [team_id], "team_member")
    credentials = access.create_credentials(ctx, OPERATOR, organizer_id)

    issued = access.issue_token(ctx, credentials["api_key"], credentials["client_id"], credentials["client_secret"])
    caller = access.authenticate(ctx, credentials["api_key"], issued["access_token"])
    assert [(m.team_id, m.role) for m in caller.memberships] == [(team_id, "team_member")]
    access.require_platform(ctx, access.create_platform_key(ctx, OPERATOR))

    with pytest.raises(NotFound) as refused:
        access.create_team(ctx, OPERATOR, organization_id + 1000)
    assert refused.value.message == f"organization {organization_id + 1000} does not exist"
    with pytest.raises(Conflict):
        access.create_organizer(ctx, OPERATOR, "ada@example.org", None, [team_id])
    with pytest.raises(Forbidden):  # an organizer's caller, however privileged, bootstraps nothing
        access.create_organization(ctx, caller, "Another")
    assert access.rotate_secrets(ctx, OPERATOR) == 0
