"""Per-endpoint rate limits: at most ``max_per_second`` requests to one endpoint, counted
over every worker process on every machine together.

The rule is GCRA that grants only "now": a request may start once the endpoint's theoretical
arrival time (TAT) has passed, and starting moves the TAT one interval ahead. Requests are
therefore spaced at least one interval apart, never bunched: a receiver limited to 5 a second
sees one every 210 ms, not five at once. The interval is ``1 / max_per_second`` stretched by
``MARGIN``, so that the milliseconds of scheduling and network jitter between the grant and
the request reaching the receiver never put one request too many into any one-second window.
A request that may not start yet learns how long to wait.

``RedisLimiter`` keeps the TAT in Redis and reads Redis' clock, so machines' clocks need not
agree; ``LocalLimiter`` keeps it in the process (standalone, or REDIS_URL=memory://).
"""

import hashlib
import time

import redis.asyncio

MARGIN = 0.05
KEY_PREFIX = "doo:rate:"

# KEYS[1]: the endpoint's TAT (microseconds on Redis' clock); ARGV[1]: the interval in
# microseconds. Returns 0 when the request may start now (and moves the TAT), otherwise the
# microseconds to wait. The key outlives the interval by a second, then nobody owes anything.
_GRANT = """
local now = redis.call('TIME')
local micros = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > micros then
  return tat - micros
end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], micros + interval, 'PX', math.floor(interval / 1000) + 1000)
return 0
"""


def interval(max_per_second):
    """Seconds between two requests to an endpoint limited to ``max_per_second``."""
    return (1 + MARGIN) / max_per_second


def endpoint_key(group_id, endpoint):
    """What one limit (and one pause) applies to: an endpoint URL of one group. Hooks of a
    group that share a URL share its limit: the receiver behind it is one."""
    return hashlib.sha1(f"{group_id} {endpoint}".encode()).hexdigest()


class LocalLimiter:
    """The limit within this process (one event loop)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.tat = {}

    async def wait_for(self, key, max_per_second):
        """Seconds to wait before a request to ``key`` may start; 0: it may start now (and
        counts as started)."""
        now = self.clock()
        tat = self.tat.get(key, 0.0)
        if tat > now:
            return tat - now
        self.tat[key] = now + interval(max_per_second)
        if len(self.tat) > 10_000:  # forget endpoints nobody owes anything any more
            self.tat = {k: t for k, t in self.tat.items() if t > now}
        return 0.0

    async def close(self):
        pass


class RedisLimiter:
    """The limit shared by every process using the same Redis. Create it on the event loop
    that uses it (its connections belong to that loop)."""

    def __init__(self, url):
        self.client = redis.asyncio.Redis.from_url(url)
        self.grant = self.client.register_script(_GRANT)

    async def wait_for(self, key, max_per_second):
        micros = await self.grant(keys=[KEY_PREFIX + key], args=[max(1, int(interval(max_per_second) * 1e6))])
        return int(micros) / 1e6

    async def close(self):
        await self.client.aclose()


def limiter_for(settings):
    """The limiter ``settings.redis_url`` names ('memory://' = in this process)."""
    if settings.redis_url == "memory://":
        return LocalLimiter()
    return RedisLimiter(settings.redis_url)
