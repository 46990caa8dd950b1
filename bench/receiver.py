"""A fast webhook receiver for the benchmark: raw asyncio, HTTP/1.1 keep-alive, one process.

    python bench/receiver.py --control 18000 --port 18001=ok --port 18002=delay:1 --port 18003=fail:30

Each ``--port`` listens on 127.0.0.1 with a behaviour:

* ``ok``: answer 200 at once;
* ``delay:S``: answer 200 after S seconds (sockets wait, nothing blocks);
* ``fail:T``: answer 500 for T seconds from the moment the behaviour was set, then 200.

Per request it records the receipt time (``time.time()``), the port, the status answered, the
``webhook-id`` header, ``X-Doo-Trigger`` when present, and ``bench_seq`` when the body carries
one (the harness puts a sequence number in each entity, so emit and receipt can be matched
whatever the ids look like).

The control port speaks the same HTTP: ``GET /stats`` (counts per port and status), ``GET
/records`` (everything recorded, JSON), ``POST /reset`` (forget the records), ``POST
/behaviour?port=P&mode=fail:30`` (change a port's behaviour now), ``POST /quit``.

Why not aiohttp or werkzeug: the receiver must cost far less than what it measures; a
hand-rolled parser answers tens of thousands of requests a second on one core.
"""

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from urllib.parse import parse_qs
from urllib.parse import urlsplit

SEQ = re.compile(rb'"bench_seq"\s*:\s*(\d+)')
MAX_HEAD = 64 * 1024
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error"}


class Behaviour:
    """What one port answers, and since when (for ``fail:T``)."""

    def __init__(self, spec):
        self.spec = spec
        self.set_at = time.time()
        mode, _, arg = spec.partition(":")
        if mode not in ("ok", "delay", "fail"):
            raise ValueError(f"unknown behaviour {spec!r}: ok, delay:SECONDS or fail:SECONDS")
        if mode != "ok" and not arg:
            raise ValueError(f"behaviour {spec!r} needs seconds, e.g. {mode}:1")
        self.mode = mode
        self.seconds = float(arg) if arg else 0.0

    def answer(self, now):
        """(status, delay in seconds)."""
        if self.mode == "delay":
            return 200, self.seconds
        if self.mode == "fail" and now < self.set_at + self.seconds:
            return 500, 0.0
        return 200, 0.0

    def describe(self):
        data = {"spec": self.spec, "set_at": self.set_at}
        if self.mode == "fail":
            data["recovers_at"] = self.set_at + self.seconds
        return data


class Request:
    __slots__ = ("method", "target", "version", "headers", "body")

    def __init__(self, method, target, version, headers, body):
        self.method, self.target, self.version, self.headers, self.body = method, target, version, headers, body

    def keep_alive(self):
        connection = self.headers.get(b"connection", b"").lower()
        if self.version == b"HTTP/1.0":
            return connection == b"keep-alive"
        return connection != b"close"


class ParseError(Exception):
    pass


def parse(buffer):
    """One request from the front of ``buffer``: (Request, bytes consumed), or (None, 0) when
    more bytes are needed. Raises ParseError on a malformed request."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ParseError("head too large")
        return None, 0
    lines = bytes(buffer[:end]).split(b"\r\n")
    try:
        method, target, version = lines[0].split(b" ", 2)
    except ValueError:
        raise ParseError(f"bad request line {lines[0][:80]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ParseError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body, used = _chunked(buffer, start)
        if body is None:
            return None, 0
        return Request(method, target, version, headers, body), used
    try:
        length = int(headers.get(b"content-length", b"0"))
    except ValueError:
        raise ParseError("bad content-length") from None
    if len(buffer) < start + length:
        return None, 0
    return Request(method, target, version, headers, bytes(buffer[start:start + length])), start + length


def _chunked(buffer, pos):
    body = bytearray()
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        try:
            size = int(bytes(buffer[pos:eol]).split(b";")[0], 16)
        except ValueError:
            raise ParseError("bad chunk size") from None
        pos = eol + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None, 0
            return bytes(body), trailer_end + 4
        if len(buffer) < pos + size + 2:
            return None, 0
        body += buffer[pos:pos + size]
        pos += size + 2


def response(status, body=b"", content_type=b"text/plain", keep_alive=True):
    return b"".join((b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"OK")),
                     b"Content-Type: ", content_type, b"\r\nContent-Length: %d\r\n" % len(body),
                     b"" if keep_alive else b"Connection: close\r\n", b"\r\n", body))


class Recorder:
    """Every request received on a hook port, as compact tuples."""

    def __init__(self):
        self.records = []
        self.counts = {}

    def add(self, port, status, request):
        headers = request.headers
        match = SEQ.search(request.body)
        hook_id = headers.get(b"webhook-id")
        trigger = headers.get(b"x-doo-trigger")
        self.records.append((time.time(), port, status, hook_id.decode() if hook_id else None,
                             trigger.decode() if trigger else None, int(match.group(1)) if match else None))
        key = f"{port}:{status}"
        self.counts[key] = self.counts.get(key, 0) + 1


class HookProtocol(asyncio.Protocol):
    """One connection: requests answered in order, one at a time (a delayed answer holds the
    next request of the same connection back, as a real server would)."""

    def __init__(self, server, port):
        self.server, self.port = server, port
        self.buffer = bytearray()
        self.busy = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        if not self.busy:
            self.process()

    def connection_lost(self, exc):
        self.transport = None

    def process(self):
        while self.transport is not None and not self.busy:
            try:
                request, used = parse(self.buffer)
            except ParseError as exc:
                self.transport.write(response(400, str(exc).encode(), keep_alive=False))
                self.transport.close()
                return
            if request is None:
                return
            del self.buffer[:used]
            self.handle(request)

    def handle(self, request):
        status, delay = self.server.behaviours[self.port].answer(time.time())
        self.server.recorder.add(self.port, status, request)
        keep_alive = request.keep_alive()
        if delay:
            self.busy = True
            asyncio.get_running_loop().call_later(delay, self.finish, status, keep_alive)
        else:
            self.finish(status, keep_alive)

    def finish(self, status, keep_alive):
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(response(status, keep_alive=keep_alive))
        if not keep_alive:
            self.transport.close()
        elif self.buffer:
            self.process()


class ControlProtocol(HookProtocol):
    def handle(self, request):
        status, body = self.server.control(request)
        self.finish_json(status, body, request.keep_alive())

    def finish_json(self, status, body, keep_alive):
        self.transport.write(response(status, json.dumps(body).encode(), b"application/json", keep_alive))
        if not keep_alive:
            self.transport.close()


class Receiver:
    def __init__(self, behaviours):
        self.behaviours = behaviours
        self.recorder = Recorder()
        self.done = None

    def control(self, request):
        url = urlsplit(request.target.decode("latin-1"))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/stats":
            return 200, {"received": len(self.recorder.records), "counts": self.recorder.counts,
                         "behaviours": {p: b.describe() for p, b in self.behaviours.items()}}
        if url.path == "/records":
            return 200, {"fields": ["time", "port", "status", "webhook_id", "trigger", "seq"],
                         "records": self.recorder.records}
        if url.path == "/reset" and request.method == b"POST":
            self.recorder = Recorder()
            return 200, {"ok": True}
        if url.path == "/behaviour" and request.method == b"POST":
            try:
                port = int(query["port"])
                if port not in self.behaviours:
                    return 404, {"error": f"not a hook port: {port}"}
                self.behaviours[port] = Behaviour(query["mode"])
            except (KeyError, ValueError) as exc:
                return 400, {"error": f"POST /behaviour?port=P&mode=ok|delay:S|fail:S ({exc})"}
            return 200, self.behaviours[port].describe()
        if url.path == "/quit" and request.method == b"POST":
            asyncio.get_running_loop().call_soon(self.done.set)
            return 200, {"ok": True}
        return 404, {"error": f"unknown control path {url.path}"}

    async def serve(self, control_port):
        loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.done.set)
        servers = [await loop.create_server(lambda p=port: HookProtocol(self, p), "127.0.0.1", port,
                                            backlog=1024, reuse_address=True)
                   for port in self.behaviours]
        servers.append(await loop.create_server(lambda: ControlProtocol(self, control_port), "127.0.0.1",
                                                control_port, reuse_address=True))
        print(f"receiver ready on {sorted(self.behaviours)} control {control_port}", flush=True)
        await self.done.wait()
        for server in servers:
            server.close()


def port_spec(text):
    port, sep, spec = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PORT=BEHAVIOUR, e.g. 18001=ok")
    try:
        return int(port), Behaviour(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--control", type=int, required=True, help="port of the control endpoint")
    parser.add_argument("--port", type=port_spec, action="append", required=True, metavar="PORT=BEHAVIOUR")
    args = parser.parse_args(argv)
    try:
        import uvloop  # optional: a faster loop when installed
        uvloop.install()
    except ImportError:
        pass
    receiver = Receiver(dict(args.port))
    asyncio.run(receiver.serve(args.control))
    return 0


if __name__ == "__main__":
    sys.exit(main())
