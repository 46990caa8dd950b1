"""Let test runs share one machine: each run its own Redis databases, and no process outliving it.

Redis: every run claims databases of its own (``redis_url``): a key per database in Redis
database 0, ``doo-webhooks-tests:claim:<n>``, set only if absent (SET NX) and holding the
run's pid with a short TTL that a thread of the run keeps renewing. A run killed with SIGKILL
stops renewing; its claims lapse within ``CLAIM_TTL`` seconds (the guard below drops them at
once). A database no run of this suite has claimed on its own before is only claimed when it
is empty, and no database is claimed while a client is connected to it (CLIENT LIST), so a
database someone uses by hand, or a run of older code, is left alone. ``DOO_WEBHOOKS_TEST_REDIS`` and
``DOO_WEBHOOKS_TEST_E2E_BROKER`` still choose the databases; those are claimed too (a run
whose chosen database another live run holds stops and says so) for as long as the run lives,
like any other claim: a mark that outlived its run would, one variable at a time, leave a
machine with no database to claim (it did: every database ended up marked and a fresh run
stopped with NoFreeDatabase). When only one database is free, the run
uses it for both (its tests run one after another and empty it first). The broker URL has
no key prefix, so a prefix is no fallback: with no free database at all the run says so and
stops.

Processes: ``Popen`` and ``run`` start every process of the suite in a process group of its
own, with PR_SET_PDEATHSIG=SIGKILL (it dies when the pytest process does), and tell a guard
process about the group. The guard, started once per run in a session of its own, reads a
pipe from pytest; when the pipe closes (pytest exited, or was SIGKILLed) it SIGKILLs every
group still registered (grandchildren too: a gunicorn worker, a shell's background job) and
drops the run's Redis claims. A group whose leader the suite reaped is killed and forgotten at
once, so the guard never kills a reused id.
"""

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading

REDIS_SERVER = os.environ.get("DOO_WEBHOOKS_TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
DATABASES = range(15, 0, -1)  # 0 holds the claims (and is Redis' default: never a test's)
CLAIM_TTL = 30
# the claims' namespace; tests/e2e/test_isolation.py gives its nested run one of its own
NAMESPACE = os.environ.get("DOO_WEBHOOKS_TEST_CLAIMS", "doo-webhooks-tests")
CLAIM_PREFIX = f"{NAMESPACE}:claim:"
USED_BEFORE = f"{NAMESPACE}:used"  # databases runs of this suite claimed on their own before
LEGACY_CHOSEN = f"{NAMESPACE}:chosen"  # permanent marks of an earlier version: dropped when seen
OWNER = f"{os.uname().nodename}:{os.getpid()}"

_lock = threading.Lock()
_claimed = []
_urls = {}
_keeper = None


class NoFreeDatabase(RuntimeError):
    pass


class DatabaseTaken(RuntimeError):
    pass


def _registry():
    import redis
    return redis.Redis.from_url(f"{REDIS_SERVER}/0", socket_timeout=5, socket_connect_timeout=5)


def _claim(registry, number, *, chosen):
    """Claim database ``number`` for this run; False when another run (or someone by hand) has it."""
    import redis
    key = CLAIM_PREFIX + str(number)
    if not registry.set(key, OWNER, nx=True, ex=CLAIM_TTL):
        return registry.get(key) == OWNER.encode()
    if chosen:  # named by a variable: this suite's database from now on, like one it picked itself
        registry.sadd(USED_BEFORE, number)
        return True
    if _in_use(registry, number) or (
            not registry.sismember(USED_BEFORE, number)
            and redis.Redis.from_url(f"{REDIS_SERVER}/{number}", socket_timeout=5).dbsize()):
        registry.delete(key)  # someone's database: not ours to flush
        return False
    registry.sadd(USED_BEFORE, number)
    return True


def _in_use(registry, number):
    """True when a client is connected to database ``number``: a worker of a run that claims
    nothing (older code, a hand-started one) may wait on an empty database for messages."""
    try:
        return any(int(client.get("db", -1)) == number for client in registry.client_list())
    except Exception:  # CLIENT LIST refused (ACL): emptiness is all we can go by
        return False


def redis_url(variable):
    """The Redis URL of this run for ``variable``: the variable's value, or a database claimed now.

    Asked twice (pytest imports tests/conftest.py as ``conftest`` and as ``tests.conftest``),
    it answers the same."""
    with _lock:
        if variable not in _urls:
            _urls[variable] = _choose(variable)
        return _urls[variable]


def _choose(variable):
    given = os.environ.get(variable)
    try:
        registry = _registry()
        registry.ping()
        registry.delete(LEGACY_CHOSEN)
    except Exception:  # no Redis: the tests that need it fail on their own, the others still run
        return given or f"{REDIS_SERVER}/15"
    if given:
        number = int(given.rsplit("/", 1)[-1] or 0) if given.startswith(REDIS_SERVER + "/") else None
        if number is not None:
            if not _claim(registry, number, chosen=True):
                owner = (registry.get(CLAIM_PREFIX + str(number)) or b"?").decode()
                raise DatabaseTaken(f"{variable}={given}: test run {owner} is using that database; "
                                    "two runs on one database take each other's messages. Choose another.")
            _remember(number)
        return given
    for number in DATABASES:
        if number not in _claimed and _claim(registry, number, chosen=False):
            _remember(number)
            return f"{REDIS_SERVER}/{number}"
    if _claimed:  # one run's tests run one after another and empty what they use: one database serves
        return f"{REDIS_SERVER}/{_claimed[0]}"
    raise NoFreeDatabase(f"no free Redis database (1-15) on {REDIS_SERVER}: other test runs hold them; set "
                         "DOO_WEBHOOKS_TEST_REDIS and DOO_WEBHOOKS_TEST_E2E_BROKER to databases of your own")


def _remember(number):
    global _keeper
    _claimed.append(number)
    _guard().send(f"claim {REDIS_SERVER} {number} {OWNER}")
    if _keeper is None:
        _keeper = threading.Thread(target=_keep_claims, name="redis-claims", daemon=True)
        _keeper.start()
        atexit.register(release_claims)


def _keep_claims():
    stop = threading.Event()
    while not stop.wait(CLAIM_TTL / 3):
        try:
            registry = _registry()
            for number in list(_claimed):
                key = CLAIM_PREFIX + str(number)
                if registry.get(key) in (None, OWNER.encode()):
                    registry.set(key, OWNER, ex=CLAIM_TTL)
        except Exception:  # Redis away for a moment: the next round renews
            pass


def release_claims():
    try:
        registry = _registry()
        for number in _claimed:
            key = CLAIM_PREFIX + str(number)
            if registry.get(key) == OWNER.encode():
                registry.delete(key)
    except Exception:
        pass


# --- processes --------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PYTEST_PID = os.getpid()


def _die_with_parent():
    """In the child, before exec: SIGKILL when the process that started it dies.

    The signal follows the death of the parent *thread*: start processes from the main thread
    (as tests do), not from helper threads that may end first."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != _PYTEST_PID:  # the parent died before prctl took effect
            os._exit(1)


_GUARD_CODE = r"""
import os, signal, sys
groups, claims = set(), []
for line in sys.stdin:
    verb, *args = line.split()
    if verb == "+":
        groups.add(int(args[0]))
    elif verb == "-":
        groups.discard(int(args[0]))
    elif verb == "claim":
        claims.append(args)
for group in groups:  # the pipe closed: the run is over, whatever way it ended
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
try:
    import redis
    for server, number, owner in claims:
        registry = redis.Redis.from_url(server + "/0", socket_timeout=5)
        key = "%s%s" % (os.environ["CLAIM_PREFIX"], number)
        if registry.get(key) == owner.encode():
            registry.delete(key)
except Exception:
    pass
"""


class _Guard:
    def __init__(self):
        env = dict(os.environ, CLAIM_PREFIX=CLAIM_PREFIX)
        # a session of its own: a Ctrl-C to pytest's process group must not take the guard with it
        self.proc = subprocess.Popen([sys.executable, "-c", _GUARD_CODE], stdin=subprocess.PIPE, env=env,
                                     start_new_session=True, text=True, bufsize=1)
        self.lock = threading.Lock()

    def send(self, line):
        with self.lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()


_guard_instance = None
_guard_lock = threading.Lock()


def _guard():
    global _guard_instance
    with _guard_lock:
        if _guard_instance is None or _guard_instance.proc.poll() is not None:
            _guard_instance = _Guard()
    return _guard_instance


class Popen(subprocess.Popen):
    """``subprocess.Popen`` for the suite: own process group, dies with pytest, group killed when reaped."""

    def __init__(self, args, **kwargs):
        kwargs["start_new_session"] = True
        kwargs["preexec_fn"] = _die_with_parent
        super().__init__(args, **kwargs)
        self._tracked = True
        _guard().send(f"+ {self.pid}")

    def _reaped(self):
        if self.returncode is not None and getattr(self, "_tracked", False):
            self._tracked = False
            try:  # what the leader left behind in its group goes with it
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            _guard().send(f"- {self.pid}")

    def poll(self):
        result = super().poll()
        self._reaped()
        return result

    def wait(self, timeout=None):
        result = super().wait(timeout)
        self._reaped()
        return result


def run(args, *, timeout=None, check=False, capture_output=False, input=None, **kwargs):
    """``subprocess.run`` on the suite's ``Popen``."""
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with Popen(args, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done
