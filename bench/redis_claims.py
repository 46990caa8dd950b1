"""Redis databases for the bench, claimed the way the test suite claims its own
(tests/support/isolation.py), so a bench and a test run on one machine never share one; and
Redis' CPU, read from its INFO."""

import os
import threading

import redis

CLAIM_PREFIX = "doo-webhooks-tests:claim:"
USED_BEFORE = "doo-webhooks-tests:used"
CHOSEN = "doo-webhooks-tests:chosen"
CLAIM_TTL = 30


class RedisClaim:
    """Hold a Redis database the way test runs do (a key per database in db 0, renewed every 10 s),
    so a test run never flushes the bench's broker and the bench never flushes a test run's.
    ``url`` "auto" takes a free database (an empty one, or one test runs use and nobody holds)."""

    def __init__(self, url, server="redis://127.0.0.1:6379"):
        self.owner = f"{os.uname().nodename}:{os.getpid()}"
        self.registry = redis.Redis.from_url(f"{server}/0", socket_timeout=5)
        self.stop_event = threading.Event()
        if url == "auto":
            for number in range(15, 0, -1):
                if self._take(number, chosen=False):
                    break
            else:
                raise SystemExit("no free Redis database on 127.0.0.1:6379: pass --broker redis://.../N")
            self.url = f"{server}/{number}"
        else:
            number = int(url.rsplit("/", 1)[-1] or 0) if url.startswith(server + "/") else None
            if number is not None and not self._take(number, chosen=True):
                owner = (self.registry.get(CLAIM_PREFIX + str(number)) or b"?").decode()
                raise SystemExit(f"--broker {url}: run {owner} holds that Redis database (two runs on one "
                                 "database take each other's messages); choose another, or --broker auto")
            self.url = url
        self.number = number
        threading.Thread(target=self._renew, daemon=True).start()

    def _take(self, number, chosen):
        key = CLAIM_PREFIX + str(number)
        if not self.registry.set(key, self.owner, nx=True, ex=CLAIM_TTL):
            return self.registry.get(key) == self.owner.encode()
        if chosen:
            self.registry.srem(USED_BEFORE, number)
            self.registry.sadd(CHOSEN, number)
            return True
        if self.registry.sismember(CHOSEN, number) or (
                not self.registry.sismember(USED_BEFORE, number)
                and redis.Redis.from_url(f"redis://127.0.0.1:6379/{number}", socket_timeout=5).dbsize()):
            self.registry.delete(key)
            return False
        return True

    def _renew(self):
        while not self.stop_event.wait(CLAIM_TTL / 3):
            try:
                if self.number is not None:
                    self.registry.set(CLAIM_PREFIX + str(self.number), self.owner, ex=CLAIM_TTL)
            except redis.RedisError:
                pass

    def release(self):
        self.stop_event.set()
        if self.number is not None:
            key = CLAIM_PREFIX + str(self.number)
            if self.registry.get(key) == self.owner.encode():
                self.registry.delete(key)


def redis_cpu(url):
    info = redis.Redis.from_url(url).info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]
