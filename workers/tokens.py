"""OAuth2 client-credentials access tokens for receivers, cached and fetched single-flight.

doo's contract: ``POST endpoint`` with the form ``grant_type=client_credentials&client_id=…
&client_secret=…`` (no Basic auth); the answer is JSON with ``access_token`` and optionally
``expires_in``.
"""

import contextlib
import hashlib
import json
import logging
import math
import secrets
import threading
import time
import urllib.parse

import redis

from storage.lifecycle import ErrorKind
from workers import http

log = logging.getLogger(__name__)

KEY_PREFIX = "doo-webhooks:token:"
LOCK_PREFIX = "doo-webhooks:token-lock:"
EXCERPT_CHARS = 300
MAX_TOKEN_RESPONSE_BYTES = 65536


class TokenError(Exception):
    """A token could not be obtained; ``kind`` is token_error, ssrf_blocked, timeout or connection."""

    def __init__(self, detail, *, kind=ErrorKind.TOKEN_ERROR, status_code=None):
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.status_code = status_code


class MemoryTokenCache:
    """Tokens in this process (embedded mode); single flight across its threads."""

    def __init__(self):
        self._tokens = {}
        self._locks = {}
        self._guard = threading.Lock()

    def get(self, key):
        with self._guard:
            token, expires_at = self._tokens.get(key, (None, 0.0))
            if token is not None and time.monotonic() >= expires_at:
                del self._tokens[key]
                return None
            return token

    def set(self, key, token, ttl_seconds):
        with self._guard:
            self._tokens[key] = (token, time.monotonic() + ttl_seconds)

    def delete(self, key, expected=None):
        """Drop the token; with ``expected``, only if it is still that token."""
        with self._guard:
            if expected is None or self._tokens.get(key, (None,))[0] == expected:
                self._tokens.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key, timeout):
        """Yields True when the lock was taken, False when ``timeout`` ran out first."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        acquired = lock.acquire(timeout=timeout)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()


# Deletes only what this caller wrote: a lock that expired and was taken by another
# worker (or a token that was already replaced) is left alone.
_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTokenCache:
    """Tokens in Redis, shared by every worker; single flight across processes."""

    poll_min, poll_max = 0.01, 0.1

    def __init__(self, redis_client):
        self.redis = redis_client
        self._compare_and_delete = redis_client.register_script(_COMPARE_AND_DELETE)

    def get(self, key):
        value = self.redis.get(KEY_PREFIX + key)
        return value.decode() if value is not None else None

    def set(self, key, token, ttl_seconds):
        self.redis.set(KEY_PREFIX + key, token, ex=max(1, int(ttl_seconds)))

    def delete(self, key, expected=None):
        """Drop the token; with ``expected``, only if it is still that token."""
        if expected is None:
            self.redis.delete(KEY_PREFIX + key)
        else:
            self._compare_and_delete(keys=[KEY_PREFIX + key], args=[expected])

    @contextlib.contextmanager
    def lock(self, key, timeout):
        """Yields True when the lock was taken, False when ``timeout`` ran out first.

        The lock also expires after ``timeout``, so a worker that dies holding it blocks
        the others for at most that long.
        """
        name, value = LOCK_PREFIX + key, secrets.token_hex(16)
        deadline, delay = time.monotonic() + timeout, self.poll_min
        acquired = False
        while True:
            if self.redis.set(name, value, nx=True, px=max(1, int(timeout * 1000))):
                acquired = True
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.poll_max)
        try:
            yield acquired
        finally:
            if acquired:
                self._compare_and_delete(keys=[name], args=[value])


_memory_cache = MemoryTokenCache()
_redis_clients = {}
_redis_clients_guard = threading.Lock()


def make_token_cache(settings):
    """The token cache ``settings.redis_url`` names ('memory://' = in this process)."""
    if settings.redis_url == "memory://":
        return _memory_cache
    with _redis_clients_guard:
        client = _redis_clients.get(settings.redis_url)
        if client is None:
            client = _redis_clients[settings.redis_url] = redis.Redis.from_url(settings.redis_url)
    return RedisTokenCache(client)


def cache_key(auth, client_secret):
    """sha256 over endpoint, client_id and secret: the secret never appears in a key."""
    parts = [auth.get("endpoint") or "", (auth.get("credentials") or {}).get("client_id") or "",
             client_secret or ""]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def authorization_header(auth, token):
    """The (name, value) header that carries ``token`` to the receiver."""
    name = auth.get("header_format") or "Authorization"
    value = (auth.get("header_value_format") or "Bearer %ACCESS_TOKEN%").replace("%ACCESS_TOKEN%", token)
    return name, value


def _ttl(answer, settings):
    expires_in = answer.get("expires_in")
    try:
        seconds = float(expires_in) if not isinstance(expires_in, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds):
        return settings.token_default_ttl
    return max(1, int(seconds - settings.token_leeway))


class TokenProvider:
    """Access tokens per (endpoint, client_id, secret), fetched once however many ask at once."""

    def __init__(self, settings, cache, on_fetch=None):
        self.settings = settings
        self.cache = cache
        self.on_fetch = on_fetch
        self.fetches = 0
        self._fetches_guard = threading.Lock()

    def get(self, auth, client_secret):
        """A valid access token; raises TokenError."""
        key = cache_key(auth, client_secret)
        token = self.cache.get(key)
        if token is not None:
            return token
        # Longer than one fetch can take: past that the holder is presumed dead.
        wait = self.settings.connect_timeout + self.settings.read_timeout + 5
        with self.cache.lock(key, wait):
            token = self.cache.get(key)
            if token is not None:
                return token
            token, ttl = self._fetch(auth, client_secret)
            self.cache.set(key, token, ttl)
            return token

    def invalidate(self, auth, client_secret, token=None):
        """Forget the cached token (e.g. after a 401); with ``token``, only if it is still that one."""
        self.cache.delete(cache_key(auth, client_secret), token)

    def _fetch(self, auth, client_secret):
        with self._fetches_guard:
            self.fetches += 1
        outcome = ErrorKind.TOKEN_ERROR
        try:
            token, ttl = self._request(auth, client_secret or "")
            outcome = "ok"
            return token, ttl
        except TokenError as exc:
            outcome = exc.kind
            raise
        finally:
            if self.on_fetch is not None:
                try:
                    self.on_fetch(outcome)
                except Exception:  # metrics must never fail a delivery
                    log.exception("on_fetch callback failed")

    def _request(self, auth, client_secret):
        endpoint = auth.get("endpoint")
        if auth.get("grant_type", "client_credentials") != "client_credentials" or not endpoint:
            raise TokenError("authentication needs grant_type client_credentials and an endpoint")
        form = {"grant_type": "client_credentials"}
        client_id = (auth.get("credentials") or {}).get("client_id")
        if client_id:
            form["client_id"] = client_id
        form["client_secret"] = client_secret
        result = http.send(
            http.session_for(self.settings), "POST", endpoint,
            body=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            timeouts=self.settings.timeouts, max_bytes=MAX_TOKEN_RESPONSE_BYTES)

        def fail(detail, kind=ErrorKind.TOKEN_ERROR):
            # An endpoint may echo the request back: keep the secret out of logs and ledger.
            for form_of_secret in {client_secret, urllib.parse.quote_plus(client_secret)} - {""}:
                detail = detail.replace(form_of_secret, "***")
            return TokenError(detail, kind=kind, status_code=result.status_code)

        if result.error_kind is not None:
            raise fail(f"token request failed: {result.error_detail}", result.error_kind)
        excerpt = result.body[:EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
        if result.status_code != 200:
            raise fail(f"token endpoint answered HTTP {result.status_code}: {excerpt}")
        try:
            answer = json.loads(result.body)
        except ValueError:
            raise fail(f"token endpoint answer is not JSON: {excerpt}") from None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token or not token.isprintable():
            raise fail(f"token endpoint answer has no usable access_token: {excerpt}")
        return token, _ttl(answer, self.settings)
