"""Operations endpoints beside the API: /healthz, /readyz, /metrics, and per-request metrics.

They live outside /v1 and outside the OpenAPI document: they are for probes and Prometheus,
not for API clients. Nothing here needs credentials, so keep /metrics off the public
internet (see docs/deployment.md).
"""

import functools
import time

from flask import Response
from flask import g
from flask import jsonify
from flask import request

from workers import health
from workers import metrics
from workers.intake import RedisStreams

UNMATCHED = "<unmatched>"


@functools.lru_cache(maxsize=None)
def _stream_depths(broker_url):
    streams = RedisStreams(broker_url, timeout=1.0)  # a scrape must not hang on a lost Redis
    return lambda: {"triggers": streams.depth()}


def _queue_depths(settings, publisher):
    """Where this process reads what waits from: the trigger streams in Redis, or standalone's
    own inbox and send loop."""
    if hasattr(publisher, "queue_depths"):
        return publisher.queue_depths
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return _stream_depths(settings.broker_url)
    return dict


def register(app, settings, engine, publisher):
    ledger = metrics.LedgerCollector(engine, _queue_depths(settings, publisher))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        ready, checks = health.readiness(settings)
        return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503

    @app.get("/metrics")
    def metrics_endpoint():
        body, content_type = metrics.exposition([ledger])
        return Response(body, content_type=content_type)

    @app.before_request
    def start_clock():
        g.doo_webhooks_started = time.perf_counter()

    @app.after_request
    def count_request(response):
        started = g.get("doo_webhooks_started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            metrics.api_request(endpoint, request.method, response.status_code, time.perf_counter() - started)
        return response
