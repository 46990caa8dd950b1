"""What a worker process holds for its whole life: settings, engine, secrets, tokens, a send pool."""

import concurrent.futures
import dataclasses

from doo_webhooks.crypto import SecretBox
from storage.db import engine_for
from workers.tokens import TokenProvider
from workers.tokens import make_token_cache

SEND_THREADS = 64


@dataclasses.dataclass
class WorkerContext:
    settings: object
    engine: object
    box: object
    tokens: object
    publisher: object
    pool: object
    observers: list = dataclasses.field(default_factory=list)

    @classmethod
    def create(cls, settings, publisher):
        return cls(
            settings=settings, engine=engine_for(settings.database_url), box=SecretBox(settings),
            tokens=TokenProvider(settings, make_token_cache(settings)), publisher=publisher,
            pool=concurrent.futures.ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="send"),
        )

    def observe(self, outcome):
        for observer in self.observers:
            observer(outcome)
