"""Start the real ``doo-webhooks`` processes for e2e tests, and stop exactly those (by PID)."""

import os
import signal
import subprocess
import sys


class Process:
    def __init__(self, args, env, log_path):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "doo_webhooks.cli", *args], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        """SIGKILL the whole process group: a worker and its pool die without any cleanup."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def environment(settings_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
    env.update(settings_env)
    return env
