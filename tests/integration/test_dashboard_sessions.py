"""The dashboard's login, session cookie, CSRF and roles, on SQLite and PostgreSQL, through
the Flask test client (tests/e2e/test_dashboard.py drives the same pages in Chromium).

Login takes exactly what POST /v1/oauth takes; the session is a row (its id's SHA-256) and
an HttpOnly, SameSite=Strict cookie; every POST needs the session's CSRF token.
"""

import datetime
import re

import pytest
import sqlalchemy as sa

from app.dashboard import sessions
from ground.crypto import digest
from storage.db import utcnow
from storage.tables import credentials
from storage.tables import dashboard_sessions
from storage.tables import hooks
from tests.support.dashboard import login
from tests.support.dashboard import token_of


def set_cookies(response):
    return {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}


def test_login_with_the_api_credentials_sets_a_hardened_session_cookie(client, tenant_factory, app):
    tenant = tenant_factory()
    answer = login(client, tenant)
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/dashboard/")
    cookie = set_cookies(answer)[sessions.COOKIE]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard/" in cookie
    assert "Secure" not in cookie  # plain http and SECURE_COOKIES off
    value = re.match(rf"{sessions.COOKIE}=([^;]+)", cookie).group(1)
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        stored = conn.execute(sa.select(dashboard_sessions)).all()
    # the database keeps only the id's SHA-256
    assert [row.id_hash for row in stored] == [digest(value)]
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "Groups and hooks" in page.get_data(as_text=True)
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"


def test_the_cookie_is_secure_over_https_or_when_the_setting_says_so(make_app, tenant_factory):
    tenant = tenant_factory()
    https = make_app().test_client()
    page = https.get("/dashboard/login", base_url="https://localhost")
    answer = https.post("/dashboard/login", base_url="https://localhost", data={
        "api_key": tenant.api_key, "client_id": tenant.client_id, "client_secret": tenant.client_secret,
        "csrf_token": token_of(page)})
    assert "Secure" in set_cookies(answer)[sessions.COOKIE]
    behind_proxy = make_app(secure_cookies=True).test_client()
    assert "Secure" in set_cookies(login(behind_proxy, tenant))[sessions.COOKIE]


@pytest.mark.parametrize("wrong", ["api_key", "client_id", "client_secret"])
def test_a_wrong_credential_is_refused_without_saying_which(client, tenant_factory, wrong):
    tenant = tenant_factory()
    answer = login(client, tenant, **{wrong: "nope"})
    assert answer.status_code == 401
    assert "do not match an active credential" in answer.get_data(as_text=True)
    assert sessions.COOKIE not in set_cookies(answer)
    assert client.get("/dashboard/").status_code == 303


def test_pages_need_a_session_and_send_to_the_login_page(client):
    answer = client.get("/dashboard/deliveries?status=dead")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/dashboard/login?next=/dashboard/deliveries")
    assert client.post("/dashboard/logout").status_code == 401
    assert client.get("/dashboard/static/dashboard.css").status_code == 200


def test_login_needs_its_own_double_submit_token(client, tenant_factory):
    tenant = tenant_factory()
    client.get("/dashboard/login")
    answer = client.post("/dashboard/login", data={
        "api_key": tenant.api_key, "client_id": tenant.client_id, "client_secret": tenant.client_secret})
    assert answer.status_code == 403
    assert login(client, tenant, csrf_token="forged").status_code == 403


def test_every_post_needs_the_sessions_csrf_token(client, tenant_factory):
    tenant = tenant_factory()
    login(client, tenant)
    for path in ("/dashboard/logout", "/dashboard/dead-letters/replay", "/dashboard/initialization",
                 "/dashboard/deliveries/x/redeliver", "/dashboard/groups/g/hooks/0/enable"):
        assert client.post(path, data={}).status_code == 403, path
        assert client.post(path, data={"csrf_token": "wrong"}).status_code == 403, path
    page = client.get("/dashboard/")
    assert client.post("/dashboard/logout", data={"csrf_token": token_of(page)}).status_code == 303


def test_a_session_token_is_per_session(client, app, tenant_factory):
    tenant = tenant_factory()
    login(client, tenant)
    mine = token_of(client.get("/dashboard/"))
    other = app.test_client()
    login(other, tenant)
    assert token_of(other.get("/dashboard/")) != mine
    assert other.post("/dashboard/logout", data={"csrf_token": mine}).status_code == 403


def test_logout_ends_the_session_on_the_server(client, app, tenant_factory):
    tenant = tenant_factory()
    login(client, tenant)
    cookie = client.get_cookie(sessions.COOKIE, path="/dashboard/").value
    answer = client.post("/dashboard/logout", data={"csrf_token": token_of(client.get("/dashboard/"))})
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard/login"
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dashboard_sessions)).scalar() == 0
    replayed = app.test_client()  # the old cookie, kept by someone, opens nothing
    replayed.set_cookie(sessions.COOKIE, cookie, path="/dashboard/")
    assert replayed.get("/dashboard/").status_code == 303


def test_an_expired_session_or_a_revoked_key_ends_it(client, app, tenant_factory):
    tenant = tenant_factory()
    engine = app.extensions["doo_webhooks"].engine
    login(client, tenant)
    with engine.begin() as conn:
        conn.execute(sa.update(dashboard_sessions).values(expires_at=utcnow() - datetime.timedelta(seconds=1)))
    assert client.get("/dashboard/").status_code == 303
    login(client, tenant)
    assert client.get("/dashboard/").status_code == 200
    with engine.begin() as conn:
        conn.execute(sa.update(credentials).where(credentials.c.id == tenant.credential_id).values(revoked_at=utcnow()))
    assert client.get("/dashboard/").status_code == 303


def test_next_never_leaves_the_dashboard(client, tenant_factory):
    tenant = tenant_factory()
    for target, expected in (("/dashboard/dead-letters", "/dashboard/dead-letters"),
                             ("https://evil.example/", "/dashboard/"), ("//evil.example/", "/dashboard/")):
        assert login(client, tenant, next=target).headers["Location"] == expected


def test_a_viewer_sees_no_change_buttons_and_every_change_is_refused(client, tenant_factory, app):
    admin = tenant_factory()
    group_id = admin.create_group({"name": "CRM", "hooks": [
        {"type": "order_created", "method": "POST", "endpoint": "https://crm.example/hook"}]})
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        conn.execute(sa.update(hooks).values(disabled_at=utcnow(), disabled_reason="410 Gone"))
    viewer = tenant_factory(role="team_viewer", organization_id=admin.organization_id, team_id=admin.team_id)
    login(client, viewer)
    page = client.get("/dashboard/")
    text = page.get_data(as_text=True)
    assert "410 Gone" in text and "CRM" in text
    assert "Enable" not in text
    token = token_of(page)
    assert client.post(f"/dashboard/groups/{group_id}/hooks/0/enable", data={"csrf_token": token}).status_code == 403
    assert client.post("/dashboard/dead-letters/replay",
                       data={"csrf_token": token, "action": "all"}).status_code == 403
    init = client.get("/dashboard/initialization").get_data(as_text=True)
    assert "Start initialization" not in init
    answer = client.post("/dashboard/initialization", data={
        "csrf_token": token, "resource": "events", "organization_id": str(admin.organization_id)})
    assert answer.status_code == 403
    with app.extensions["doo_webhooks"].engine.begin() as conn:
        assert conn.execute(sa.select(hooks.c.disabled_at)).scalar() is not None
