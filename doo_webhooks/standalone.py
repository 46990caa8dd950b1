"""Everything in one process for a bare machine: the API, a worker and the scheduler,
on an SQLite file, with an in-process queue instead of a broker.

Nothing is lost by using an in-process queue: every delivery is a row first, and the
scheduler re-enqueues what a stopped process left behind when it comes back.
"""

import concurrent.futures
import datetime
import json
import logging
import os
import signal
import threading

from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from app import create_app
from doo_webhooks.crypto import digest
from doo_webhooks.crypto import new_secret
from storage import queries
from storage.db import utcnow
from storage.migrate import upgrade
from workers import delivery
from workers import fanout
from workers import scheduler
from workers.context import WorkerContext

log = logging.getLogger(__name__)


class InlinePublisher:
    """Runs fan-out and delivery batches on a thread pool of this process."""

    def __init__(self, batch_size, threads=8):
        self.batch_size = batch_size
        self.pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="worker")
        self.ctx = None
        self._waiting = {"triggers": 0, "deliveries": 0}
        self._waiting_guard = threading.Lock()

    def trigger(self, record):
        self._submit("triggers", self._fan_out, record)

    def deliveries(self, ids, countdown=None):
        if countdown:
            return  # held back for the ordering delay: the scheduler's next sweep sends them
        for start in range(0, len(ids), self.batch_size):
            self._submit("deliveries", delivery.deliver_batch, self.ctx, list(ids[start:start + self.batch_size]))

    def _submit(self, queue, fn, *args):
        with self._waiting_guard:
            self._waiting[queue] += 1
        self.pool.submit(self._started, queue, fn, *args)

    def _started(self, queue, fn, *args):
        with self._waiting_guard:
            self._waiting[queue] -= 1
        self._guard(fn, *args)

    def queue_depths(self):
        """Work waiting for a thread, by queue: the broker's queue depth of this process (metrics)."""
        with self._waiting_guard:
            return dict(self._waiting)

    def _fan_out(self, record):
        delay = self.ctx.settings.ordering_delay
        if delay:
            now = utcnow()
            fanout.fan_out(self.ctx.engine, record, now, first_attempt_at=now + datetime.timedelta(seconds=delay),
                           enqueued=False)
            return  # the scheduler sends them once the ordering delay has passed
        rest, claimed = fanout.fan_out_and_claim(self.ctx.engine, record, utcnow(),
                                                 delivery.lease_seconds(self.ctx.settings), self.batch_size)
        self.deliveries(rest)
        delivery.send_claimed(self.ctx, claimed)

    @staticmethod
    def _guard(fn, *args):
        try:
            fn(*args)
        except Exception:  # the rows stay; the scheduler enqueues them again
            log.exception("background work failed")

    def shutdown(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def bootstrap_demo(engine, data_dir):
    """On first start: a demo tenant and its credentials, printed once and kept in data_dir."""
    path = data_dir / "demo-credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    with engine.begin() as conn:
        if queries.organization_count(conn):
            return None  # an operator set this ledger up: no demo tenant beside theirs
        now = utcnow()
        org = queries.create_organization(conn, "Demo organization", now)
        team = queries.create_team(conn, org, "Demo team", now)
        organizer = queries.create_organizer(conn, "demo@doo-webhooks.invalid", "Demo organizer", now)
        queries.add_membership(conn, organizer, team, "team_admin")
        creds = {"api_key": new_secret("dk_"), "client_id": new_secret("dc_")[:40],
                 "client_secret": new_secret("ds_"), "platform_key": new_secret("dp_"),
                 "organization_id": org, "team_id": team}
        queries.create_credentials(conn, organizer, digest(creds["api_key"]), creds["client_id"],
                                   digest(creds["client_secret"]), now)
        queries.create_platform_key(conn, "demo platform", digest(creds["platform_key"]), now)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(creds, handle, indent=2)
    return creds


def usage(creds, base):
    return f"""
doo-webhooks is running at {base}  (OpenAPI: {base}/v1/openapi.json, docs: {base}/v1/docs)
Health: {base}/healthz, {base}/readyz   Prometheus metrics: {base}/metrics
Demo credentials (also in the data dir, demo-credentials.json):
  export API={base}/v1 API_KEY={creds['api_key']} CLIENT_ID={creds['client_id']} CLIENT_SECRET={creds['client_secret']}
  export PLATFORM_KEY={creds['platform_key']}
Get a token:
  TOKEN=$(curl -s -X POST $API/oauth -H 'Content-Type: application/json' -H "x-api-key: $API_KEY" \\
    -d "{{\\"client_id\\":\\"$CLIENT_ID\\",\\"client_secret\\":\\"$CLIENT_SECRET\\",\\"grant_type\\":\\"client_credentials\\"}}" \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
List your webhook groups of team {creds['team_id']}:
  curl -s $API/team/{creds['team_id']}/webhooks -H "x-api-key: $API_KEY" -H "Authorization: Bearer $TOKEN"
Stop with Ctrl-C.
"""


class _PlainRequestHandler(WSGIRequestHandler):
    """werkzeug's access line without its terminal colours: it may end up in a JSON log."""

    def log_request(self, code="-", size="-"):
        self.log("info", '"%s" %s %s', self.requestline, getattr(code, "value", code), size)


class Service:
    """Standalone's parts, started by the constructor: ``run`` serves them until a signal, the
    demo from a thread of its own. The port is open (``base``) once the constructor returns."""

    def __init__(self, settings, host, port):
        # no Redis: tokens are cached and work is queued in this process
        self.settings = settings = settings.replace(redis_url="memory://", broker_url="memory://")
        upgrade(settings.database_url)
        self.publisher = InlinePublisher(settings.batch_size)
        self.ctx = WorkerContext.create(settings, self.publisher)
        self.publisher.ctx = self.ctx
        self.creds = bootstrap_demo(self.ctx.engine, settings.data_dir)
        with self.ctx.engine.begin() as conn:
            # this process is the only worker: whatever was in flight died with the last run
            while queries.expire_leases(conn, utcnow(), settings.max_attempts, every_lease=True):
                pass
        self.server = make_server(host, port, create_app(settings, publisher=self.publisher), threaded=True,
                                  request_handler=_PlainRequestHandler)
        self.base = f"http://{host}:{self.server.server_port}"
        self.stopping = threading.Event()
        self.sweeper = threading.Thread(target=scheduler.run, args=(self.ctx, self.stopping), name="scheduler",
                                        daemon=True)
        self.sweeper.start()

    def serve_forever(self):
        self.server.serve_forever()

    def stop(self):
        """Ask ``serve_forever`` to return; safe from a signal handler."""
        self.stopping.set()
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def close(self):
        """After ``serve_forever`` returned: let running work finish, drop what waits (its rows stay)."""
        self.stopping.set()
        self.sweeper.join(timeout=5)
        self.publisher.shutdown()
        self.ctx.pool.shutdown(wait=False, cancel_futures=True)
        self.server.server_close()
        log.info("stopped")


def run(settings, host, port, ready=None):
    """Serve until SIGINT/SIGTERM; ``ready`` (an Event) is set once the port is open."""
    service = Service(settings, host, port)

    def shutdown(signum, _frame):
        log.info("stopping (signal %s)", signum)
        service.stop()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    base = service.base
    print(usage(service.creds, base) if service.creds else f"doo-webhooks is running at {base}\nStop with Ctrl-C.",
          flush=True)
    if ready is not None:
        ready.set()
    try:
        service.serve_forever()
    finally:
        service.close()
