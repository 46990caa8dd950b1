"""Outbound HTTP to receivers on asyncio (aiohttp): sockets, not threads.

The async counterpart of ``workers.http.send`` for the delivery loop. Same contract: one
request, no redirects followed, no proxies from the environment, at most ``max_bytes`` of the
answer kept, network problems come back as ``HttpResult.error_kind`` (an ErrorKind: SSRF_BLOCKED,
TIMEOUT, CONNECTION) and never raise. Tokens and GraphQL origins stay on
``workers.http`` (requests, in threads).

SSRF guard. aiohttp calls its resolver on every DNS cache miss; ``GuardedResolver`` refuses
the whole answer when ANY address in it is blocked (the rule of
``http._guarded_connection``), so no connection to a blocked address is ever attempted. The
DNS cache only ever holds answers that passed the check, and lives ``DNS_TTL`` seconds, so a
rebinding name is judged again soon after. IP literals never reach a resolver in aiohttp,
so they are judged in ``send`` before anything else happens.

Caps. At most ``per_host`` requests in flight per (scheme, host, port) and ``total`` overall,
held by our own semaphores rather than TCPConnector(limit_per_host=...): we need to know
when the wait for a slot is over (the attempt's clock and timeouts start there, not before)
and which hosts are saturated (``busy_hosts``). The per-host slot is taken before the total
one, so requests queued behind a slow host never sit on total slots a healthy host could use.
The connector itself is unlimited, so it never queues a request a second time.

Timeouts, once a slot is held:
- connect: ``ClientTimeout(connect=, sock_connect=)`` = settings.connect_timeout. With an
  unlimited connector, aiohttp's ``connect`` phase is DNS + TCP (+ TLS) only, no pool wait.
- read: one deadline of settings.read_timeout for the whole exchange once a connection is
  in hand (new or reused from keep-alive): sending the request, the status line, headers and
  the body up to ``max_bytes``. A receiver that drips a byte at a time cannot stretch it,
  which a per-read socket timeout (requests, aiohttp's ``sock_read``) would allow. The
  deadline is armed by our connector the moment it hands over a connection.

Headers. The request carries exactly the caller's headers plus Host and Content-Length:
aiohttp's automatic Accept, Accept-Encoding, User-Agent and Content-Type are skipped, and
``http.USER_AGENT`` is added only when the caller gave no User-Agent (as
``http.session_for`` does). Without an Accept-Encoding we ask for no compression, and
``auto_decompress=False`` keeps the excerpt as the bytes received (``max_bytes`` then bounds
what came over the wire, not what a compressed body expands to).
"""

import asyncio
import contextvars
import functools
import socket
import time

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver
from requests.structures import CaseInsensitiveDict

from storage.lifecycle import ErrorKind
from workers import http
from workers import ssrf

try:
    from asyncio import timeout as _deadline  # Python 3.11+
except ImportError:  # pragma: no cover - Python 3.10: aiohttp depends on async-timeout there
    from async_timeout import timeout as _deadline

DNS_TTL = 10  # seconds an already-checked DNS answer is reused
CHUNK = 16384
# aiohttp adds these unless told not to; the caller's headers are the whole request.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses the answer if any address in it is blocked."""

    def __init__(self, allowed_networks, inner=None):
        self.allowed_networks = tuple(allowed_networks)
        self.inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        answers = await self.inner.resolve(host, port, family)
        ssrf.check_resolved(host, [answer["host"] for answer in answers], self.allowed_networks)
        return answers

    async def close(self):
        await self.inner.close()


class _HostCaps:
    """Per-key semaphores that exist only while someone holds or waits for them."""

    def __init__(self, per_host):
        self.per_host = per_host
        self._slots = {}  # key -> [semaphore, holders, holders + waiters]

    async def acquire(self, key):
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = [asyncio.Semaphore(self.per_host), 0, 0]
        slot[2] += 1
        try:
            await slot[0].acquire()
        except BaseException:
            self._leave(key, slot)
            raise
        slot[1] += 1

    def release(self, key):
        slot = self._slots[key]
        slot[1] -= 1
        slot[0].release()
        self._leave(key, slot)

    def _leave(self, key, slot):
        slot[2] -= 1
        if slot[2] == 0:
            del self._slots[key]

    def busy(self):
        return {key for key, slot in self._slots.items() if slot[1] >= self.per_host}


def host_key(url):
    """(scheme, host, port) of a yarl URL: the unit the per-host cap counts."""
    return url.scheme, url.host, url.port


def _named(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@functools.lru_cache(maxsize=4096)
def host_port(endpoint):
    """An endpoint URL's host as busy_hosts names it: "host:port" ("[v6]:port" for IPv6)."""
    url = yarl.URL(endpoint)
    return _named(url.host or "", url.port)


def response_headers(raw):
    """Case-insensitive headers, repeated names joined with ", " (what requests gives)."""
    headers = CaseInsensitiveDict()
    for name, value in raw.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def classify(exc):
    """(error_kind, error_detail) for an exception out of aiohttp or the guard."""
    chain = http._chain(exc)
    for item in chain:
        if isinstance(item, ssrf.SSRFBlocked):
            return ErrorKind.SSRF_BLOCKED, str(item)
    detail = (str(exc) or type(exc).__name__)[:500]
    for item in chain:
        # ServerTimeoutError and ConnectionTimeoutError are both asyncio.TimeoutError.
        if isinstance(item, (asyncio.TimeoutError, socket.timeout)):
            return ErrorKind.TIMEOUT, detail
    return ErrorKind.CONNECTION, detail


def _expired(deadline):
    expired = deadline.expired  # a method on asyncio.Timeout, a property on async_timeout's
    return expired() if callable(expired) else expired


# The read deadline of the request this task is sending, armed once its connection is ready.
_deadline_of_request = contextvars.ContextVar("transport_read_deadline", default=None)


class _ArmingConnector(aiohttp.TCPConnector):
    """A TCPConnector that starts the request's read deadline once a connection is in hand.

    ClientSession awaits ``connect`` in the sending task, so the context variable set by
    ``Transport._exchange`` is the one of this very request. (aiohttp's trace signals for
    the same moments cost a quarter of the CPU of a request; this costs next to nothing.)"""

    async def connect(self, *args, **kwargs):
        connection = await super().connect(*args, **kwargs)
        armed = _deadline_of_request.get()
        if armed is not None:
            deadline, read_timeout = armed
            deadline.reschedule(asyncio.get_running_loop().time() + read_timeout)
        return connection


class Transport:
    """Receivers' HTTP for one event loop: keep-alive pools, a cap per host and in total.

    Not thread-safe, and bound to the loop of its first ``send``: one per loop, closed there."""

    def __init__(self, settings, per_host=8, total=1000):
        if per_host < 1 or total < 1:
            raise ValueError("per_host and total must be at least 1")
        self.allowed_networks = tuple(settings.allowed_networks)
        self.connect_timeout = settings.connect_timeout
        self.read_timeout = settings.read_timeout
        self.per_host, self.total = per_host, total
        self._hosts = _HostCaps(per_host)
        self._literals = {}
        self._total = None
        self._session = None

    def _ensure_session(self):
        # Created lazily: aiohttp sessions and asyncio primitives belong to the running loop.
        if self._session is None:
            connector = _ArmingConnector(
                limit=0, limit_per_host=0,  # our semaphores cap; the connector never queues
                resolver=GuardedResolver(self.allowed_networks),
                use_dns_cache=True, ttl_dns_cache=DNS_TTL)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.connect_timeout,
                                              sock_connect=self.connect_timeout))
            self._total = asyncio.Semaphore(self.total)
        return self._session

    def _literal_refusal(self, host):
        """The SSRF refusal for an IP-literal host (aiohttp resolves no literal), else None.
        Remembered per host: parsing it costs more than the rest of the check."""
        try:
            return self._literals[host]
        except KeyError:
            pass
        literal = ssrf.literal_address(host)
        refusal = None
        if literal is not None and ssrf.is_blocked(str(literal), self.allowed_networks):
            refusal = str(ssrf.SSRFBlocked(str(literal), host))
        if len(self._literals) >= 10_000:  # receivers' hosts are few; a bound all the same
            self._literals.clear()
        self._literals[host] = refusal
        return refusal

    def busy_hosts(self):
        """``host_port`` of every host whose per-host cap is fully used right now: more of its
        deliveries would only wait here, so they can wait in the ledger."""
        return {_named(host, port) for _, host, port in self._hosts.busy()}

    async def close(self):
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, method, url, *, body=b"", headers, max_bytes=65536):
        """One request; never raises for network problems (see the module docstring)."""
        try:
            target = yarl.URL(url)
            if target.scheme not in ("http", "https") or not target.host:
                raise ValueError(f"Invalid URL {url!r}: an http or https URL with a host is needed")
        except ValueError as exc:
            return http.HttpResult(None, {}, b"", 0, ErrorKind.CONNECTION, str(exc)[:500])
        refusal = self._literal_refusal(target.host)
        if refusal is not None:
            return http.HttpResult(None, {}, b"", 0, ErrorKind.SSRF_BLOCKED, refusal)
        headers = dict(headers)
        if not any(name.lower() == "user-agent" for name in headers):
            headers["User-Agent"] = http.USER_AGENT
        session = self._ensure_session()
        key = host_key(target)
        await self._hosts.acquire(key)
        try:
            async with self._total:
                return await self._exchange(session, method, target, body, headers, max_bytes)
        finally:
            self._hosts.release(key)

    async def _exchange(self, session, method, target, body, headers, max_bytes):
        started = time.monotonic()
        status, got_headers, chunks, size, response, deadline = None, {}, [], 0, None, None

        def result(error=None):
            kind, detail = classify(error) if error is not None else (None, None)
            return http.HttpResult(status, got_headers, b"".join(chunks)[:max_bytes],
                                   int((time.monotonic() - started) * 1000), kind, detail)

        try:
            async with _deadline(None) as deadline:  # armed when the connection is ready
                token = _deadline_of_request.set((deadline, self.read_timeout))
                try:
                    response = await session.request(method, target, data=body or None,
                                                     headers=headers, allow_redirects=False)
                finally:
                    _deadline_of_request.reset(token)
                status, got_headers = response.status, response_headers(response.headers)
                while size < max_bytes:
                    chunk = await response.content.read(min(CHUNK, max_bytes - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except (aiohttp.ClientError, ssrf.SSRFBlocked, OSError, asyncio.TimeoutError, ValueError) as exc:
            if deadline is not None and _expired(deadline):
                # Our deadline says nothing itself; name it, as aiohttp names its connect timeout.
                exc = asyncio.TimeoutError(f"no complete answer within the read timeout "
                                           f"({self.read_timeout} s) from {target.host}:{target.port}")
            return result(exc)
        finally:
            if response is not None:
                if response.content.at_eof():
                    response.release()  # fully read: the connection goes back to the pool
                else:
                    response.close()  # unread rest: drop it rather than reuse a half-read one
        return result()
