"""The scenarios of the benchmark; each returns a dict of metrics (see docs/benchmarks.md)."""

import json
import os
import time

import psycopg2
import redis
import requests

import harness
import redis_claims
from harness import Database
from harness import Emitter
from harness import Pipeline
from harness import Probe
from harness import make_tenant
from harness import terminal
from harness import wait_ledger

FULL = {"baseline": 5000, "throughput": 50000, "fanout_triggers": 500, "fanout_hooks": 100,
        "latency_rate": 500, "latency_seconds": 60, "slow_triggers": 1000, "slow_endpoints": 10,
        "slow_delay": 1.0, "probe_rate": 50, "storm_triggers": 5000, "storm_seconds": 30,
        "producer": 20000, "timeout": 300}
QUICK = {"baseline": 500, "throughput": 1000, "fanout_triggers": 10, "fanout_hooks": 100,
         "latency_rate": 50, "latency_seconds": 10, "slow_triggers": 30, "slow_endpoints": 10,
         "slow_delay": 1.0, "probe_rate": 20, "storm_triggers": 300, "storm_seconds": 5,
         "producer": 2000, "timeout": 90}
STORM_SETTINGS = {"RETRY_SCHEDULE": "1,2,5", "RETRY_JITTER": "0", "MAX_ATTEMPTS": "100"}


class Run:
    """One run of the bench: the receiver, the settings, and a fresh database per scenario."""

    def __init__(self, args, sizes, receiver, log_dir, secret_key):
        self.args, self.sizes, self.receiver, self.log_dir = args, sizes, receiver, log_dir
        self.known = harness.known_settings()
        self.base = {"BROKER_URL": args.broker, "REDIS_URL": args.redis, "ALLOWED_NETWORKS": "127.0.0.0/8",
                     "SECRET_KEYS": secret_key, "DATA_DIR": log_dir, "LOG_LEVEL": "WARNING"}
        self.base.update(dict(s.split("=", 1) for s in args.set))
        self.dropped = set()

    def settings(self, db, extra=None):
        wanted = {**self.base, "DATABASE_URL": db.url, **(extra or {})}
        kept = {k: v for k, v in wanted.items() if k in self.known}
        self.dropped |= set(wanted) - set(kept)
        return kept

    def flush_redis(self):
        for url in {self.args.broker, self.args.redis}:
            redis.Redis.from_url(url).flushdb()

    def database(self, label):
        db = Database(self.args.postgres, self.log_dir, label)
        try:
            db.migrate(harness.project_env(self.settings(db)))
        except Exception:
            db.close()
            raise
        return db

    def pipeline(self, db, label, extra=None):
        self.flush_redis()
        return Pipeline(self.settings(db, extra), self.log_dir, label, self.args.workers, self.args.concurrency)

    def warm_up(self, db, pipeline):
        """One delivery through the whole path before the clock starts (imports, connections)."""
        tenant = make_tenant(db, "warm-up", [self.receiver.url("ok", "/warm-up")])
        Emitter(self.args.broker).one(tenant.organization_id, "warm-up", 10**9)
        finished, counts, _ = wait_ledger(db, 1, 120, pipeline)
        if not finished:
            raise RuntimeError(f"the warm-up delivery did not finish in 120 s: {counts}")
        self.receiver.reset()


class Measure:
    """CPU of the pipeline's processes, the database's backends, Redis and the receiver, over a span."""

    def __init__(self, run, pipeline, db):
        self.run, self.pipeline, self.db = run, pipeline, db
        self.cpu0 = pipeline.cpu()
        self.pg0 = db.backend_cpu()
        self.redis0 = redis_claims.redis_cpu(run.args.broker)
        self.receiver0 = run.receiver.cpu()

    def stop(self, deliveries):
        cpu1 = self.pipeline.cpu()
        pg1 = self.db.backend_cpu()
        pipeline_cpu = {k: round(cpu1[k] - self.cpu0.get(k, 0), 2) for k in cpu1}
        total = sum(pipeline_cpu.values())
        result = {
            "cpu_s": pipeline_cpu,
            "cpu_ms_per_delivery": round(total * 1000 / deliveries, 3) if deliveries else None,
            "postgres_cpu_s": round(sum(v - self.pg0.get(pid, 0) for pid, v in pg1.items()), 2),
            "redis_cpu_s": round(redis_claims.redis_cpu(self.run.args.broker) - self.redis0, 2),
            "receiver_cpu_s": round(self.run.receiver.cpu() - self.receiver0, 2),
            "peak_rss_mb": self.pipeline.peak_rss(),
        }
        if deliveries:
            result["postgres_cpu_ms_per_delivery"] = round(result["postgres_cpu_s"] * 1000 / deliveries, 3)
        return result


def unfinished(done, expected, seconds):
    return f"did not finish: {done} of {expected} in {seconds:.0f} s"


def _with_pipeline(run, label, body, extra=None):
    """A fresh database and pipeline for ``body(db, pipeline)``, torn down whatever happens."""
    db = run.database(label)
    pipeline = None
    try:
        pipeline = run.pipeline(db, label, extra)
        run.warm_up(db, pipeline)
        return body(db, pipeline)
    finally:
        try:
            if pipeline is not None:
                pipeline.close()
        finally:
            try:
                db.close()
            finally:
                run.flush_redis()


# --- baseline ---------------------------------------------------------------------------------

def baseline(run):
    """The afternoon version: per delivery a fresh connection, a fresh requests.post, one attempt
    row and one update; 8 threads. Its own two tables, so it does not depend on the project's schema."""
    count, threads = run.sizes["baseline"], 8
    db = Database(run.args.postgres, run.log_dir, "baseline")
    try:
        db.query("CREATE TABLE deliveries (id text PRIMARY KEY, endpoint text NOT NULL, payload text NOT NULL, "
                 "status text NOT NULL, attempts int NOT NULL DEFAULT 0)")
        db.query("CREATE TABLE attempts (id bigserial PRIMARY KEY, delivery_id text NOT NULL REFERENCES "
                 "deliveries(id), number int NOT NULL, started_at timestamptz NOT NULL, duration_ms int, "
                 "status_code int)")
        endpoint = run.receiver.url("ok", "/baseline")
        rows = [(f"d{n}", endpoint, json.dumps(harness.order(n))) for n in range(count)]
        with psycopg2.connect(db.dsn) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO deliveries (id, endpoint, payload, status) VALUES (%s, %s, %s, 'pending')",
                            rows)

        def one(delivery_id):
            conn = psycopg2.connect(db.dsn)
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT endpoint, payload FROM deliveries WHERE id = %s", (delivery_id,))
                    url, payload = cur.fetchone()
                    started = time.monotonic()
                    answer = requests.post(url, data=payload, headers={"Content-Type": "application/json",
                                                                      "webhook-id": delivery_id}, timeout=5)
                    cur.execute("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code) "
                                "VALUES (%s, 1, now(), %s, %s)",
                                (delivery_id, int((time.monotonic() - started) * 1000), answer.status_code))
                    cur.execute("UPDATE deliveries SET status = 'delivered', attempts = 1 WHERE id = %s",
                                (delivery_id,))
            finally:
                conn.close()

        run.receiver.reset()
        cpu0 = harness.cpu_seconds(os.getpid(), tree=False)
        started = time.monotonic()
        harness.in_threads(one, [r[0] for r in rows], threads)
        seconds = time.monotonic() - started
        cpu = harness.cpu_seconds(os.getpid(), tree=False) - cpu0
        delivered = db.query("SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
        return {"deliveries": delivered, "seconds": round(seconds, 2), "threads": threads,
                "deliveries_per_s": round(delivered / seconds, 1),
                "cpu_ms_per_delivery": round(cpu * 1000 / delivered, 3),
                "note": "CPU is the bench process's own (it does the sending)"}
    finally:
        db.close()


# --- throughput and fan-out ---------------------------------------------------------------------

def _burst(run, label, triggers, hooks):
    """Emit ``triggers`` at once to a group of ``hooks`` hooks; deliveries/s to the last outcome."""
    def body(db, pipeline):
        endpoints = [run.receiver.url("ok", f"/{label}/{n}") for n in range(hooks)]
        tenant = make_tenant(db, label, endpoints)
        expected = triggers * hooks
        emitter = Emitter(run.args.broker)
        measure = Measure(run, pipeline, db)
        t0 = time.time()
        emit_s = emitter.many(tenant.organization_id, label, list(range(triggers)))
        finished, counts, t_end = wait_ledger(db, expected + 1, run.sizes["timeout"], pipeline)
        done = terminal(counts) - 1
        seconds = t_end - t0
        result = {"triggers": triggers, "hooks": hooks, "deliveries": done, "expected": expected,
                  "finished": finished, "seconds": round(seconds, 2),
                  "deliveries_per_s": round(done / seconds, 1), "emit_s": round(emit_s, 2),
                  "emitted_with": "emit_many" if emitter.has_many else f"emit() x {emitter.threads} threads",
                  "statuses": counts}
        records = run.receiver.records()
        if records:
            result["receiver_span_s"] = round(max(r[0] for r in records) - t0, 2)
            result["received"] = len(records)
        if not finished:
            result["note"] = unfinished(done, expected, seconds)
        result.update(measure.stop(done))
        return result
    return _with_pipeline(run, label, body)


def throughput(run):
    return _burst(run, "throughput", run.sizes["throughput"], 1)


def fanout(run):
    return _burst(run, "fanout", run.sizes["fanout_triggers"], run.sizes["fanout_hooks"])


# --- latency ------------------------------------------------------------------------------------------

def latency(run):
    rate, duration = run.sizes["latency_rate"], run.sizes["latency_seconds"]

    def body(db, pipeline):
        tenant = make_tenant(db, "latency", [run.receiver.url("timed", "/latency")])
        emitter = Emitter(run.args.broker)
        measure = Measure(run, pipeline, db)
        t0 = time.time()
        seqs = emitter.paced(tenant.organization_id, "latency", range(rate * duration), rate)
        emit_s = time.time() - t0
        finished, counts, t_end = wait_ledger(db, len(seqs) + 1, run.sizes["timeout"], pipeline)
        done = terminal(counts) - 1
        lat = harness.latencies(run.receiver.records(), run.receiver.ports["timed"], emitter.emitted_at)
        result = {"target_rate": rate, "seconds_emitting": round(emit_s, 2),
                  "achieved_emit_rate": round(len(seqs) / emit_s, 1), "triggers": len(seqs),
                  "deliveries": done, "finished": finished, "seconds": round(t_end - t0, 2),
                  "deliveries_per_s": round(done / (t_end - t0), 1), **harness.percentiles(lat),
                  "matched_on": "bench_seq in the body (or X-Doo-Trigger)"}
        if not finished:
            result["note"] = unfinished(done, len(seqs), t_end - t0)
        result.update(measure.stop(done))
        return result
    return _with_pipeline(run, "latency", body)


# --- slow receivers and retry storm: a loaded pipeline plus a healthy tenant's probe ---------------

def _healthy(run, probe, records):
    lat = harness.latencies(records, run.receiver.ports["healthy"], probe.emitter.emitted_at)
    window = (probe.stopped_at or time.time()) - probe.started_at
    received = len(lat)
    return {"healthy_emitted": len(probe.emitted), "healthy_received": received,
            "healthy_emit_rate": round(len(probe.emitted) / window, 1) if window else None,
            "healthy_delivered_per_s": round(received / window, 1) if window else None,
            **{f"healthy_{k}": v for k, v in harness.percentiles(lat).items()}}


def _delivered(records, ports):
    """Deliveries answered 200 on ``ports``, each counted once (the ledger mixes in the probe's,
    and not all of the probe's triggers may have reached the ledger when a scenario times out)."""
    return len({(r[1], r[5]) for r in records if r[1] in ports and r[2] == 200})


def _wait_receiver(run, names, expected, timeout, pipeline):
    """Poll the receiver until ``expected`` 200s arrived on the ports ``names``."""
    deadline = time.monotonic() + timeout
    while True:
        got = run.receiver.count(names, 200)
        if got >= expected or time.monotonic() > deadline:
            return got >= expected, got
        pipeline.check()
        time.sleep(harness.POLL_SECONDS)


def slow(run):
    n_ports, triggers, delay = run.sizes["slow_endpoints"], run.sizes["slow_triggers"], run.sizes["slow_delay"]
    names = [f"slow{i}" for i in range(n_ports)]

    def body(db, pipeline):
        slow_tenant = make_tenant(db, "slow", [run.receiver.url(n, "/slow") for n in names])
        healthy = make_tenant(db, "healthy", [run.receiver.url("healthy", "/healthy")])
        emitter = Emitter(run.args.broker)
        expected = triggers * n_ports
        measure = Measure(run, pipeline, db)
        t0 = time.time()
        probe = Probe(Emitter(run.args.broker), healthy.organization_id, "healthy", run.sizes["probe_rate"], 0)
        probe.start()
        try:
            emitter.many(slow_tenant.organization_id, "slow", list(range(triggers)))
            _wait_receiver(run, names, expected, run.sizes["timeout"] - (time.time() - t0), pipeline)
        finally:
            probe.stop()
        finished, counts, t_end = wait_ledger(db, expected + len(probe.emitted) + 1,
                                              max(5, run.sizes["timeout"] - (time.time() - t0)), pipeline)
        records = run.receiver.records()
        done = _delivered(records, [run.receiver.ports[n] for n in names])
        seconds = t_end - t0
        result = {"endpoints": n_ports, "answer_after_s": delay, "deliveries": done, "expected": expected,
                  "finished": finished, "seconds": round(seconds, 2), "deliveries_per_s": round(done / seconds, 1),
                  **_healthy(run, probe, records), "statuses": counts}
        if not finished:
            result["note"] = unfinished(done, expected, seconds)
        result.update(measure.stop(terminal(counts) - 1))
        return result
    return _with_pipeline(run, "slow", body)


def retry_storm(run):
    triggers, fail_s = run.sizes["storm_triggers"], run.sizes["storm_seconds"]

    def body(db, pipeline):
        tenant = make_tenant(db, "storm", [run.receiver.url("fail", "/storm")])
        healthy = make_tenant(db, "healthy", [run.receiver.url("healthy", "/healthy")])
        emitter = Emitter(run.args.broker)
        measure = Measure(run, pipeline, db)
        recovers_at = run.receiver.behave("fail", f"fail:{fail_s}")["recovers_at"]
        t0 = time.time()
        probe = Probe(Emitter(run.args.broker), healthy.organization_id, "healthy", run.sizes["probe_rate"], 0)
        probe.start()
        try:
            emitter.many(tenant.organization_id, "storm", list(range(triggers)))
            _wait_receiver(run, ["fail"], triggers, fail_s + run.sizes["timeout"] - (time.time() - t0), pipeline)
        finally:
            probe.stop()
            run.receiver.behave("fail", "ok")
        finished, counts, t_end = wait_ledger(db, triggers + len(probe.emitted) + 1,
                                              max(5, fail_s + run.sizes["timeout"] - (time.time() - t0)), pipeline)
        records = run.receiver.records()
        port = run.receiver.ports["fail"]
        done = _delivered(records, [port])
        result = {"triggers": triggers, "failing_for_s": fail_s,
                  "retry_settings": ", ".join(f"{k}={v}" for k, v in STORM_SETTINGS.items()),
                  "deliveries": done, "finished": finished,
                  "drain_after_recovery_s": round(t_end - recovers_at, 2),
                  "attempts_answered_500": sum(1 for r in records if r[1] == port and r[2] == 500),
                  "attempts_answered_200": sum(1 for r in records if r[1] == port and r[2] == 200),
                  **_healthy(run, probe, records), "statuses": counts}
        if not finished:
            result["note"] = unfinished(done, triggers, t_end - t0)
        result.update(measure.stop(terminal(counts) - 1))
        return result
    return _with_pipeline(run, "storm", body, STORM_SETTINGS)


# --- producer ------------------------------------------------------------------------------------------

def producer(run):
    """Triggers/s from this one process: emit() in a loop, and emit_many() when the producer has it."""
    count = run.sizes["producer"]
    run.flush_redis()
    emitter = Emitter(run.args.broker)
    try:
        emitter.one(1, "producer-warm", 0)
        started = time.monotonic()
        for seq in range(count):
            emitter.one(1, "producer", seq)
        loop_s = time.monotonic() - started
        result = {"triggers": count, "emit_per_s": round(count / loop_s, 1)}
        if emitter.has_many:
            emitter.threads = 1
            seconds = emitter.many(1, "producer-many", list(range(count)))
            result["emit_many_per_s"] = round(count / seconds, 1)
            result["emit_many_batch"] = emitter.batch
        else:
            result["note"] = "the producer has no emit_many()"
        return result
    finally:
        run.flush_redis()


SCENARIOS = {"throughput": throughput, "fanout": fanout, "latency": latency, "slow": slow,
             "retry_storm": retry_storm, "producer": producer}
