"""What a use case needs beyond its arguments: settings, the database engine, the secret box,
and the publisher that nudges workers and queues triggers."""

import dataclasses

from ground.crypto import SecretBox
from storage.db import engine_for


@dataclasses.dataclass
class Context:
    settings: object
    engine: object
    box: object
    publisher: object = None

    @classmethod
    def create(cls, settings, publisher=None, engine=None):
        return cls(settings=settings, engine=engine or engine_for(settings.database_url),
                   box=SecretBox(settings), publisher=publisher)
