"""What every scenario stands on: a fresh database, the real processes, the receiver, the emitter,
and the measures (CPU, peak RSS, ledger counts). Only public interfaces of the project are used:
the CLI (processes, ``db upgrade``), ``workers.producer`` (emit, emit_many), the ``deliveries``
table's ``status`` column, and the tenant and group helpers the tests use."""

import concurrent.futures
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout (the bench's own files)
PROJECT = ROOT  # the code measured: run.py --project points it at another checkout


def use_project(path):
    """Measure the code in ``path`` (e.g. an export of an older commit) instead of this checkout."""
    global PROJECT
    PROJECT = os.path.abspath(path)
    if PROJECT in sys.path:
        sys.path.remove(PROJECT)
    sys.path.insert(0, PROJECT)
TERMINAL = ("delivered", "dead", "cancelled", "skipped")
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 0.25  # the ledger is polled no faster than this


# --- processes -------------------------------------------------------------------------

def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the bench dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Child:
    """A process of the bench's own: own session (so its whole group can be killed), dies with us."""

    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=PROJECT, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None or _group_alive(self.proc.pid):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.log.close()

    def kill(self):
        if _group_alive(self.proc.pid):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def tail(self, lines=20):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def project_env(settings):
    """The environment of a project process: ours without any DOO_WEBHOOKS_, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
    env.update({f"DOO_WEBHOOKS_{k}": str(v) for k, v in settings.items()})
    env["PYTHONPATH"] = PROJECT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def known_settings():
    """Names the current code reads (a setting the rewrite dropped is then not passed)."""
    from ground import settings
    return {s.name for s in settings.SETTINGS}


# --- /proc measures ---------------------------------------------------------------------

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def descendants(pid):
    """pid and every process under it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(entry)[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def cpu_seconds(pid, tree=True):
    """user+system CPU of a process (and, with tree, its live descendants and reaped children)."""
    total = 0.0
    for p in descendants(pid) if tree else [pid]:
        try:
            fields = _stat(p)
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += (utime + stime + cutime + cstime) / CLK_TCK
    return total


def peak_rss_mb(pid):
    """VmHWM of the process, and the largest among its descendants (MB)."""
    def hwm(p):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0
    tree = descendants(pid)
    return {"process": round(hwm(pid), 1), "largest_child": round(max([hwm(p) for p in tree[1:]] or [0.0]), 1),
            "processes": len(tree)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL ---------------------------------------------------------------------------

class Database:
    """A fresh database on the shared server, migrated with the project's own CLI, dropped at close."""

    def __init__(self, server_dsn, log_dir, label):
        self.server_dsn = server_dsn
        self.name = f"doo_webhooks_bench_{label}_{uuid.uuid4().hex[:6]}"
        admin = psycopg2.connect(server_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}"')
        admin.close()
        base = server_dsn.rsplit("/", 1)[0]
        self.dsn = f"{base}/{self.name}"
        self.url = self.dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
        self.log_dir = log_dir
        self.conn = None
        self._engine = None

    def migrate(self, env):
        out = subprocess.run([sys.executable, "-m", "doo_webhooks.cli", "db", "upgrade"], env=env, cwd=PROJECT,
                             capture_output=True, text=True, preexec_fn=_die_with_parent)
        if out.returncode:
            raise RuntimeError(f"db upgrade failed:\n{out.stdout}\n{out.stderr}")

    def engine(self):
        if self._engine is None:
            from storage.db import engine_for
            self._engine = engine_for(self.url)
        return self._engine

    def query(self, sql, args=()):
        if self.conn is None:
            self.conn = psycopg2.connect(self.dsn)
            self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def statuses(self):
        return dict(self.query("SELECT status, count(*) FROM deliveries GROUP BY status"))

    def backend_cpu(self):
        """CPU seconds so far of the PostgreSQL backends serving this database, by pid."""
        pids = [r[0] for r in self.query("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                                         "pg_backend_pid()", (self.name,))]
        found = {}
        for pid in pids:
            try:
                found[pid] = cpu_seconds(pid, tree=False)
            except OSError:
                pass
        return found

    def close(self):
        if self.conn is not None:
            self.conn.close()
        if self._engine is not None:
            self._engine.dispose()
        admin = psycopg2.connect(self.server_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()


class Tenant:
    organization_id = None
    team_id = None


def make_tenant(db, name, endpoints, trigger_type="order_created"):
    """An organization, a team and one group with a hook per endpoint."""
    from storage import tenancy
    from storage.db import utcnow
    from tests.support.ledger import insert_group
    tenant = Tenant()
    with db.engine().begin() as conn:
        tenant.organization_id = tenancy.create_organization(conn, name, utcnow())
        tenant.team_id = tenancy.create_team(conn, tenant.organization_id, name, utcnow())
    insert_group(db.engine(), tenant, [{"type": trigger_type, "endpoint": e} for e in endpoints])
    return tenant


# --- the pipeline ---------------------------------------------------------------------------

class Pipeline:
    """The project's worker(s) and scheduler on one database and Redis, started and stopped together."""

    def __init__(self, settings, log_dir, label, workers=1, concurrency=None):
        env = project_env(settings)
        worker_args = ["worker"] + (["--concurrency", str(concurrency)] if concurrency else [])
        self.workers = [Child(f"{label}-worker-{n}", [sys.executable, "-m", "doo_webhooks.cli", *worker_args],
                              env, log_dir) for n in range(workers)]
        self.scheduler = Child(f"{label}-scheduler", [sys.executable, "-m", "doo_webhooks.cli", "scheduler"],
                               env, log_dir)

    def children(self):
        return [*self.workers, self.scheduler]

    def check(self):
        for child in self.children():
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")

    def cpu(self):
        return {c.name: cpu_seconds(c.pid) for c in self.children()}

    def peak_rss(self):
        return {c.name: peak_rss_mb(c.pid) for c in self.children()}

    def close(self):
        try:
            for child in self.children():
                child.stop()
        finally:  # interrupted while stopping: none of them may outlive the bench
            for child in self.children():
                child.kill()


# --- the emitter ------------------------------------------------------------------------------

def order(seq):
    """An order entity carrying its sequence number (the receiver reads bench_seq from the body)."""
    return {"order_details": {"id": seq, "status": "active"}, "event": {"id": 7}, "bench_seq": seq}


def trigger_id(label, seq):
    return f"bench-{label}-{seq}"


def in_threads(fn, items, threads):
    """fn over items from ``threads`` threads; on Ctrl-C the items not started are dropped (a plain
    ``with ThreadPoolExecutor`` would run all of them before letting the interrupt through)."""
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Emitter:
    """emit_many when the producer has it, else emit() from a few threads; records emit times."""

    def __init__(self, broker_url, threads=4, batch=500):
        from workers import producer
        self.producer = producer
        self.broker_url = broker_url
        self.threads = threads
        self.batch = batch
        self.has_many = hasattr(producer, "emit_many")
        self.emitted_at = {}  # seq -> time.time() just before its emit call

    def one(self, organization_id, label, seq, trigger_type="order_created"):
        self.emitted_at[seq] = time.time()
        self.producer.emit(trigger_type, order(seq), organization_id=organization_id,
                           trigger_id=trigger_id(label, seq), broker_url=self.broker_url)

    def many(self, organization_id, label, seqs, trigger_type="order_created"):
        """Emit every seq as fast as one process can; returns the seconds it took."""
        started = time.monotonic()
        if self.has_many:
            for i in range(0, len(seqs), self.batch):
                chunk = seqs[i:i + self.batch]
                now = time.time()
                for seq in chunk:
                    self.emitted_at[seq] = now
                self.producer.emit_many([{"type": trigger_type, "entity": order(seq),
                                          "organization_id": organization_id,
                                          "trigger_id": trigger_id(label, seq)} for seq in chunk],
                                        broker_url=self.broker_url)
        else:
            in_threads(lambda s: self.one(organization_id, label, s, trigger_type), seqs, self.threads)
        return time.monotonic() - started

    def paced(self, organization_id, label, seqs, rate, stop=None):
        """emit() one at a time at ``rate`` per second (catching up without sleeping when late);
        returns the seqs emitted."""
        started = time.monotonic()
        done = []
        for i, seq in enumerate(seqs):
            if stop is not None and stop.is_set():
                break
            wait = started + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.one(organization_id, label, seq)
            done.append(seq)
        return done


class Probe(threading.Thread):
    """A healthy tenant's steady stream, emitted while a scenario loads the pipeline elsewhere."""

    def __init__(self, emitter, organization_id, label, rate, first_seq):
        super().__init__(daemon=True)
        self.emitter, self.organization_id, self.label, self.rate = emitter, organization_id, label, rate
        self.first_seq = first_seq
        self.stop_event = threading.Event()
        self.emitted = []
        self.started_at = self.stopped_at = None

    def run(self):
        self.started_at = time.time()
        self.emitted = self.emitter.paced(self.organization_id, self.label,
                                          range(self.first_seq, self.first_seq + 10**7), self.rate,
                                          stop=self.stop_event)
        self.stopped_at = time.time()

    def stop(self):
        self.stop_event.set()
        self.join()


# --- measures over records ---------------------------------------------------------------------

def percentiles(values):
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "count": 0}
    values = sorted(values)

    def pick(q):
        return values[min(len(values) - 1, int(q * len(values)))]
    return {"p50_ms": round(pick(0.50) * 1000, 1), "p99_ms": round(pick(0.99) * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1), "count": len(values)}


def latencies(records, port, emitted_at):
    """Seconds from emit to first receipt, per seq received on ``port``."""
    first = {}
    for when, rport, _status, _hook_id, trigger, seq in records:
        if rport != port:
            continue
        if seq is None and trigger and trigger.rsplit("-", 1)[-1].isdigit():
            seq = int(trigger.rsplit("-", 1)[-1])
        if seq is not None and seq in emitted_at and seq not in first:
            first[seq] = when
    return [first[s] - emitted_at[s] for s in first]


def wait_ledger(db, expected, timeout, pipeline=None, on_poll=None):
    """Poll the ledger until ``expected`` deliveries reached a final status, or ``timeout`` s.
    Returns (finished, counts, time.time() at the poll that saw it)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = db.statuses()
        done = sum(counts.get(s, 0) for s in TERMINAL)
        now = time.time()
        if on_poll is not None:
            on_poll(counts)
        if done >= expected:
            return True, counts, now
        if time.monotonic() > deadline:
            return False, counts, now
        if pipeline is not None:
            pipeline.check()
        time.sleep(POLL_SECONDS)


def terminal(counts):
    return sum(counts.get(s, 0) for s in TERMINAL)
