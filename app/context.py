"""The service layer's Context (services.context) of this app: settings, engine, secret box,
publisher. Views pass it to the use cases of services/."""

from flask import current_app


def context():
    return current_app.extensions["doo_webhooks"]
