"""Real HTTP peers on 127.0.0.1 for tests: a receiver, an OAuth token endpoint, a GraphQL origin.

Each records what it received; tests wait on a condition (``wait_for``), never on a sleep.
"""

import json
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer


class Recorded:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.arrived = time.monotonic()
        self.answered = None  # the status the route answered with (None: no answer, or not yet)

    def json(self):
        return json.loads(self.body)

    def form(self):
        return dict(urllib.parse.parse_qsl(self.body.decode()))


#: A route returning this (instead of a status, headers, body tuple) has the connection reset
#: without any answer: a receiver that crashes mid-request.
RESET = object()


class Streamed:
    """A body of ``size`` bytes written a chunk at a time, never held in memory: a receiver that
    answers with far more than anyone should read. Writing stops when the client goes away."""

    def __init__(self, size, chunk=b"x" * 65536):
        self.size, self.chunk = size, chunk
        self.written = 0

    def write_to(self, wfile):
        while self.written < self.size:
            piece = self.chunk[:self.size - self.written]
            wfile.write(piece)
            self.written += len(piece)


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of new connections from the send
    # loop (up to HOST_CONCURRENCY at once) overflowed it, and the dropped SYNs came back as
    # one-second connect timeouts
    request_queue_size = 1024


class Peer:
    """An HTTP server whose answers come from ``routes[path](recorded) -> (status, headers, body)``."""

    def __init__(self):
        self.requests = []
        self.routes = {}
        self.changed = threading.Condition()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                recorded = Recorded(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
                with peer.changed:  # recorded on arrival: a test may hold the answer back
                    peer.requests.append(recorded)
                    peer.changed.notify_all()
                route = peer.routes.get(path)
                answer = route(recorded) if route else (404, {}, b'{"message":"no route"}')
                if answer is RESET:
                    # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer"
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                status, headers, payload = answer
                recorded.answered = status
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                size = payload.size if isinstance(payload, Streamed) else len(payload)
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    if isinstance(payload, Streamed):
                        payload.write_to(self.wfile)
                    else:
                        self.wfile.write(payload)
                except OSError:  # the client went away (its timeout, or it read enough): not our error
                    self.close_connection = True

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server.server_port}"

    def url(self, path):
        return self.base + path

    def at(self, path):
        return [r for r in self.requests if r.path == path]

    def wait_for(self, predicate, timeout=30, what="condition"):
        """Block until ``predicate(self)`` holds (re-checked on every request), or fail."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; got {len(self.requests)} request(s)")
                self.changed.wait(min(left, 0.5))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def token_route(tokens=None, expires_in=3600):
    """An OAuth client-credentials endpoint handing out tok-1, tok-2, ..."""
    counter = iter(range(1, 10_000))

    def route(recorded):
        token = f"tok-{next(counter)}"
        if tokens is not None:
            tokens.append(token)
        return 200, {}, {"access_token": token, "expires_in": expires_in, "message": "ok", "description": ""}
    return route


def scripted(*statuses, then=200):
    """Answer with ``statuses`` in turn, then ``then`` forever."""
    queue = list(statuses)
    lock = threading.Lock()

    def route(recorded):
        with lock:
            status = queue.pop(0) if queue else then
        return status, {}, {"message": "ok" if status == 200 else "failed", "description": f"status {status}"}
    return route


def graphql_route():
    """A GraphQL origin (graphql-core) for events and orders, like doo's gql.doo.net."""
    import graphql

    schema = graphql.build_schema("""
        type Event { id: ID! title: String! }
        type Order { id: ID! hash: String! event: Event! }
        type Query { event(id: ID!): Event  order(id: ID!): Order }
    """)
    root = {
        "event": lambda info=None, id=None: {"id": id, "title": f"Event {id}"},
        "order": lambda info=None, id=None: {"id": id, "hash": f"h-{id}", "event": {"id": "7", "title": "Event 7"}},
    }

    def route(recorded):
        request = recorded.json()
        result = graphql.graphql_sync(schema, request["query"], root_value=root,
                                      variable_values=request.get("variables"),
                                      operation_name=request.get("operationName"))
        body = {"data": result.data}
        if result.errors:
            body["errors"] = [{"message": e.message} for e in result.errors]
        return 200, {}, body
    return route


def held(release, free=0, timeout=30, status=200):
    """Answer the first ``free`` requests at once; hold the others until ``release`` (an Event)
    is set, then answer ``status``: requests stay in flight while a test breaks something."""
    count = iter(range(1, 10**9))
    lock = threading.Lock()

    def route(recorded):
        with lock:
            n = next(count)
        if n > free:
            release.wait(timeout=timeout)
            return status, {}, {"message": "ok" if status == 200 else "failed"}
        return 200, {}, {"message": "ok"}
    return route
