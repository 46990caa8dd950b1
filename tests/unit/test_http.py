import ipaddress
import socket
import threading
import time

import pytest
from hypothesis import given, strategies as st
from werkzeug import Response

from ground.settings import from_env
from workers import http
from workers import ssrf

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def make_settings(allowed=""):
    return from_env({"DOO_WEBHOOKS_ALLOWED_NETWORKS": allowed})


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket connects to; anything but loopback fails the test at once."""
    seen = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        seen.append(address)
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return seen


@pytest.fixture
def resolve(monkeypatch):
    """resolve(host, *ips): make getaddrinfo answer ``ips`` for ``host`` (no DNS query)."""
    real_getaddrinfo = socket.getaddrinfo
    table = {}

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            if not table[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in table[host]]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return lambda host, *ips: table.__setitem__(host, ips)


def do_send(settings, url, **kwargs):
    kwargs.setdefault("headers", {})
    kwargs.setdefault("timeouts", (1, 2))
    return http.send(http.session_for(settings), "POST", url, **kwargs)


@pytest.mark.parametrize("ip, allowed, blocked", [
    ("8.8.8.8", (), False),
    ("1.1.1.1", (), False),
    ("127.0.0.1", (), True),
    ("10.0.0.1", (), True),
    ("172.16.5.4", (), True),
    ("192.168.1.1", (), True),
    ("169.254.169.254", (), True),
    ("100.64.0.1", (), True),
    ("100.127.255.254", (), True),
    ("0.0.0.0", (), True),
    ("224.0.0.1", (), True),
    ("239.255.255.250", (), True),
    ("240.0.0.1", (), True),
    ("255.255.255.255", (), True),
    ("2001:4860:4860::8888", (), False),
    ("::1", (), True),
    ("::", (), True),
    ("fe80::1", (), True),
    ("fe80::1%eth0", (), True),
    ("fc00::1", (), True),
    ("fd12:3456::1", (), True),
    ("fec0::1", (), True),
    ("ff02::1", (), True),
    ("2001:db8::1", (), True),
    ("64:ff9b::a00:1", (), True),
    ("2002:a00:1::", (), True),          # 6to4 around 10.0.0.1
    ("2002:808:808::", (), False),       # 6to4 around 8.8.8.8
    ("::ffff:127.0.0.1", (), True),
    ("::ffff:10.0.0.1", (), True),
    ("::ffff:169.254.169.254", (), True),
    ("::ffff:8.8.8.8", (), False),
    ("127.0.0.1", (LOOPBACK,), False),
    ("127.9.9.9", (LOOPBACK,), False),
    ("::ffff:127.0.0.1", (LOOPBACK,), False),
    ("::1", (LOOPBACK,), True),
    ("10.0.0.1", (LOOPBACK,), True),
    ("10.1.2.3", (ipaddress.ip_network("10.0.0.0/8"),), False),
    ("fd00::5", (ipaddress.ip_network("fd00::/8"),), False),
    ("not-an-ip", (), True),
    ("", (), True),
])
def test_is_blocked(ip, allowed, blocked):
    assert ssrf.is_blocked(ip, allowed) is blocked


@given(st.ip_addresses(v=4))
def test_is_blocked_sees_through_ipv4_mapped(addr):
    mapped = ipaddress.IPv6Address(f"::ffff:{addr}")
    assert ssrf.is_blocked(str(mapped), ()) == ssrf.is_blocked(str(addr), ())
    assert ssrf.is_blocked(str(mapped), (ipaddress.ip_network("0.0.0.0/0"),)) is False


@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=4, network="169.254.0.0/16")
       | st.ip_addresses(v=4, network="100.64.0.0/10") | st.ip_addresses(v=6, network="fe80::/10"))
def test_is_blocked_internal_ranges(addr):
    assert ssrf.is_blocked(str(addr), (LOOPBACK,))


@pytest.mark.parametrize("url, allowed, refused", [
    ("http://127.0.0.1:8080/hook", (), True),
    ("http://127.0.0.1:8080/hook", (LOOPBACK,), False),
    ("https://10.0.0.1/", (), True),
    ("http://169.254.169.254/latest/meta-data/", (), True),
    ("http://[::1]/", (), True),
    ("http://[::ffff:10.0.0.1]/", (), True),
    ("http://2130706433/", (), True),      # 127.0.0.1 as one number
    ("http://127.1/", (), True),
    ("http://0x7f.0.0.1/", (), True),
    ("http://8.8.8.8/", (), False),
    ("http://[2001:4860:4860::8888]/", (), False),
    ("https://example.com/hook", (), False),
    ("http://localhost/", (), False),       # a name: only the connect-time guard can judge it
    ("not a url", (), False),
])
def test_check_url_literal(url, allowed, refused):
    reason = ssrf.check_url_literal(url, allowed)
    assert (reason is not None) is refused
    if refused:
        assert "DOO_WEBHOOKS_ALLOWED_NETWORKS" in reason


def test_session_for_is_per_thread_and_per_allowlist():
    settings = make_settings("127.0.0.0/8")
    session = http.session_for(settings)
    assert http.session_for(settings) is session
    assert http.session_for(make_settings("127.0.0.0/8")) is session
    assert http.session_for(make_settings("10.0.0.0/8")) is not session
    other = []
    thread = threading.Thread(target=lambda: other.append(http.session_for(settings)))
    thread.start()
    thread.join()
    assert other[0] is not session
    assert session.trust_env is False
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix + "example.com/")
        assert isinstance(adapter, http.GuardedAdapter)
        assert adapter.max_retries.total == 0
        assert adapter.allowed_networks == (LOOPBACK,)


def test_send_returns_status_headers_and_truncated_body(server, connects):
    server.expect_request("/hook", method="POST", data=b'{"a": 1}').respond_with_data(
        b"x" * 100_000, status=201, headers={"X-Answer": "yes"})
    settings = make_settings("127.0.0.0/8")
    result = do_send(settings, server.url_for("/hook"), body=b'{"a": 1}',
                     headers={"Content-Type": "application/json"}, max_bytes=1000)
    assert (result.status_code, result.error_kind, result.error_detail) == (201, None, None)
    assert result.body == b"x" * 1000
    assert result.headers["X-Answer"] == "yes"
    assert result.duration_ms >= 0
    request = server.log[0][0]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == http.USER_AGENT

    # The half-read connection was dropped, not reused: the next request works.
    server.clear()
    server.expect_request("/again").respond_with_data(b"short")
    again = do_send(settings, server.url_for("/again"))
    assert (again.status_code, again.body) == (200, b"short")
    assert all(address[0] == "127.0.0.1" for address in connects)


def settled(server, count=1):
    """Wait until the server has logged ``count`` requests: it logs a request only once its
    handler returns, and a late entry would land in a later test's log (the server is shared)."""
    deadline = time.monotonic() + 10
    while len(server.log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(server.log)


def test_send_stops_reading_at_max_bytes(server):
    release = threading.Event()

    def endless():
        yield b"y" * 65536
        release.wait(10)  # the rest never comes: reading on would end in a read timeout
        yield b"never read"

    server.expect_request("/stream").respond_with_handler(lambda request: Response(endless()))
    try:
        result = do_send(make_settings("127.0.0.0/8"), server.url_for("/stream"),
                         timeouts=(1, 2), max_bytes=1000)
    finally:
        release.set()
        settled(server)
    assert (result.status_code, result.error_kind) == (200, None)
    assert result.body == b"y" * 1000


def test_send_does_not_follow_redirects(server):
    server.expect_request("/hook").respond_with_data(
        b"moved", status=302, headers={"Location": server.url_for("/elsewhere")})
    server.expect_request("/elsewhere").respond_with_data(b"should not be reached")
    result = do_send(make_settings("127.0.0.0/8"), server.url_for("/hook"))
    assert result.status_code == 302
    assert result.body == b"moved"
    assert result.headers["Location"].endswith("/elsewhere")
    assert [request.path for request, _ in server.log] == ["/hook"]


def test_read_timeout(server):
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return Response(b"late")

    server.expect_request("/slow").respond_with_handler(slow)
    try:
        result = do_send(make_settings("127.0.0.0/8"), server.url_for("/slow"), timeouts=(1, 0.3))
    finally:
        release.set()
        settled(server)
    assert result.error_kind == "timeout"
    assert result.status_code is None
    assert result.duration_ms >= 250
    assert result.error_detail


def test_connection_refused():
    # Bound but not listening: connecting is refused, and no one else can take the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        result = do_send(make_settings("127.0.0.0/8"), f"http://127.0.0.1:{port}/hook")
    assert result.error_kind == "connection"
    assert result.status_code is None
    assert "refused" in result.error_detail.lower()


def test_connect_timeout_is_timeout(monkeypatch):
    def slow_connect(sock, address):
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket.socket, "connect", slow_connect)
    result = do_send(make_settings("127.0.0.0/8"), "http://127.0.0.1:9/hook")
    assert result.error_kind == "timeout"


def test_dns_failure_is_connection(resolve, connects):
    resolve("no-such-host.test")
    result = do_send(make_settings("127.0.0.0/8"), "http://no-such-host.test/hook")
    assert result.error_kind == "connection"
    assert connects == []


def test_loopback_not_allowed_is_blocked(server, connects):
    server.expect_request("/hook").respond_with_data(b"ok")
    result = do_send(make_settings(""), server.url_for("/hook"))
    assert result.error_kind == "ssrf_blocked"
    assert "127.0.0.1" in result.error_detail
    assert "DOO_WEBHOOKS_ALLOWED_NETWORKS" in result.error_detail  # the setting an operator can change
    assert result.status_code is None
    assert server.log == []
    assert connects == []


@pytest.mark.parametrize("addresses", [
    ("169.254.169.254",),
    ("10.0.0.1",),
    ("127.0.0.1", "10.0.0.1"),        # one allowed address is not enough
    ("::ffff:169.254.169.254",),
])
def test_hostname_resolving_to_internal_address_is_blocked(resolve, connects, addresses):
    resolve("rebind.test", *addresses)
    result = do_send(make_settings("127.0.0.0/8"), "http://rebind.test/latest/meta-data/")
    assert result.error_kind == "ssrf_blocked"
    assert addresses[-1] in result.error_detail
    assert connects == []


def test_hostname_resolving_to_allowed_address_connects(server, resolve, connects):
    server.expect_request("/hook").respond_with_data(b"ok")
    resolve("receiver.test", "127.0.0.1")
    result = do_send(make_settings("127.0.0.0/8"), f"http://receiver.test:{server.port}/hook")
    assert (result.status_code, result.body) == (200, b"ok")
    assert server.log[0][0].headers["Host"] == f"receiver.test:{server.port}"
    assert [address[0] for address in connects] == ["127.0.0.1"]


def test_ssrf_blocked_raised_by_session_carries_address(resolve, connects):
    resolve("metadata.test", "169.254.169.254")
    with pytest.raises(ssrf.SSRFBlocked) as caught:
        http.session_for(make_settings("")).get("http://metadata.test/", timeout=(1, 1))
    assert caught.value.address == "169.254.169.254"
    assert connects == []


def test_https_is_guarded_too(resolve, connects):
    resolve("metadata.test", "169.254.169.254")
    result = do_send(make_settings(""), "https://metadata.test/")
    assert result.error_kind == "ssrf_blocked"
    assert connects == []


def test_proxies_are_refused(connects):
    session = http.session_for(make_settings("127.0.0.0/8"))
    with pytest.raises(ssrf.SSRFBlocked):
        session.get("http://example.com/", proxies={"http": "http://127.0.0.1:9"}, timeout=(1, 1))
    assert connects == []


def test_invalid_url_does_not_raise():
    result = do_send(make_settings(""), "not a url")
    assert result.error_kind == "connection"
    assert result.status_code is None
