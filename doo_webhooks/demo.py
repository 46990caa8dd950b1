"""``doo-webhooks demo``: the whole flow in a minute, on this machine alone.

It starts standalone (API, worker, scheduler, SQLite) in this process, and beside it a
receiver on 127.0.0.1 that plays a customer's CRM: an OAuth2 token endpoint and a webhook
endpoint that checks the bearer token and the Standard Webhooks signature. Then, over the
public API exactly as a client would, it creates a webhook group pointing at the receiver
and emits a handful of triggers, and prints each attempt as it happens: what the receiver
got, what doo-webhooks recorded. The receiver turns one delivery away once (HTTP 503) to
show a retry. It stops by itself when every delivery arrived (or on Ctrl-C).
"""

import base64
import hashlib
import hmac
import json
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import requests

from storage.lifecycle import Status

CLIENT_ID = "demo-crm"
TURNED_AWAY = "1003"  # the receiver answers 503 to this order once

# (trigger type, entity): what the platform would emit
TRIGGERS = (
    ("event_created", {"id": 42, "status": "live", "title": "Summer Festival"}),
    ("order_created", {"order_details": {"id": 1001, "status": "active"}, "event": {"id": 42}}),
    ("order_created", {"order_details": {"id": 1002, "status": "active"}, "event": {"id": 42}}),
    ("order_created", {"order_details": {"id": int(TURNED_AWAY), "status": "active"}, "event": {"id": 42}}),
    ("order_updated", {"order_details": {"id": 1001, "status": "organizer_cancelled"}, "event": {"id": 42}}),
)


def _entity(trigger_type, entity):
    if trigger_type.startswith("order"):
        return f"order {entity['order_details']['id']}"
    return f"event {entity['id']}"


class Console:
    """Lines from several threads, one at a time, with the time since the start."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def say(self, text):
        with self.lock:
            print(f"  {time.monotonic() - self.started:6.2f}s  {text}", file=self.out, flush=True)


class Receiver:
    """A customer's CRM on 127.0.0.1: /oauth/token hands out tokens, /webhooks takes deliveries."""

    def __init__(self, console, client_secret, signing_secret):
        self.console = console
        self.client_secret = client_secret
        self.signing_key = base64.b64decode(signing_secret.removeprefix("whsec_"))
        self.tokens = set()
        self.token_requests = 0
        self.received = []
        self.turned_away = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/oauth/token":
                    status, answer = receiver.token(body)
                elif self.path == "/webhooks":
                    status, answer = receiver.webhook(self.headers, body)
                else:
                    status, answer = 404, {"message": "no such path"}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def token(self, body):
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != self.client_secret:
            self.console.say("receiver   /oauth/token: wrong client credentials -> 401")
            return 401, {"message": "invalid_client"}
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
            self.token_requests += 1
        self.console.say(f"receiver   /oauth/token: client {CLIENT_ID} authenticated, access token issued "
                         "(doo-webhooks caches it for the next deliveries)")
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def webhook(self, headers, body):
        authorization = headers.get("Authorization") or ""
        if authorization.removeprefix("Bearer ") not in self.tokens:
            self.console.say("receiver   /webhooks: unknown bearer token -> 401")
            return 401, {"message": "invalid token"}
        content = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(self.signing_key, content, hashlib.sha256).digest()).decode()
        signed = "signature ok" if hmac.compare_digest(expected, headers.get("webhook-signature") or "") \
            else "SIGNATURE MISMATCH"
        data = json.loads(body)
        what = f"order {data['order_details']['id']} ({data['order_details']['status']})" \
            if "order_details" in data else f"event {data.get('id')}"
        with self.lock:
            first_time = what.startswith(f"order {TURNED_AWAY} ") and TURNED_AWAY not in self.turned_away
            if first_time:
                self.turned_away.add(TURNED_AWAY)
            else:
                self.received.append(data)
        if first_time:
            self.console.say(f"receiver   /webhooks: {what}, {signed}, but busy -> 503")
            return 503, {"message": "try again later"}
        self.console.say(f"receiver   /webhooks: {what}, bearer token ok, {signed} -> 200")
        return 200, {"message": "ok"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class LiveView:
    """A WorkerContext observer: one line per recorded attempt; knows when all were delivered."""

    def __init__(self, console, expected):
        self.console = console
        self.expected = expected
        self.names = {}  # trigger_id -> "order_created order 1001"
        self.delivered = set()
        self.retries = 0
        self.changed = threading.Condition()

    def __call__(self, outcome):
        name = self.names.get(outcome.get("trigger_id"), outcome.get("trigger_id"))
        code = outcome.get("last_status_code")
        answer = f"HTTP {code}" if code is not None else (outcome.get("last_error") or "no answer")
        line = f"delivery   {name}: attempt {outcome['number']} -> {answer} in {outcome['duration_ms']} ms, "
        status = outcome["status"]
        if status == Status.DELIVERED:
            latency = (outcome["now"] - outcome["received_at"]).total_seconds()
            line += f"delivered ({latency:.2f} s after the trigger arrived)"
        elif status == Status.RETRYING:
            wait = max(0.0, (outcome["next_attempt_at"] - outcome["now"]).total_seconds())
            line += f"retrying in {wait:.0f} s"
        else:
            line += status
        self.console.say(line)
        with self.changed:
            if status == Status.DELIVERED:
                self.delivered.add(outcome["id"])
            elif status == Status.RETRYING:
                self.retries += 1
            self.changed.notify_all()

    def wait(self, timeout):
        """True once ``expected`` deliveries were delivered, False when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.delivered) < self.expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True


def _settings(base, data_dir, temporary):
    """The environment's settings, made to run here alone: SQLite in ``data_dir``, quick retries,
    and receivers on 127.0.0.1 allowed."""
    import ipaddress
    loopback = ipaddress.ip_network("127.0.0.0/8")
    from cryptography.fernet import Fernet
    return base.replace(
        # a throwaway folder needs no key file: its data goes with it
        secret_keys=base.secret_keys or ((Fernet.generate_key().decode(),) if temporary else ()),
        data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'doo-webhooks.sqlite3'}",
        allowed_networks=tuple(base.allowed_networks) + ((loopback,) if loopback not in base.allowed_networks else ()),
        retry_schedule=(1.0,), retry_jitter=0.0, dispatch_interval=0.2)


class _Stop(Exception):
    pass


class DemoError(Exception):
    """The API refused a step of the demo (a bug: the demo only sends what the API takes)."""


def _ok(answer):
    if answer.status_code >= 300:
        raise DemoError(f"{answer.request.method} {answer.url} answered {answer.status_code}: {answer.text[:500]}")
    return answer.json()


def run(base_settings, data_dir=None, port=0, timeout=60, out=None):
    """Run the demo; returns the exit status (0: every delivery arrived)."""
    import pathlib

    from doo_webhooks.standalone import Service

    console = Console(out)
    temporary = data_dir is None
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="doo-webhooks-demo-") if temporary else data_dir).expanduser()
    settings = _settings(base_settings, data_dir.resolve(), temporary)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_stop) if main else None
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (as a shell does for a
    # background job, and so for everything that job starts): Python then installs no handler
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    service = server = receiver = None
    try:
        service = Service(settings, "127.0.0.1", port)
        if service.creds is None:
            print(f"{data_dir} holds an operator's ledger, not a demo: run the demo with an empty --data-dir.",
                  file=console.out)
            return 2
        server = threading.Thread(target=service.serve_forever, name="api", daemon=True)
        server.start()
        client_secret, signing_secret = secrets.token_urlsafe(24), "whsec_" + base64.b64encode(
            secrets.token_bytes(32)).decode()
        receiver = Receiver(console, client_secret, signing_secret)
        view = LiveView(console, expected=len(TRIGGERS))
        service.ctx.observers.append(view)
        print(f"doo-webhooks demo: the service runs at {service.base} (data in {data_dir}),\n"
              f"a receiver (a customer's CRM) at {receiver.url('/')} with its OAuth token endpoint.\n",
              file=console.out, flush=True)
        _drive(service, receiver, view, console, client_secret, signing_secret)
        if not view.wait(timeout):
            console.say(f"gave up after {timeout} s: {len(view.delivered)} of {view.expected} delivered")
            return 1
        _summary(service, receiver, view, console)
        return 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=console.out, flush=True)
        return 1
    except (KeyboardInterrupt, _Stop):
        print("\ninterrupted", file=console.out, flush=True)
        return 130
    finally:
        if service is not None:
            service.stop()
            if server is not None:
                server.join(timeout=5)
            service.close()
        if receiver is not None:
            receiver.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _raise_stop(*_):
    raise _Stop()


def _drive(service, receiver, view, console, client_secret, signing_secret):
    """What a customer and the platform do, over the public API."""
    api, creds = service.base + "/v1", service.creds
    http = requests.Session()
    answer = http.post(f"{api}/oauth", headers={"x-api-key": creds["api_key"]}, json={
        "client_id": creds["client_id"], "client_secret": creds["client_secret"],
        "grant_type": "client_credentials"}, timeout=10)
    http.headers.update({"x-api-key": creds["api_key"],
                         "Authorization": f"Bearer {_ok(answer)['data']['access_token']}"})
    config = {
        "name": "Demo CRM",
        "hooks": [{"type": kind, "endpoint": receiver.url("/webhooks")}
                  for kind in ("event_created", "order_created", "order_updated")],
        "authentication": {"grant_type": "client_credentials", "endpoint": receiver.url("/oauth/token"),
                           "credentials": {"client_id": CLIENT_ID, "client_secret": client_secret},
                           "header_format": "Authorization", "header_value_format": "Bearer %ACCESS_TOKEN%"},
        "signing_secret": signing_secret,
    }
    group_id = _ok(http.post(f"{api}/team/{creds['team_id']}/webhooks", json=config, timeout=10))["data"]
    console.say(f"api        POST /v1/team/{creds['team_id']}/webhooks: webhook group {group_id} "
                "created (event_created, order_created, order_updated -> the receiver, OAuth2, signed)")
    for trigger_type, entity in TRIGGERS:
        answer = http.post(f"{api}/triggers", headers={"x-api-key": creds["platform_key"], "Authorization": None},
                           json={"type": trigger_type, "entity": entity,
                                 "organization_id": creds["organization_id"]}, timeout=10)
        trigger_id = _ok(answer)["data"]["trigger_id"]
        name = f"{trigger_type} {_entity(trigger_type, entity)}"
        view.names[trigger_id] = name
        console.say(f"platform   POST /v1/triggers: {name} (trigger {trigger_id[:12]}...)")


def _summary(service, receiver, view, console):
    metrics = requests.get(service.base + "/metrics", timeout=10).text
    shown = [line for line in metrics.splitlines() if line.startswith((
        "doo_webhooks_attempts_total", "doo_webhooks_deliveries_total", "doo_webhooks_token_fetches_total",
        "doo_webhooks_delivery_latency_seconds_count"))]
    print(f"\nAll {view.expected} deliveries arrived ({view.retries} after a retry); the receiver was asked for "
          f"{receiver.token_requests} access token(s).\n"
          # no URL: the service stops with the demo, so a URL printed here would answer nothing
          "Prometheus metrics of this run (its /metrics, read just before it stops):\n    "
          + "\n    ".join(shown) + "\n\n"
          "Run it for real: `doo-webhooks standalone` (README.rst; /metrics beside the API), "
          "production: docs/deployment.md.",
          file=console.out, flush=True)
