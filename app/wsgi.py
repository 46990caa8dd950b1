"""WSGI entry point for gunicorn: ``app.wsgi:app``."""

from app import create_app
from ground import settings as settings_module
from ground.logs import configure

settings = settings_module.from_env()
configure(settings)
app = create_app(settings)
