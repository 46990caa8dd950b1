"""A test run shares the machine: a run killed with SIGKILL leaves no process behind and frees
its Redis databases at once (tests/support/isolation.py)."""

import json
import os
import pathlib
import signal
import sys
import time
import uuid

import redis

from tests.conftest import REDIS_URL
from tests.support import isolation

ROOT = pathlib.Path(__file__).resolve().parents[2]
VICTIM = ROOT / "tests" / "support" / "suite_victim.py"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie runs nothing
    except FileNotFoundError:
        return False


def _carrying(marker):
    """Pids of the processes whose environment holds ``marker`` (every descendant inherits it)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes() and _alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_run_killed_halfway_leaves_no_process_and_no_redis_claim(tmp_path):
    marker = f"SUITE_VICTIM_MARKER={uuid.uuid4().hex}"
    info_path = tmp_path / "victim.json"
    # The nested run uses this run's database (free ones are scarce on a shared machine) and claims
    # it in a namespace of its own: its claim, and that the guard drops it, are then its alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_TEST_")}
    env.update(VICTIM_INFO=str(info_path), SUITE_VICTIM_MARKER=marker.split("=", 1)[1],
               DOO_WEBHOOKS_TEST_CLAIMS=f"doo-webhooks-tests-victim-{uuid.uuid4().hex[:8]}",
               DOO_WEBHOOKS_TEST_REDIS=REDIS_URL, DOO_WEBHOOKS_TEST_E2E_BROKER=REDIS_URL)
    with open(tmp_path / "victim.log", "wb") as log:
        victim = isolation.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(VICTIM)],
                                 cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        _wait(lambda: info_path.exists() or victim.poll() is not None, 90, "the victim run to start its processes")
        assert info_path.exists(), (tmp_path / "victim.log").read_text()
        info = json.loads(info_path.read_text())
        assert all(_alive(pid) for pid in info["pids"])
        assert set(info["pids"]) <= set(_carrying(marker))
        number = int(info["redis_url"].rsplit("/", 1)[1])
        registry = redis.Redis.from_url(f"{isolation.REDIS_SERVER}/0")
        claim = f"{env['DOO_WEBHOOKS_TEST_CLAIMS']}:claim:{number}"
        assert registry.get(claim) == info["owner"].encode()

        os.kill(victim.pid, signal.SIGKILL)  # no cleanup code of the victim runs
        victim.wait(timeout=10)

        _wait(lambda: not _carrying(marker), 10, "every process of the killed run to die")
        _wait(lambda: registry.get(claim) != info["owner"].encode(), 10, "its Redis database to be free")
    finally:
        if victim.poll() is None:
            victim.kill()
        registry = redis.Redis.from_url(f"{isolation.REDIS_SERVER}/0")
        for key in registry.scan_iter(f"{env['DOO_WEBHOOKS_TEST_CLAIMS']}:*"):
            registry.delete(key)


def test_a_process_of_the_suite_dies_with_pytest_and_leads_its_own_group():
    probe = ("import ctypes, os; r = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(r)); "  # PR_GET_PDEATHSIG
             "print(r.value, os.getpgid(0) == os.getpid())")
    done = isolation.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == [str(int(signal.SIGKILL)), "True"], done.stderr
