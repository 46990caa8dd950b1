"""WSGI entry point for gunicorn: ``app.wsgi:app``."""

from app import create_app
from doo_webhooks import settings as settings_module
from doo_webhooks.logs import configure

settings = settings_module.from_env()
configure(settings)
app = create_app(settings)
