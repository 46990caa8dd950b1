"""Everything in one process for a bare machine: the API, a worker and the scheduler,
on an SQLite file, with an in-process queue instead of a broker.

Nothing is lost by using an in-process queue: every delivery is a row first, and the
scheduler re-enqueues what a stopped process left behind when it comes back.
"""

import concurrent.futures
import json
import logging
import os
import signal
import threading

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

    def trigger(self, record):
        self.pool.submit(self._guard, self._fan_out, record)

    def deliveries(self, ids):
        for start in range(0, len(ids), self.batch_size):
            self.pool.submit(self._guard, delivery.deliver_batch, self.ctx, list(ids[start:start + self.batch_size]))

    def _fan_out(self, record):
        ids = fanout.fan_out(self.ctx.engine, record, utcnow())
        self.deliveries(ids)

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


def run(settings, host, port, ready=None):
    """Serve until SIGINT/SIGTERM; ``ready`` (an Event) is set once the port is open."""
    settings = settings.replace(redis_url="memory://")
    upgrade(settings.database_url)
    publisher = InlinePublisher(settings.batch_size)
    ctx = WorkerContext.create(settings, publisher)
    publisher.ctx = ctx
    creds = bootstrap_demo(ctx.engine, settings.data_dir)
    with ctx.engine.begin() as conn:
        # this process is the only worker: whatever was in flight died with the last run
        while queries.expire_leases(conn, utcnow(), settings.max_attempts, every_lease=True):
            pass
    server = make_server(host, port, create_app(settings, publisher=publisher), threaded=True)
    stop = threading.Event()
    sweeper = threading.Thread(target=scheduler.run, args=(ctx, stop), name="scheduler", daemon=True)
    sweeper.start()

    def shutdown(signum, _frame):
        log.info("stopping (signal %s)", signum)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    base = f"http://{host}:{server.server_port}"
    print(usage(creds, base) if creds else f"doo-webhooks is running at {base}\nStop with Ctrl-C.", flush=True)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    finally:
        stop.set()
        sweeper.join(timeout=5)
        publisher.shutdown()
        ctx.pool.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")
