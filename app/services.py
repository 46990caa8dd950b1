"""What a request needs beyond Flask: settings, the database engine, the secret box."""

import dataclasses

from flask import current_app


@dataclasses.dataclass
class Services:
    settings: object
    engine: object
    box: object
    publisher: object = None


def services():
    return current_app.extensions["doo_webhooks"]
