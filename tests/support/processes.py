"""Start the real ``doo-webhooks`` processes for e2e tests, and stop exactly those (by PID)."""

import os
import signal
import subprocess
import sys
import time

from tests.support.isolation import Popen


class Command:
    """Any command line as a process of its own (own session), its output in ``log_path``."""

    def __init__(self, argv, env, log_path, **popen):
        """``popen``: more arguments for Popen (``user``, ``cwd``)."""
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # own process group, killed with the test run (tests/support/isolation.py)
        self.proc = Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, **popen)

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """SIGKILL the whole process group: a worker and its pool die without any cleanup."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.proc.returncode

    def output(self):
        return open(self.log_path, encoding="utf-8", errors="replace").read()

    def wait_output(self, text, timeout=30):
        """Poll the output until ``text`` appears in it."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared in the output of {self.argv}:\n{self.output()}")
            time.sleep(0.05)


class Process(Command):
    """A ``doo-webhooks`` command (worker, scheduler, ...) from this checkout's interpreter."""

    def __init__(self, args, env, log_path):
        super().__init__([sys.executable, "-m", "doo_webhooks.cli", *args], env, log_path)


def environment(settings_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
    env.update(settings_env)
    return env
