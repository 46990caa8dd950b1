"""The dashboard through the Flask test client: its forms' CSRF token, and a login."""

import re


def token_of(page):
    """The CSRF token of a page's forms (a response or its text)."""
    body = page if isinstance(page, str) else page.get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert found, body
    return found.group(1)


def login(client, tenant, **overrides):
    """Log in as ``tenant`` with the credentials the API takes; ``overrides`` change form fields."""
    form = {"api_key": tenant.api_key, "client_id": tenant.client_id, "client_secret": tenant.client_secret,
            "csrf_token": token_of(client.get("/dashboard/login"))}
    form.update(overrides)
    return client.post("/dashboard/login", data=form)
