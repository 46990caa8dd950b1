import json
import threading

import pytest
import redis
from werkzeug import Response

from ground.settings import from_env
from tests.conftest import REDIS_URL
from workers import tokens

SECRET = "integration-secret"
THREADS = 20


def make_settings():
    return from_env({"DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8", "DOO_WEBHOOKS_REDIS_URL": REDIS_URL,
                     "DOO_WEBHOOKS_TOKEN_LEEWAY": "30", "DOO_WEBHOOKS_CONNECT_TIMEOUT": "2",
                     "DOO_WEBHOOKS_READ_TIMEOUT": "5"})


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


class SpyRedisCache(tokens.RedisTokenCache):
    """Counts callers asking for the lock, shared by every instance of a test (two workers)."""

    def __init__(self, client, counter):
        super().__init__(client)
        self.counter = counter

    def lock(self, key, timeout):
        with self.counter["changed"]:
            self.counter["entries"] += 1
            self.counter["changed"].notify_all()
        return super().lock(key, timeout)


def make_auth(server):
    return {"grant_type": "client_credentials", "endpoint": server.url_for("/token"),
            "credentials": {"client_id": "client-1"}}


def test_single_flight_across_two_workers(server, redis_client):
    counter = {"entries": 0, "changed": threading.Condition()}
    gate = {}

    def handler(request):
        # Answer only once every caller is waiting for the lock.
        with counter["changed"]:
            gate["all_waiting"] = counter["changed"].wait_for(lambda: counter["entries"] >= THREADS, 10)
        return Response(json.dumps({"access_token": "shared-token", "expires_in": 600}),
                        content_type="application/json")

    server.expect_request("/token").respond_with_handler(handler)
    settings = make_settings()
    # Two workers: separate providers, separate Redis connections, one Redis.
    workers = [tokens.TokenProvider(settings, SpyRedisCache(redis.Redis.from_url(REDIS_URL), counter))
               for _ in range(2)]
    auth = make_auth(server)
    start = threading.Barrier(THREADS)
    results = [None] * THREADS

    def call(index):
        start.wait()
        try:
            results[index] = workers[index % 2].get(auth, SECRET)
        except Exception as exc:  # reported by the assertions below
            results[index] = exc

    threads = [threading.Thread(target=call, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert gate["all_waiting"] is True
    assert results == ["shared-token"] * THREADS
    assert len(server.log) == 1
    assert sum(worker.fetches for worker in workers) == 1
    assert redis_client.keys(tokens.LOCK_PREFIX + "*") == []


def test_ttl_in_redis_matches_expires_in_minus_leeway(server, redis_client):
    server.expect_request("/token").respond_with_json({"access_token": "tok", "expires_in": 120})
    settings = make_settings()
    cache = tokens.make_token_cache(settings)
    assert isinstance(cache, tokens.RedisTokenCache)
    provider = tokens.TokenProvider(settings, cache)
    auth = make_auth(server)
    assert provider.get(auth, SECRET) == "tok"
    key = tokens.KEY_PREFIX + tokens.cache_key(auth, SECRET)
    assert redis_client.get(key) == b"tok"
    assert 88_000 < redis_client.pttl(key) <= 90_000
    assert all(SECRET.encode() not in name for name in redis_client.keys("*"))
    # Another worker finds it without a request; invalidating drops it for everyone.
    other = tokens.TokenProvider(settings, tokens.make_token_cache(settings))
    assert other.get(auth, SECRET) == "tok"
    assert len(server.log) == 1
    other.invalidate(auth, SECRET)
    assert redis_client.exists(key) == 0


def test_redis_lock_is_exclusive_and_released_safely(redis_client):
    cache = tokens.RedisTokenCache(redis_client)
    with cache.lock("k", 5) as first:
        with cache.lock("k", 0.05) as second:
            assert (first, second) == (True, False)
        assert redis_client.exists(tokens.LOCK_PREFIX + "k") == 1  # a loser must not release it
        # Our lock expired and someone else took it: our release must leave theirs alone.
        redis_client.set(tokens.LOCK_PREFIX + "k", "someone-else")
    assert redis_client.get(tokens.LOCK_PREFIX + "k") == b"someone-else"
    redis_client.delete(tokens.LOCK_PREFIX + "k")
    with cache.lock("k", 0.05) as again:
        assert again is True
    assert redis_client.exists(tokens.LOCK_PREFIX + "k") == 0


def test_redis_delete_only_if_expected(redis_client):
    cache = tokens.RedisTokenCache(redis_client)
    cache.set("k", "new", 60)
    cache.delete("k", "old")
    assert cache.get("k") == "new"
    cache.delete("k", "new")
    assert cache.get("k") is None
