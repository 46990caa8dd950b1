"""workers.transport without a network: the resolver guard, the caps, error and header mapping.
The real sockets are in tests/integration/test_transport.py."""

import asyncio
import ipaddress
import socket

import aiohttp
import pytest
import yarl

from ground.settings import from_env
from workers import ssrf
from workers import transport

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def make_settings(allowed="", **env):
    return from_env({"DOO_WEBHOOKS_ALLOWED_NETWORKS": allowed,
                     **{f"DOO_WEBHOOKS_{k.upper()}": str(v) for k, v in env.items()}})


class FakeResolver(aiohttp.abc.AbstractResolver):
    def __init__(self, *ips):
        self.ips, self.calls, self.closed = ips, [], False

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.calls.append(host)
        return [{"hostname": host, "host": ip, "port": port, "family": family, "proto": 0, "flags": 0}
                for ip in self.ips]

    async def close(self):
        self.closed = True


@pytest.fixture
def no_connects(monkeypatch):
    def refuse(sock, address):
        raise AssertionError(f"test tried to connect to {address}")
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("ips, allowed, refused", [
    (("8.8.8.8",), (), None),
    (("127.0.0.1",), (), "127.0.0.1"),
    (("127.0.0.1",), (LOOPBACK,), None),
    (("127.0.0.1", "10.0.0.1"), (LOOPBACK,), "10.0.0.1"),  # one blocked address is enough
    (("8.8.8.8", "169.254.169.254"), (), "169.254.169.254"),
    (("::ffff:169.254.169.254",), (), "::ffff:169.254.169.254"),
])
def test_guarded_resolver_refuses_any_blocked_address(ips, allowed, refused):
    resolver = transport.GuardedResolver(allowed, inner=FakeResolver(*ips))
    if refused is None:
        answers = asyncio.run(resolver.resolve("receiver.test", 80))
        assert [a["host"] for a in answers] == list(ips)
        return
    with pytest.raises(ssrf.SSRFBlocked) as caught:
        asyncio.run(resolver.resolve("receiver.test", 80))
    assert caught.value.address == refused
    assert str(caught.value) == str(ssrf.SSRFBlocked(refused, "receiver.test"))


def test_guarded_resolver_closes_inner():
    inner = FakeResolver()
    asyncio.run(transport.GuardedResolver((), inner=inner).close())
    assert inner.closed


def test_host_caps_count_holders_and_forget_idle_keys():
    async def scenario():
        caps = transport._HostCaps(2)
        await caps.acquire("a")
        assert caps.busy() == set()
        await caps.acquire("a")
        assert caps.busy() == {"a"}
        third = asyncio.create_task(caps.acquire("a"))
        await asyncio.sleep(0)  # let it reach the semaphore: it must wait there
        assert not third.done()
        await caps.acquire("b")  # another key is not held up
        assert caps.busy() == {"a"}
        caps.release("a")
        await third
        assert caps.busy() == {"a"}
        for key in ("a", "a", "b"):
            caps.release(key)
        assert caps.busy() == set() and caps._slots == {}

        # A waiter that is cancelled leaves no trace either.
        await caps.acquire("c")
        await caps.acquire("c")
        waiter = asyncio.create_task(caps.acquire("c"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        caps.release("c")
        caps.release("c")
        assert caps._slots == {}
    asyncio.run(scenario())


def test_busy_hosts_names_host_and_port():
    async def scenario():
        sender = transport.Transport(make_settings(), per_host=1)
        for url in ("http://a.test/", "https://a.test/", "http://[::1]:8080/", "http://b.test:81/"):
            await sender._hosts.acquire(transport.host_key(yarl.URL(url)))
        return sender.busy_hosts()
    assert asyncio.run(scenario()) == {"a.test:80", "a.test:443", "[::1]:8080", "b.test:81"}


def test_host_key_uses_default_ports():
    assert transport.host_key(yarl.URL("http://Example.com/x")) == ("http", "example.com", 80)
    assert transport.host_key(yarl.URL("https://example.com/x")) == ("https", "example.com", 443)
    assert transport.host_key(yarl.URL("http://[::1]:8080/")) == ("http", "::1", 8080)


def test_response_headers_are_case_insensitive_and_join_repeats():
    from multidict import CIMultiDict
    raw = CIMultiDict([("Retry-After", "30"), ("Link", "<a>"), ("link", "<b>")])
    headers = transport.response_headers(raw)
    assert headers["retry-after"] == "30"
    assert headers["LINK"] == "<a>, <b>"


def caused_by(exc, cause):
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize("exc, kind", [
    (ssrf.SSRFBlocked("10.0.0.1", "x.test"), "ssrf_blocked"),
    (caused_by(aiohttp.ClientError("wrapped"), ssrf.SSRFBlocked("10.0.0.1", "x.test")), "ssrf_blocked"),
    (aiohttp.ConnectionTimeoutError("Connection timeout to host"), "timeout"),
    (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), "timeout"),
    (asyncio.TimeoutError("no complete answer"), "timeout"),
    (ConnectionRefusedError(111, "Connect call failed"), "connection"),
    (aiohttp.ServerDisconnectedError(), "connection"),
    (aiohttp.ClientPayloadError("Response payload is not completed"), "connection"),
])
def test_classify(exc, kind):
    got_kind, detail = transport.classify(exc)
    assert got_kind == kind
    assert detail
    if kind == "ssrf_blocked":
        assert detail == str(ssrf.SSRFBlocked("10.0.0.1", "x.test"))


@pytest.mark.parametrize("url, allowed, refused", [
    ("http://127.0.0.1:8080/hook", (), "127.0.0.1"),
    ("http://[::1]/", (), "::1"),
    ("http://2130706433/", (), "2130706433 resolves to 127.0.0.1"),
    ("http://127.1/", (), "127.1 resolves to 127.0.0.1"),
    ("https://169.254.169.254/latest/meta-data/", (LOOPBACK,), "169.254.169.254"),
])
def test_ip_literals_are_refused_before_any_connection(no_connects, url, allowed, refused):
    async def scenario():
        sender = transport.Transport(make_settings(",".join(map(str, allowed))))
        try:
            return await sender.send("POST", url, body=b"{}", headers={})
        finally:
            await sender.close()
    result = asyncio.run(scenario())
    assert (result.status_code, result.error_kind) == (None, "ssrf_blocked")
    assert result.error_detail.startswith(refused + ":")
    assert "ALLOWED_NETWORKS" in result.error_detail


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "http:///nohost",
                                 "http://exa mple.com/"])
def test_bad_urls_are_connection_errors_not_exceptions(no_connects, url):
    async def scenario():
        sender = transport.Transport(make_settings())
        try:
            return await sender.send("POST", url, body=b"", headers={})
        finally:
            await sender.close()
    result = asyncio.run(scenario())
    assert (result.status_code, result.error_kind) == (None, "connection")
    assert result.error_detail


def test_caps_must_be_positive():
    with pytest.raises(ValueError):
        transport.Transport(make_settings(), per_host=0)
    with pytest.raises(ValueError):
        transport.Transport(make_settings(), total=0)
