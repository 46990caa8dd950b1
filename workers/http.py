"""Outbound HTTP on requests (token endpoints, GraphQL origins, notifications), guarded at
connect time by the SSRF rule of ``workers.ssrf``: every address the hostname resolved to is
checked before the socket connects."""

import dataclasses
import socket
import sys
import threading
import time

import requests
from requests.structures import CaseInsensitiveDict
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import connection as urllib3_connection
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from storage.lifecycle import ErrorKind
from workers import ssrf

USER_AGENT = "doo-webhooks"
def _guarded_connection(host, port, timeout, source_address, socket_options, allowed_networks):
    """urllib3's create_connection, but every resolved address is checked first."""
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM)
    ssrf.check_resolved(host, [info[4][0] for info in infos], allowed_networks)
    error = OSError("getaddrinfo returns an empty list")
    for family, socktype, proto, _, sockaddr in infos:
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            urllib3_connection._set_socket_options(sock, socket_options)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    raise error


class _GuardMixin:
    def __init__(self, *args, allowed_networks=(), **kwargs):
        self._allowed_networks = allowed_networks
        super().__init__(*args, **kwargs)

    def _new_conn(self):
        # Same error mapping as urllib3 2.x HTTPConnection._new_conn; only the
        # resolution/connect step differs. TLS still wraps this socket with SNI and
        # certificate checks on self.host, the hostname.
        try:
            sock = _guarded_connection(self._dns_host, self.port, self.timeout, self.source_address,
                                       self.socket_options, self._allowed_networks)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except socket.timeout as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedPoolManager(PoolManager):
    def __init__(self, *args, allowed_networks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed_networks = allowed_networks
        self.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def _new_pool(self, scheme, host, port, request_context=None):
        pool = super()._new_pool(scheme, host, port, request_context)
        # Via conn_kw, not connection_pool_kw: unknown pool-key fields make PoolManager fail.
        pool.conn_kw["allowed_networks"] = self.allowed_networks
        return pool


class GuardedAdapter(HTTPAdapter):
    """HTTPAdapter whose connections pass through the SSRF guard."""

    def __init__(self, allowed_networks=(), **kwargs):
        self.allowed_networks = tuple(allowed_networks)
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _GuardedPoolManager(num_pools=connections, maxsize=maxsize, block=block,
                                               allowed_networks=self.allowed_networks, **pool_kwargs)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # A proxy would make the connection on our behalf, out of the guard's sight.
        raise ssrf.SSRFBlocked(proxy)


_local = threading.local()


def session_for(settings):
    """This thread's Session for ``settings.allowed_networks`` (Sessions are not thread-safe)."""
    networks = tuple(settings.allowed_networks)
    sessions = _local.__dict__.setdefault("sessions", {})
    session = sessions.get(networks)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc from the environment
        session.headers["User-Agent"] = USER_AGENT
        adapter = GuardedAdapter(networks, pool_connections=50, pool_maxsize=50, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        sessions[networks] = session
    return session


@dataclasses.dataclass
class HttpResult:
    status_code: int | None
    headers: dict
    body: bytes
    duration_ms: int
    error_kind: str | None = None
    error_detail: str | None = None


def _chain(exc):
    seen, todo = [], [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend((current.__cause__, current.__context__, getattr(current, "reason", None), *current.args))
    return seen


def _classify(exc):
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, ssrf.SSRFBlocked):
            return ErrorKind.SSRF_BLOCKED, str(item)
    for item in chain:
        # urllib3 2.x makes NewConnectionError a ConnectTimeoutError for compatibility.
        if isinstance(item, (requests.Timeout, Urllib3Timeout, socket.timeout)) \
                and not isinstance(item, NewConnectionError):
            return ErrorKind.TIMEOUT, str(exc)[:500]
    return ErrorKind.CONNECTION, str(exc)[:500]


def send(session, method, url, *, body=b"", headers, timeouts, max_bytes=65536):
    """One request, no redirects followed, at most ``max_bytes`` of the answer kept; never raises
    for network problems (they come back as ``error_kind``)."""
    started = time.monotonic()

    def result(status=None, got_headers=None, content=b"", error=None):
        kind, detail = _classify(error) if error is not None else (None, None)
        return HttpResult(status, got_headers or {}, content,
                          int((time.monotonic() - started) * 1000), kind, detail)

    try:
        response = session.request(method, url, data=body or None, headers=headers,
                                   timeout=timeouts, allow_redirects=False, stream=True)
    except (requests.RequestException, ssrf.SSRFBlocked, OSError) as exc:
        return result(error=exc)
    status, got_headers, chunks, size = response.status_code, CaseInsensitiveDict(response.headers), [], 0
    try:
        for chunk in response.iter_content(chunk_size=8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= max_bytes:
                break
    except (requests.RequestException, OSError) as exc:
        return result(status, got_headers, b"".join(chunks)[:max_bytes], exc)
    finally:
        # Unread rest: close drops the connection instead of reusing a half-read one.
        response.close()
    return result(status, got_headers, b"".join(chunks)[:max_bytes])
