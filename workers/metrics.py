"""Every Prometheus metric of doo-webhooks, and how each process exposes them.

* The web process (gunicorn, several workers) runs prometheus_client in multiprocess mode:
  ``doo_webhooks.gunicorn_conf`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports
  prometheus_client, and ``/metrics`` then adds up the files of every gunicorn worker.
* A Celery worker (threads pool) and the scheduler are single processes: they keep their
  metrics in memory and serve them on ``DOO_WEBHOOKS_METRICS_PORT`` (off by default).
  Were a worker run with a forking pool, set ``PROMETHEUS_MULTIPROC_DIR`` (empty, per
  worker) in its start script: every exposition below reads it when it is set.
* Standalone is one process: its API port serves everything.

The ledger's state (deliveries due, broker queue depth) is not counted by anyone: it is
read when ``/metrics`` of a web or standalone process is scraped (``LedgerCollector``).
"""

import json
import logging
import os
import socketserver
import threading
import wsgiref.simple_server

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import disable_created_metrics
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily

from storage import lifecycle
from storage.lifecycle import Status

log = logging.getLogger(__name__)

disable_created_metrics()  # the *_created series double the output and tell nothing here

NAMESPACE = "doo_webhooks"

# --- delivery (worker processes, standalone) ----------------------------------------------

ATTEMPTS = Counter(
    "attempts", "Delivery attempts by result (success or the error kind) and receiver status class.",
    ["outcome", "status_class"], namespace=NAMESPACE)
DELIVERIES = Counter(
    "deliveries", "Deliveries that reached a final state (delivered, dead, ...) by the status class "
    "of their last attempt.", ["outcome", "status_class"], namespace=NAMESPACE)
DEAD_LETTERS = Counter(
    "dead_letters", "Deliveries moved to the dead letters, by the error of their last attempt.",
    ["reason"], namespace=NAMESPACE)
DELIVERY_LATENCY = Histogram(
    "delivery_latency_seconds", "From the trigger's arrival to its delivery's success, retries included.",
    namespace=NAMESPACE,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 12 * 3600, 86400,
             2 * 86400, 4 * 86400))
ATTEMPT_DURATION = Histogram(
    "attempt_duration_seconds", "One attempt: origin, token and receiver requests.", ["status_class"],
    namespace=NAMESPACE, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60))
TOKEN_FETCHES = Counter(
    "token_fetches", "Access-token requests to receivers' token endpoints, by result.", ["outcome"],
    namespace=NAMESPACE)

CLAIMED = Counter(
    "claimed", "Deliveries a worker claimed for an attempt, by lane (pending: first attempts of a "
    "series; retrying: retries).", ["lane"], namespace=NAMESPACE)

# --- scheduler ----------------------------------------------------------------------------

LEASES_EXPIRED = Counter(
    "leases_expired", "Deliveries taken back from a worker that stopped mid-attempt.", namespace=NAMESPACE)

# --- API (web processes, standalone) ------------------------------------------------------

API_REQUESTS = Counter(
    "api_requests", "HTTP requests to the API by endpoint (URL rule), method and status.",
    ["endpoint", "method", "status"], namespace=NAMESPACE)
API_LATENCY = Histogram(
    "api_request_duration_seconds", "Time to answer an API request, by endpoint (URL rule).", ["endpoint"],
    namespace=NAMESPACE, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))



def status_class(code):
    """'2xx' .. '5xx' for an HTTP status, 'none' when no response came (timeout, refused, ...)."""
    return f"{code // 100}xx" if isinstance(code, int) and 100 <= code <= 599 else "none"


def observe_outcome(outcome):
    """A WorkerContext observer: one recorded attempt (an outcome dict of workers.delivery)."""
    try:
        klass = status_class(outcome.get("last_status_code"))
        ATTEMPTS.labels(outcome.get("last_error") or "success", klass).inc()
        if outcome.get("duration_ms") is not None:
            ATTEMPT_DURATION.labels(klass).observe(outcome["duration_ms"] / 1000)
        status = outcome.get("status")
        if status not in lifecycle.FINAL:
            return
        DELIVERIES.labels(status, klass).inc()
        if status == Status.DEAD:
            DEAD_LETTERS.labels(outcome.get("last_error") or "unknown").inc()
        elif status == Status.DELIVERED and outcome.get("received_at") is not None:
            finished = outcome.get("delivered_at") or outcome.get("now")
            if finished is not None:
                DELIVERY_LATENCY.observe(max(0.0, (finished - outcome["received_at"]).total_seconds()))
    except Exception:  # metrics must never fail a delivery
        log.exception("recording delivery metrics failed")


def token_fetched(outcome):
    """A TokenProvider on_fetch callback: 'ok' or the TokenError kind."""
    TOKEN_FETCHES.labels(outcome).inc()


def claimed(lane, count):
    if count:
        CLAIMED.labels(lane).inc(count)


def swept(lost, buried):
    """One dispatch_due run: leases taken back, of which ``buried`` went dead."""
    if lost:
        LEASES_EXPIRED.inc(lost)
    if buried:
        DELIVERIES.labels(Status.DEAD, "none").inc(buried)
        DEAD_LETTERS.labels("worker_lost").inc(buried)


def instrument(ctx):
    """Wire a WorkerContext's delivery outcomes and token fetches to the metrics above."""
    if observe_outcome not in ctx.observers:
        ctx.observers.append(observe_outcome)
    ctx.tokens.on_fetch = token_fetched
    return ctx


def api_request(endpoint, method, status, seconds):
    API_REQUESTS.labels(endpoint, method, str(status)).inc()
    API_LATENCY.labels(endpoint).observe(seconds)


# --- the ledger's state, read at scrape time ----------------------------------------------

class LedgerCollector:
    """Due backlog (database) and broker queue depth (Redis LLEN), read when scraped.

    ``queue_depths`` returns {queue: depth} or raises; a source that fails is left out of
    that scrape (and logged) rather than failing the whole exposition.
    """

    def __init__(self, engine, queue_depths):
        self.engine = engine
        self.queue_depths = queue_depths

    def collect(self):
        from storage import ledger
        from storage.db import utcnow
        try:
            with self.engine.connect() as conn:
                due = ledger.due_backlog(conn, utcnow())
        except Exception as exc:
            log.warning("metrics: could not count the due deliveries: %s", type(exc).__name__)
        else:
            yield GaugeMetricFamily(f"{NAMESPACE}_deliveries_due",
                                    "Deliveries due now and not yet sent (the scheduler's backlog).", value=due)
        try:
            depths = self.queue_depths()
        except Exception as exc:
            log.warning("metrics: could not read the queue depths: %s", type(exc).__name__)
        else:
            family = GaugeMetricFamily(f"{NAMESPACE}_queue_depth", "Messages waiting in a broker queue.",
                                       labels=["queue"])
            for queue, depth in sorted(depths.items()):
                family.add_metric([queue], depth)
            yield family


# Celery's Redis transport keeps one list per queue and priority step (kombu's defaults).
def multiprocess_dir():
    """The directory of prometheus_client's multiprocess mode, or None (single process)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(extra_collectors=()):
    """(body, content type) of one scrape of this process (or, in multiprocess mode, of all of them)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    if extra_collectors:
        merged = CollectorRegistry()
        merged.register(_Everything(registry))
        for collector in extra_collectors:
            merged.register(collector)
        registry = merged
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Everything:
    """Adapts a registry to a collector, so a scrape can add collectors without registering them for good."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


# --- the small server of worker and scheduler processes -----------------------------------

class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):  # no access log: probes would flood the process's log
        pass


class _Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True


def ops_wsgi_app(ready):
    """/metrics, /healthz and /readyz for a process without the API; ``ready()`` -> (ok, checks)."""
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, content_type = exposition()
            status = "200 OK"
        elif path == "/healthz":
            body, content_type, status = b'{"status": "ok"}', "application/json", "200 OK"
        elif path == "/readyz":
            ok, checks = ready()
            body = json.dumps({"status": "ok" if ok else "unavailable", "checks": checks}).encode()
            content_type, status = "application/json", "200 OK" if ok else "503 Service Unavailable"
        else:
            body, content_type, status = b'{"status": "not found"}', "application/json", "404 Not Found"
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]
    return app


def serve(settings, what):
    """Start the metrics/health server of a worker or scheduler when METRICS_PORT is set.

    Returns the server (its ``server_port`` is the bound port) or None. A port that cannot be
    bound is logged, not fatal: metrics must never stop deliveries.
    """
    if not settings.metrics_port:
        return None
    from workers import health
    try:
        server = wsgiref.simple_server.make_server(
            settings.metrics_host, settings.metrics_port, ops_wsgi_app(lambda: health.readiness(settings)),
            server_class=_Server, handler_class=_QuietHandler)
    except OSError as exc:
        log.error("%s: cannot serve metrics on %s:%s: %s", what, settings.metrics_host, settings.metrics_port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("%s: metrics, healthz and readyz on http://%s:%s", what, settings.metrics_host, server.server_port)
    return server
