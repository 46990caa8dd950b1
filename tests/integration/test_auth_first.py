"""Authentication runs before the body is read: strangers get 401, never field errors."""

import pytest

INVALID_BODY = {"hooks": "not a list", "unknown": True}


@pytest.mark.parametrize("method, path", [
    ("post", "/v1/team/1/webhooks"),
    ("put", "/v1/webhooks/some-id"),
    ("post", "/v1/triggers"),
    ("post", "/v1/oauth"),
])
@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}])
def test_anonymous_callers_get_401_before_any_validation(client, method, path, headers):
    answer = getattr(client, method)(path, json=INVALID_BODY, headers=headers)

    assert answer.status_code == 401
    assert answer.json["response_status"] == 401
    assert answer.json["errors"] == {}


def test_an_authenticated_caller_still_gets_field_errors(client, tenant_factory):
    tenant = tenant_factory()

    answer = client.post(f"/v1/team/{tenant.team_id}/webhooks", json=INVALID_BODY, headers=tenant.headers())

    assert answer.status_code == 400
    assert set(answer.json["errors"]) >= {"hooks", "name", "unknown"}
