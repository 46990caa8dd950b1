"""The Flask face: create_app() wires settings, storage, the API blueprints and their OpenAPI."""

import swagger_ui_bundle
from flask import Flask
from flask import request
from flask import send_from_directory
from flask_smorest import abort

from app.auth import authenticate_request
from app.errors import DooApi
from app.errors import register as register_errors
from ground import __version__
from ground import settings as settings_module
from services.context import Context

BODY_METHODS = ("POST", "PUT", "PATCH")


def create_app(settings=None, publisher=None):
    """Build the API. ``settings`` defaults to the environment; ``publisher`` sends triggers."""
    settings = settings or settings_module.from_env()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="doo-webhooks",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # served from the installed swagger-ui-bundle: the docs page loads nothing from the internet
        OPENAPI_SWAGGER_UI_URL="/v1/docs/static/",
        API_SPEC_OPTIONS={
            "info": {"description": "Webhook groups, triggers and deliveries, wire-compatible with doo."},
            "servers": [{"url": "/"}],
        },
    )
    if publisher is None:
        from workers.producer import StreamPublisher
        publisher = StreamPublisher(settings.broker_url)
    app.extensions["doo_webhooks"] = Context.create(settings, publisher)

    api = DooApi(app)
    api.spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "x-api-key"})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    from app import openapi
    openapi.register(api)  # before the blueprints: their schemas are documented as they register
    from app.api import deliveries, initialization, oauth, organizers, triggers, webhooks
    for module in (oauth, organizers, webhooks, triggers, deliveries, initialization):
        api.register_blueprint(module.blp, url_prefix="/v1")
    register_errors(app, api)
    from app import ops  # /healthz, /readyz, /metrics (outside /v1 and the OpenAPI document)
    ops.register(app, settings, app.extensions["doo_webhooks"].engine, publisher)

    app.before_request(authenticate_request)
    from app import dashboard  # /dashboard/: server-rendered pages over the same functions
    dashboard.register(app)

    @app.before_request
    def refuse_unreadable_bodies():
        if request.method not in BODY_METHODS:
            return None
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            abort(413, message=f"The body is larger than {settings.max_body_bytes} bytes.")
        has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"
        if has_body and not request.is_json and request.blueprint != "dashboard":  # its forms post HTML forms
            abort(415, message=f"Content-Type must be application/json, not {request.mimetype or 'missing'}.")
        return None

    @app.get("/v1/docs/static/<path:filename>")
    def docs_static(filename):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    return app
