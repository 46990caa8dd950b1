"""What a worker process holds for its whole life: settings, engine, secrets, tokens, and a
thread pool for what blocks (token fetches, GraphQL origins, synchronous batches)."""

import concurrent.futures
import dataclasses
import logging

from workers import metrics
from ground.crypto import SecretBox
from storage.db import engine_for
from workers.tokens import TokenProvider
from workers.tokens import make_token_cache

log = logging.getLogger(__name__)

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
        ctx = cls(
            settings=settings, engine=engine_for(settings.database_url, pre_ping=False), box=SecretBox(settings),
            tokens=TokenProvider(settings, make_token_cache(settings)), publisher=publisher,
            pool=concurrent.futures.ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="send"),
        )
        return metrics.instrument(ctx)  # delivery outcomes and token fetches -> Prometheus

    def observe(self, outcome):
        for observer in self.observers:
            try:
                observer(outcome)
            except Exception:  # an observer (metrics, a live view) must never fail a batch
                log.exception("delivery observer failed")
