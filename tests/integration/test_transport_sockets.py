"""workers.transport against real sockets: a small HTTP/1.1 server on 127.0.0.1 in the test's own
event loop, which counts connections and requests and can hold answers back until released."""

import asyncio
import socket
import time

import pytest

from ground.settings import from_env
from workers import http
from workers import ssrf
from workers.transport import Transport

WAIT = 10  # seconds any condition may take before the test fails


def make_settings(allowed="127.0.0.0/8", connect_timeout=1, read_timeout=2):
    return from_env({"DOO_WEBHOOKS_ALLOWED_NETWORKS": allowed,
                     "DOO_WEBHOOKS_CONNECT_TIMEOUT": str(connect_timeout),
                     "DOO_WEBHOOKS_READ_TIMEOUT": str(read_timeout)})


class Request:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body


class Gauge:
    """Requests in flight and the most seen at once; peers may share one."""

    def __init__(self):
        self.now = self.most = 0

    def add(self, n):
        self.now += n
        self.most = max(self.most, self.now)


class AsyncPeer:
    """``routes[path](peer, request) -> (status, headers, body)``, awaited; may wait on ``release``.
    Peers given the same ``changed`` and ``across`` share their notifications and a gauge."""

    def __init__(self, changed=None, across=None):
        self.routes = {}
        self.requests = []
        self.connections = 0
        self.gauge = Gauge()
        self.across = across or Gauge()
        self.release = asyncio.Event()
        self.changed = changed or asyncio.Condition()
        self.server = None

    @property
    def in_flight(self):
        return self.gauge.now

    @property
    def max_in_flight(self):
        return self.gauge.most

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.release.set()
        self.server.close()
        # Connections still open (keep-alive, held answers) end when their handler returns.
        await self.server.wait_closed()

    def url(self, path, host="127.0.0.1"):
        return f"http://{host}:{self.port}{path}"

    async def _notify(self):
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate):
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), WAIT)

    async def _serve(self, reader, writer):
        self.connections += 1
        await self._notify()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                request = Request(method, target, headers, body)
                self.requests.append(request)
                self.gauge.add(1)
                self.across.add(1)
                await self._notify()
                try:
                    route = self.routes.get(target, ok)
                    status, extra, payload = await route(self, request)
                    if callable(payload):  # a streaming body: it writes itself
                        head = {"Content-Length": str(extra.pop("length")), **extra}
                        writer.write(response_head(status, head))
                        await payload(writer)
                    else:
                        writer.write(response_head(status, {"Content-Length": str(len(payload)), **extra}))
                        writer.write(payload)
                        await writer.drain()
                finally:
                    self.gauge.add(-1)
                    self.across.add(-1)
                    await self._notify()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def response_head(status, headers):
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def ok(peer, request):
    return 200, {}, b"ok"


async def held(peer, request):
    await peer.release.wait()
    return 200, {}, b"released"


def run(scenario, settings=None, **transport_kwargs):
    """Run ``scenario(sender)`` with a fresh Transport in a fresh loop, closing it afterwards."""
    async def main():
        sender = Transport(settings or make_settings(), **transport_kwargs)
        try:
            # A send that never returns fails the test, soon.
            return await asyncio.wait_for(scenario(sender), WAIT)
        finally:
            await sender.close()
    return asyncio.run(main())


def test_status_headers_body_and_the_exact_request_headers():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            async def created(peer, request):
                return 201, {"X-Answer": "yes", "Retry-After": "30"}, b'{"id": 1}'
            peer.routes["/hook"] = created
            result = await sender.send("POST", peer.url("/hook"), body=b'{"a": 1}',
                                       headers={"Content-Type": "application/json", "webhook-id": "w1"},
                                       max_bytes=1000)
            return result, peer.requests
    result, requests = run(scenario)
    assert (result.status_code, result.error_kind, result.error_detail) == (201, None, None)
    assert result.body == b'{"id": 1}'
    assert result.headers["x-answer"] == "yes" and result.headers["RETRY-AFTER"] == "30"
    assert result.duration_ms >= 0
    [request] = requests
    assert (request.method, request.body) == ("POST", b'{"a": 1}')
    # Exactly the caller's headers, our User-Agent (none given), Host and Content-Length.
    assert request.headers == {"content-type": "application/json", "webhook-id": "w1",
                               "user-agent": http.USER_AGENT, "host": request.headers["host"],
                               "content-length": "8"}


def test_callers_user_agent_is_the_only_one():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            await sender.send("POST", peer.url("/hook"), body=b"", headers={"user-agent": "doo-webhooks/9"})
            return peer.requests
    [request] = run(scenario)
    assert request.headers["user-agent"] == "doo-webhooks/9"
    assert request.headers["content-length"] == "0"


def test_server_error_is_an_answer_not_an_error():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            async def failing(peer, request):
                return 500, {}, b"boom"
            peer.routes["/hook"] = failing
            return await sender.send("POST", peer.url("/hook"), body=b"{}", headers={})
    result = run(scenario)
    assert (result.status_code, result.body, result.error_kind) == (500, b"boom", None)


def test_redirects_are_not_followed():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            async def moved(peer, request):
                return 302, {"Location": peer.url("/elsewhere")}, b"moved"
            peer.routes["/hook"] = moved
            result = await sender.send("POST", peer.url("/hook"), body=b"{}", headers={})
            return result, [r.path for r in peer.requests]
    result, paths = run(scenario)
    assert (result.status_code, result.body) == (302, b"moved")
    assert result.headers["location"].endswith("/elsewhere")
    assert paths == ["/hook"]


@pytest.mark.parametrize("warm", [False, True], ids=["new-connection", "kept-alive-connection"])
def test_read_timeout_on_a_server_that_does_not_answer(warm):
    async def scenario(sender):
        async with AsyncPeer() as peer:
            peer.routes["/slow"] = held  # released only when the peer closes
            if warm:
                assert (await sender.send("POST", peer.url("/hook"), body=b"", headers={})).status_code == 200
            result = await sender.send("POST", peer.url("/slow"), body=b"{}", headers={})
            return result, peer.connections
    result, connections = run(scenario, make_settings(read_timeout=0.3))
    assert (result.status_code, result.error_kind) == (None, "timeout")
    assert "read timeout" in result.error_detail
    assert 250 <= result.duration_ms < 2000
    assert connections == 1


def test_read_timeout_covers_the_whole_body_not_each_read():
    """A receiver dripping its body, each piece well within the read timeout, still hits it."""
    async def scenario(sender):
        async with AsyncPeer() as peer:
            async def drip(peer, request):
                async def write(writer):
                    for _ in range(100):
                        writer.write(b"x")
                        await writer.drain()
                        await asyncio.sleep(0.05)  # the receiver's pace, not a synchronisation
                return 200, {"length": 100}, write
            peer.routes["/drip"] = drip
            return await sender.send("POST", peer.url("/drip"), body=b"{}", headers={})
    result = run(scenario, make_settings(read_timeout=0.5))
    assert (result.status_code, result.error_kind) == (200, "timeout")
    assert 0 < len(result.body) < 100  # the part that came is kept
    assert 450 <= result.duration_ms < 2000


def test_connection_refused():
    # Bound but not listening: connecting is refused, and no one else can take the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        result = run(lambda sender: sender.send("POST", f"http://127.0.0.1:{port}/", body=b"", headers={}))
    assert (result.status_code, result.error_kind) == (None, "connection")
    assert "refused" in result.error_detail.lower() or "connect call failed" in result.error_detail.lower()


def test_connect_timeout():
    # A listener with a full backlog that never accepts: the SYN goes unanswered.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        port = listener.getsockname()[1]
        result = run(lambda sender: sender.send("POST", f"http://127.0.0.1:{port}/", body=b"", headers={}),
                     make_settings(connect_timeout=0.3, read_timeout=5))
    assert (result.status_code, result.error_kind) == (None, "timeout")
    assert "connect" in result.error_detail.lower()
    assert 250 <= result.duration_ms < 2000


@pytest.fixture
def resolve(monkeypatch):
    """resolve(host, *ips): getaddrinfo answers ``ips`` for ``host`` (aiohttp's ThreadedResolver
    calls socket.getaddrinfo through the loop)."""
    real_getaddrinfo = socket.getaddrinfo
    table = {}

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in table[host]]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return lambda host, *ips: table.__setitem__(host, ips)


def test_hostname_resolving_to_loopback_is_refused_before_any_byte():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            result = await sender.send("POST", peer.url("/hook", host="localhost"), body=b"{}", headers={})
            return result, peer.connections
    result, connections = run(scenario, make_settings(allowed=""))
    assert (result.status_code, result.error_kind) == (None, "ssrf_blocked")
    assert result.error_detail.startswith("localhost resolves to ")
    assert connections == 0


def test_ip_literal_loopback_refused_unless_allowed():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            result = await sender.send("POST", peer.url("/hook"), body=b"{}", headers={})
            return result, peer.connections
    refused, connections = run(scenario, make_settings(allowed=""))
    assert (refused.error_kind, connections) == ("ssrf_blocked", 0)
    assert refused.error_detail == str(ssrf.SSRFBlocked("127.0.0.1", "127.0.0.1"))
    allowed, connections = run(scenario, make_settings(allowed="127.0.0.0/8"))
    assert (allowed.status_code, allowed.body, connections) == (200, b"ok", 1)


def test_hostname_with_one_internal_address_among_allowed_ones_is_refused(resolve):
    resolve("rebind.test", "127.0.0.1", "10.0.0.1")
    resolve("receiver.test", "127.0.0.1")

    async def scenario(sender):
        async with AsyncPeer() as peer:
            refused = await sender.send("POST", peer.url("/hook", host="rebind.test"), body=b"", headers={})
            allowed = await sender.send("POST", peer.url("/hook", host="receiver.test"), body=b"", headers={})
            return refused, allowed, peer.connections, peer.requests
    refused, allowed, connections, requests = run(scenario)
    assert refused.error_kind == "ssrf_blocked" and "10.0.0.1" in refused.error_detail
    assert (allowed.status_code, connections) == (200, 1)
    assert requests[0].headers["host"].startswith("receiver.test:")


def test_dns_cache_keeps_only_checked_answers(resolve):
    """A refused answer is not cached (the next lookup asks again). A name rebound to an
    internal address after an allowed answer still reaches only the checked address (through
    the kept-alive connection or the cached answer: both were checked)."""
    async def scenario(sender):
        async with AsyncPeer() as peer:
            url = peer.url("/hook", host="flip.test")
            resolve("flip.test", "10.0.0.1")
            refused = await sender.send("POST", url, body=b"", headers={})
            resolve("flip.test", "127.0.0.1")
            allowed = await sender.send("POST", url, body=b"", headers={})
            resolve("flip.test", "169.254.169.254")
            cached = await sender.send("POST", url, body=b"", headers={})
            return refused, allowed, cached, len(peer.requests)
    refused, allowed, cached, received = run(scenario)
    assert refused.error_kind == "ssrf_blocked"
    assert (allowed.status_code, cached.status_code, received) == (200, 200, 2)


def test_body_beyond_max_bytes_is_cut_and_the_connection_not_reused():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            async def endless(peer, request):
                async def write(writer):
                    writer.write(b"y" * 65536)
                    await writer.drain()
                    await peer.release.wait()  # the rest never comes while the test runs
                return 200, {"length": 10**9}, write
            peer.routes["/big"] = endless
            first = await sender.send("POST", peer.url("/big"), body=b"", headers={}, max_bytes=1000)
            second = await sender.send("POST", peer.url("/small"), body=b"", headers={})
            return first, second, peer.connections
    first, second, connections = run(scenario, make_settings(read_timeout=5))
    assert (first.status_code, first.error_kind, first.body) == (200, None, b"y" * 1000)
    assert first.duration_ms < 4000  # it stopped reading; it did not wait for the rest
    assert (second.status_code, second.body) == (200, b"ok")
    assert connections == 2  # the half-read connection was dropped, not reused


def test_keep_alive_one_connection_for_sequential_requests():
    async def scenario(sender):
        async with AsyncPeer() as peer:
            results = [await sender.send("POST", peer.url("/hook"), body=b"{}", headers={})
                       for _ in range(50)]
            return results, peer.connections
    results, connections = run(scenario)
    assert [r.status_code for r in results] == [200] * 50
    assert connections == 1


def test_per_host_cap_keeps_a_slow_host_from_starving_a_healthy_one():
    async def scenario(sender):
        async with AsyncPeer() as slow, AsyncPeer() as fast:
            slow.routes["/hook"] = held
            queued = [asyncio.create_task(sender.send("POST", slow.url("/hook"), body=b"", headers={}))
                      for _ in range(5)]
            await slow.wait_for(lambda: slow.in_flight == 2)
            busy = sender.busy_hosts()
            healthy = await sender.send("POST", fast.url("/hook"), body=b"", headers={})
            in_flight_meanwhile = slow.in_flight
            slow.release.set()
            results = await asyncio.gather(*queued)
            return busy, healthy, in_flight_meanwhile, results, slow, fast, sender.busy_hosts()
    busy, healthy, in_flight_meanwhile, results, slow, fast, busy_after = run(scenario, per_host=2)
    assert busy == {f"127.0.0.1:{slow.port}"}
    assert (healthy.status_code, healthy.body) == (200, b"ok")
    assert in_flight_meanwhile == 2
    assert [r.status_code for r in results] == [200] * 5
    assert slow.max_in_flight == 2 and slow.connections == 2
    assert busy_after == set()


def test_waiting_for_the_cap_is_not_part_of_the_attempt():
    """per_host=1: the third request waits behind two that each time out, twice its read
    timeout, and still succeeds, with a duration that leaves the wait out."""
    async def scenario(sender):
        async with AsyncPeer() as peer:
            peer.routes["/slow"] = held
            started = time.monotonic()
            first = asyncio.create_task(sender.send("POST", peer.url("/slow"), body=b"", headers={}))
            second = asyncio.create_task(sender.send("POST", peer.url("/slow"), body=b"", headers={}))
            third = asyncio.create_task(sender.send("POST", peer.url("/fast"), body=b"", headers={}))
            results = await asyncio.gather(first, second, third)
            return results, time.monotonic() - started
    (first, second, third), elapsed = run(scenario, make_settings(read_timeout=0.3), per_host=1)
    assert (first.error_kind, second.error_kind) == ("timeout", "timeout")
    assert (third.status_code, third.error_kind) == (200, None)
    assert elapsed >= 0.55
    assert third.duration_ms < elapsed * 1000 - 450  # the wait behind the two is not in it


def test_total_cap():
    async def scenario(sender):
        changed, across = asyncio.Condition(), Gauge()
        async with AsyncPeer(changed, across) as one, AsyncPeer(changed, across) as two:
            one.routes["/hook"] = two.routes["/hook"] = held
            tasks = [asyncio.create_task(sender.send("POST", peer.url("/hook"), body=b"", headers={}))
                     for peer in (one, two) for _ in range(3)]
            await one.wait_for(lambda: across.now == 3)
            waiting = sum(not task.done() for task in tasks)
            one.release.set()
            two.release.set()
            results = await asyncio.gather(*tasks)
            return waiting, across.most, results
    waiting, most, results = run(scenario, per_host=5, total=3)
    assert waiting == 6
    assert most == 3
    assert [r.status_code for r in results] == [200] * 6
