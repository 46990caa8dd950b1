"""Dashboard sessions, the browser's side: a cookie holding the random id of a server-side
session (services.access keeps the row), and the CSRF token every form of the session carries.

The cookie is HttpOnly, SameSite=Strict, scoped to /dashboard/, and Secure when the request
came over https or SECURE_COOKIES says so. The database keeps only the id's SHA-256, like
API keys and tokens: a leaked table opens no session. Before there is a session, the login
form is protected by a double-submit token (a cookie and a form field that must agree), so
nobody can log a victim's browser into the attacker's account.
"""

from flask import abort
from flask import g
from flask import request

from app.context import context
from ground.crypto import new_secret
from ground.crypto import same
from services import access

COOKIE = "doo_dashboard"
LOGIN_COOKIE = "doo_dashboard_login"
PATH = "/dashboard/"


def current():
    """The live session of this request (services.access.Session, cached on ``g``), or None."""
    if "dashboard_session" not in g:
        value = request.cookies.get(COOKIE, "")
        g.dashboard_session = access.session(context(), value) if value else None
    return g.dashboard_session


def end():
    value = request.cookies.get(COOKIE, "")
    if value:
        access.log_out(context(), value)


def _secure():
    return request.is_secure or context().settings.secure_cookies


def set_cookie(response, name, value, max_age):
    response.set_cookie(name, value, max_age=max_age, path=PATH, secure=_secure(), httponly=True,
                        samesite="Strict")


def clear_cookie(response, name):
    response.delete_cookie(name, path=PATH, secure=_secure(), httponly=True, samesite="Strict")


def login_token():
    """The double-submit token of the login form: the one in the browser's cookie, or a new one."""
    if "login_token" not in g:
        g.login_token = request.cookies.get(LOGIN_COOKIE) or new_secret()
    return g.login_token


def check_csrf():
    """Refuse (403) a POST whose form does not carry this session's token (or, at login, the
    token of the login cookie)."""
    sent = request.form.get("csrf_token", "")
    session = current()
    expected = session.csrf_token if session is not None else request.cookies.get(LOGIN_COOKIE, "")
    if not sent or not expected or not same(sent.encode(), expected.encode()):
        abort(403, description="The form's CSRF token is missing or does not match your session: "
                               "reload the page and try again.")
