"""A Redis and a PostgreSQL server of a test's own, on free ports of 127.0.0.1, to kill and
restart at will: the machine's shared servers (6379, 5432) are never touched.

Both run in the foreground as processes of the suite (tests/support/isolation.py Popen), so
they die with the test run however it ends. PostgreSQL refuses to run as root: a root test
run starts it as the ``postgres`` OS user. Its directory is a short one under /tmp (a Unix
socket path must fit in 107 bytes, and pytest's tmp_path is neither short nor readable by
that user).
"""

import glob
import os
import pwd
import re
import shutil
import tempfile
import time

import redis
import sqlalchemy as sa

from tests.support import isolation
from tests.support.observability import free_port
from tests.support.processes import Command


def _wait(ready, what, process, timeout=30):
    deadline = time.monotonic() + timeout
    while not ready():
        if process.proc.poll() is not None:
            raise AssertionError(f"{what} exited ({process.proc.returncode}):\n{process.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {timeout} s:\n{process.output()}")
        time.sleep(0.05)


class RedisServer:
    """``redis-server`` without persistence: killed and started again, it has lost every key."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.starts = 0
        self.process = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.starts += 1
        self.process = Command(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(self.workdir)], dict(os.environ),
                               self.workdir / f"redis-{self.starts}.log")
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        _wait(lambda: self._answers(client), "redis-server", self.process)

    @staticmethod
    def _answers(client):
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def kill(self):
        """SIGKILL: whatever it held is gone, the port refuses connections."""
        self.process.kill()
        self.process.log.close()

    def restart(self):
        """Killed and started again on the same port, empty."""
        self.kill()
        self.start()

    def close(self):
        self.process.stop()


def postgres_bin():
    """The newest PostgreSQL server binaries of /usr/lib/postgresql/<version>/bin (Debian's
    layout), else the folder of ``pg_ctl`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda path: int(re.search(r"/(\d+)/bin/", path).group(1)))
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("pg_ctl")
    if on_path and os.path.exists(os.path.join(os.path.dirname(os.path.realpath(on_path)), "postgres")):
        return os.path.dirname(os.path.realpath(on_path))
    raise AssertionError("no PostgreSQL server binaries (initdb, postgres, pg_ctl): install the server package")


class PostgresServer:
    """A PostgreSQL cluster made by initdb for one test; ``restart`` is an immediate stop (no
    checkpoint, every connection cut, crash recovery at the next start) and a start on the
    same port."""

    def __init__(self):
        self.bin = postgres_bin()
        # PostgreSQL refuses to run as root: as root, it runs as the postgres OS user
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = tempfile.mkdtemp(prefix="doo-pg-")
        if self.user:
            account = pwd.getpwnam(self.user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.starts = 0
        self.process = None
        done = self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        assert done.returncode == 0, done.stdout.decode(errors="replace")
        self.start()

    @property
    def url(self):
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program, *args):
        return isolation.run([os.path.join(self.bin, program), *args], user=self.user, cwd=self.dir,
                             capture_output=True, timeout=60)

    def start(self):
        self.starts += 1
        # the server itself is our child (not pg_ctl's daemon), so it dies with the run;
        # fsync off: a test's data need not survive the machine, only the server
        self.process = Command(
            [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
            dict(os.environ), os.path.join(self.dir, f"postgres-{self.starts}.log"), user=self.user, cwd=self.dir)
        probe = sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 1})
        _wait(lambda: self._answers(probe), "postgres", self.process)

    @staticmethod
    def _answers(probe):
        try:
            with probe.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except sa.exc.OperationalError:
            return False

    def stop_immediately(self):
        """``pg_ctl stop -m immediate``: every backend is cut off at once, nothing is flushed."""
        done = self._run("pg_ctl", "-D", self.data, "stop", "-m", "immediate", "-w")
        assert done.returncode == 0, done.stdout.decode(errors="replace")
        self.process.proc.wait(timeout=30)
        self.process.log.close()

    def restart(self):
        self.stop_immediately()
        self.start()

    def close(self):
        if self.process.proc.poll() is None:
            self.stop_immediately()
        shutil.rmtree(self.dir, ignore_errors=True)
