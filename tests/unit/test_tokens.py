import json
import socket
import threading
import time
import urllib.parse

import pytest
from werkzeug import Response

from ground.settings import from_env
from workers import tokens

SECRET = "s3cr3t+&=/value"
THREADS = 20


def make_settings(allowed="127.0.0.0/8", **extra):
    env = {"DOO_WEBHOOKS_ALLOWED_NETWORKS": allowed, "DOO_WEBHOOKS_REDIS_URL": "memory://",
           "DOO_WEBHOOKS_TOKEN_LEEWAY": "30", "DOO_WEBHOOKS_TOKEN_DEFAULT_TTL": "300",
           "DOO_WEBHOOKS_CONNECT_TIMEOUT": "2", "DOO_WEBHOOKS_READ_TIMEOUT": "5"}
    env.update({"DOO_WEBHOOKS_" + name: value for name, value in extra.items()})
    return from_env(env)


def make_auth(server, client_id="client-1", **extra):
    auth = {"grant_type": "client_credentials", "endpoint": server.url_for("/token"),
            "credentials": {} if client_id is None else {"client_id": client_id}}
    auth.update(extra)
    return auth


class SpyCache(tokens.MemoryTokenCache):
    """A fresh memory cache that records the TTLs it is given and who waits for its lock."""

    def __init__(self):
        super().__init__()
        self.ttls = []
        self.lock_entries = 0
        self.changed = threading.Condition()

    def set(self, key, token, ttl_seconds):
        self.ttls.append(ttl_seconds)
        super().set(key, token, ttl_seconds)

    def lock(self, key, timeout):
        with self.changed:
            self.lock_entries += 1
            self.changed.notify_all()
        return super().lock(key, timeout)


def token_answer(token="tok-1", **extra):
    return Response(json.dumps({"access_token": token, "token_type": "Bearer", **extra}),
                    content_type="application/json")


def test_form_body_is_exactly_the_three_fields(server):
    server.expect_request("/token", method="POST").respond_with_response(token_answer())
    provider = tokens.TokenProvider(make_settings(), SpyCache())
    assert provider.get(make_auth(server), SECRET) == "tok-1"
    request = server.log[0][0]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers
    assert urllib.parse.parse_qs(request.get_data(as_text=True), strict_parsing=True) == {
        "grant_type": ["client_credentials"], "client_id": ["client-1"], "client_secret": [SECRET]}


def test_missing_client_id_sends_no_client_id(server):
    server.expect_request("/token", method="POST").respond_with_response(token_answer())
    tokens.TokenProvider(make_settings(), SpyCache()).get(make_auth(server, client_id=None), SECRET)
    form = urllib.parse.parse_qs(server.log[0][0].get_data(as_text=True))
    assert form == {"grant_type": ["client_credentials"], "client_secret": [SECRET]}


def test_token_is_cached(server):
    server.expect_request("/token").respond_with_response(token_answer())
    calls = []
    provider = tokens.TokenProvider(make_settings(), SpyCache(), on_fetch=calls.append)
    auth = make_auth(server)
    assert provider.get(auth, SECRET) == "tok-1"
    assert provider.get(auth, SECRET) == "tok-1"
    assert len(server.log) == 1
    assert provider.fetches == 1
    assert calls == ["ok"]


def test_other_credentials_are_cached_apart(server):
    server.expect_request("/token").respond_with_response(token_answer())
    provider = tokens.TokenProvider(make_settings(), SpyCache())
    provider.get(make_auth(server), SECRET)
    provider.get(make_auth(server), "another secret")
    provider.get(make_auth(server, client_id="client-2"), SECRET)
    assert len(server.log) == 3


@pytest.mark.parametrize("extra, ttl", [
    ({"expires_in": 120}, 90),
    ({"expires_in": "120"}, 90),
    ({"expires_in": 3600.5}, 3570),
    ({"expires_in": 20}, 1),        # shorter than the leeway: kept for the minimum only
    ({"expires_in": 0}, 1),
    ({}, 300),
    ({"expires_in": "soon"}, 300),
    ({"expires_in": None}, 300),
])
def test_expires_in_sets_the_ttl(server, extra, ttl):
    server.expect_request("/token").respond_with_response(token_answer(**extra))
    cache = SpyCache()
    tokens.TokenProvider(make_settings(), cache).get(make_auth(server), SECRET)
    assert cache.ttls == [ttl]


def test_invalidate_forces_a_refetch(server):
    answers = iter(["tok-1", "tok-2", "tok-3"])
    server.expect_request("/token").respond_with_handler(lambda request: token_answer(next(answers)))
    provider = tokens.TokenProvider(make_settings(), SpyCache())
    auth = make_auth(server)
    assert provider.get(auth, SECRET) == "tok-1"
    provider.invalidate(auth, SECRET)
    assert provider.get(auth, SECRET) == "tok-2"
    # Invalidating a token that was already replaced keeps the newer one.
    provider.invalidate(auth, SECRET, token="tok-1")
    assert provider.get(auth, SECRET) == "tok-2"
    assert len(server.log) == 2
    assert provider.fetches == 2


@pytest.mark.parametrize("status, body, content_type", [
    (500, f"internal error, you sent client_secret={SECRET}", "text/plain"),
    (401, json.dumps({"error": "invalid_client", "echo": urllib.parse.quote_plus(SECRET)}), "application/json"),
    (200, "<html>not json " + SECRET + "</html>", "text/html"),
    (200, json.dumps({"token": "x", "echo": SECRET}), "application/json"),
    (200, json.dumps({"access_token": 42}), "application/json"),
    (200, json.dumps(["access_token"]), "application/json"),
])
def test_bad_answers_raise_token_error_without_the_secret(server, status, body, content_type):
    server.expect_request("/token").respond_with_data(body, status=status, content_type=content_type)
    calls = []
    cache = SpyCache()
    provider = tokens.TokenProvider(make_settings(), cache, on_fetch=calls.append)
    with pytest.raises(tokens.TokenError) as caught:
        provider.get(make_auth(server), SECRET)
    error = caught.value
    assert error.kind == "token_error"
    assert error.status_code == status
    for text in (str(error), error.detail, repr(error)):
        assert SECRET not in text
        assert urllib.parse.quote_plus(SECRET) not in text
    assert str(status) in str(error) or "JSON" in str(error) or "access_token" in str(error)
    assert calls == ["token_error"]
    assert cache.ttls == []


def test_error_excerpt_is_short(server):
    server.expect_request("/token").respond_with_data("E" * 5000, status=503)
    with pytest.raises(tokens.TokenError) as caught:
        tokens.TokenProvider(make_settings(), SpyCache()).get(make_auth(server), SECRET)
    assert "E" * 300 in caught.value.detail
    assert "E" * 301 not in caught.value.detail
    assert caught.value.status_code == 503


def test_blocked_token_endpoint_is_ssrf_blocked(server):
    server.expect_request("/token").respond_with_response(token_answer())
    with pytest.raises(tokens.TokenError) as caught:
        tokens.TokenProvider(make_settings(allowed=""), SpyCache()).get(make_auth(server), SECRET)
    assert caught.value.kind == "ssrf_blocked"
    assert caught.value.status_code is None
    assert server.log == []


def test_unreachable_token_endpoint_is_connection():
    with socket.socket() as placeholder:  # bound, not listening: connections are refused
        placeholder.bind(("127.0.0.1", 0))
        auth = {"grant_type": "client_credentials",
                "endpoint": f"http://127.0.0.1:{placeholder.getsockname()[1]}/token",
                "credentials": {"client_id": "c"}}
        with pytest.raises(tokens.TokenError) as caught:
            tokens.TokenProvider(make_settings(), SpyCache()).get(auth, SECRET)
    assert caught.value.kind == "connection"
    assert SECRET not in str(caught.value)


def test_slow_token_endpoint_is_timeout(server):
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return token_answer()

    server.expect_request("/token").respond_with_handler(slow)
    provider = tokens.TokenProvider(make_settings(READ_TIMEOUT="0.3"), SpyCache())
    try:
        with pytest.raises(tokens.TokenError) as caught:
            provider.get(make_auth(server), SECRET)
    finally:
        release.set()
        # The server logs the request only once the handler returns: wait for that here, or
        # the entry lands in a later test's log (the server is shared by the module).
        deadline = time.monotonic() + 10
        while not server.log and time.monotonic() < deadline:
            time.sleep(0.01)
    assert caught.value.kind == "timeout"
    assert len(server.log) == 1


@pytest.mark.parametrize("auth, expected", [
    ({}, ("Authorization", "Bearer abc")),
    ({"header_format": None, "header_value_format": None}, ("Authorization", "Bearer abc")),
    ({"header_format": "X-Token"}, ("X-Token", "Bearer abc")),
    ({"header_value_format": "%ACCESS_TOKEN%"}, ("Authorization", "abc")),
    ({"header_format": "X-Auth", "header_value_format": "Token %ACCESS_TOKEN% v=%ACCESS_TOKEN%"},
     ("X-Auth", "Token abc v=abc")),
])
def test_authorization_header(auth, expected):
    assert tokens.authorization_header(auth, "abc") == expected


def test_cache_key_hides_the_secret():
    auth = {"endpoint": "https://auth.example/token", "credentials": {"client_id": "c"}}
    key = tokens.cache_key(auth, SECRET)
    assert len(key) == 64 and SECRET not in key
    assert key != tokens.cache_key(auth, SECRET + "x")
    assert key == tokens.cache_key(dict(auth), SECRET)


def test_make_token_cache_memory_is_process_wide():
    settings = make_settings()
    assert isinstance(tokens.make_token_cache(settings), tokens.MemoryTokenCache)
    assert tokens.make_token_cache(settings) is tokens.make_token_cache(settings)


def run_concurrently(provider_for, auth, threads=THREADS):
    """Call get() from ``threads`` threads released at once; returns their tokens/errors."""
    start = threading.Barrier(threads)
    results = [None] * threads

    def worker(index):
        start.wait()
        try:
            results[index] = provider_for(index).get(auth, SECRET)
        except Exception as exc:  # reported by the assertions of the caller
            results[index] = exc

    pool = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(30)
    assert not any(thread.is_alive() for thread in pool)
    return results


def gated_token_endpoint(server, cache, waiting_for):
    """A token endpoint that answers only once ``waiting_for`` callers have asked for the lock."""
    gate = {}

    def handler(request):
        with cache.changed:
            gate["all_waiting"] = cache.changed.wait_for(lambda: cache.lock_entries >= waiting_for, 10)
        return token_answer("shared-token", expires_in=600)

    server.expect_request("/token").respond_with_handler(handler)
    return gate


def test_single_flight_across_threads(server):
    cache = SpyCache()
    gate = gated_token_endpoint(server, cache, THREADS)
    provider = tokens.TokenProvider(make_settings(), cache)
    results = run_concurrently(lambda index: provider, make_auth(server))
    assert gate["all_waiting"] is True
    assert results == ["shared-token"] * THREADS
    assert len(server.log) == 1
    assert provider.fetches == 1
    assert cache.ttls == [570]


def test_lock_wait_gives_up_after_timeout():
    cache = tokens.MemoryTokenCache()
    outcome = []

    def try_lock():
        with cache.lock("k", 0.05) as acquired:
            outcome.append(acquired)

    with cache.lock("k", 1) as first:
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join(5)
    assert first is True
    assert outcome == [False]
    with cache.lock("k", 0.05) as again:
        assert again is True


def test_memory_cache_expiry_and_delete():
    cache = tokens.MemoryTokenCache()
    cache.set("a", "tok", 60)
    cache.set("b", "old", -1)  # already expired
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("tok", None, None)
    cache.delete("a", "other")
    assert cache.get("a") == "tok"
    cache.delete("a")
    assert cache.get("a") is None
