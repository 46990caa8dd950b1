"""Everything in one process for a bare machine: the API, a worker and the scheduler,
on an SQLite file, with the database itself as the broker (workers.intake.DatabaseInbox).

Nothing is lost: a trigger is a row of the inbox until the transaction that fans it out
deletes it, every delivery is a row before it is sent, and what a stopped process left in
flight is taken back when it comes back.
"""

import json
import logging
import os
import signal
import threading

from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from app import create_app
from ground.crypto import digest
from ground.crypto import new_secret
from storage import ledger
from storage import tenancy
from storage.db import utcnow
from storage.migrate import upgrade
from workers import intake
from workers import scheduler
from workers.context import WorkerContext
from workers.engine import Engine

log = logging.getLogger(__name__)


class InlinePublisher:
    """The embedded service's hand-over: triggers go to the database inbox (where ``emit()``
    from other processes puts them too) and wake this process's intake; made-due rows wake
    its send loop."""

    def __init__(self, engine):
        self.inbox = intake.DatabaseInbox(engine)
        self.delivery_engine = None

    def trigger(self, record):
        self.triggers([record])

    def triggers(self, records):
        self.inbox.publish(records)
        self.delivery_engine.nudge_intake()

    def deliveries(self, ids):
        if ids:
            self.nudge()

    def nudge(self):
        self.delivery_engine.sender.nudge()

    def queue_depths(self):
        """Triggers waiting for fan-out and deliveries in flight (metrics)."""
        sender = self.delivery_engine.sender
        return {"triggers": self.inbox.depth(), "deliveries": sum(sender.used.values())}


def bootstrap_demo(engine, data_dir):
    """On first start: a demo tenant and its credentials, printed once and kept in data_dir."""
    path = data_dir / "demo-credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    with engine.begin() as conn:
        if tenancy.organization_count(conn):
            return None  # an operator set this ledger up: no demo tenant beside theirs
        now = utcnow()
        org = tenancy.create_organization(conn, "Demo organization", now)
        team = tenancy.create_team(conn, org, "Demo team", now)
        organizer = tenancy.create_organizer(conn, "demo@doo-webhooks.invalid", "Demo organizer", now)
        tenancy.add_membership(conn, organizer, team, "team_admin")
        creds = {"api_key": new_secret("dk_"), "client_id": new_secret("dc_")[:40],
                 "client_secret": new_secret("ds_"), "platform_key": new_secret("dp_"),
                 "organization_id": org, "team_id": team}
        tenancy.create_credentials(conn, organizer, digest(creds["api_key"]), creds["client_id"],
                                   digest(creds["client_secret"]), now)
        tenancy.create_platform_key(conn, "demo platform", digest(creds["platform_key"]), now)
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
        # no Redis: tokens are cached in this process, triggers wait in the database's inbox
        self.settings = settings = settings.replace(redis_url="memory://", broker_url=settings.database_url)
        upgrade(settings.database_url)
        self.ctx = WorkerContext.create(settings, None)
        self.publisher = self.ctx.publisher = InlinePublisher(self.ctx.engine)
        self.creds = bootstrap_demo(self.ctx.engine, settings.data_dir)
        with self.ctx.engine.begin() as conn:
            # this process is the only worker: whatever was in flight died with the last run
            while ledger.expire_leases(conn, utcnow(), settings.max_attempts, every_lease=True):
                pass
        self.server = make_server(host, port, create_app(settings, publisher=self.publisher), threaded=True,
                                  request_handler=_PlainRequestHandler)
        self.base = f"http://{host}:{self.server.server_port}"
        self.stopping = threading.Event()
        self.delivery_engine = Engine(self.ctx, intake.InboxConsumer(self.ctx.engine))
        self.publisher.delivery_engine = self.delivery_engine
        self.delivery_engine.start()
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
        self.delivery_engine.stop(timeout=5)
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
