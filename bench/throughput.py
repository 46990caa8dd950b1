"""Deliveries per second on this machine, as a ratio against a naive baseline in the same run.

    python bench/throughput.py [--deliveries 2000] [--threads 8]

The receiver is a local HTTP server answering 200 at once, so what is measured is the cost of
the pipeline itself. Three runs against one fresh PostgreSQL database:

* baseline: the "afternoon version": per delivery a fresh database connection, a fresh
  requests.post, one attempt row and one update;
* engine: doo-webhooks' deliver_batch (batched claim and record, pooled connections and
  sessions), called from ``--threads`` threads like a Celery threads-pool worker;
* pipeline: emit() to Redis, the real ``doo-webhooks worker`` and ``scheduler`` processes,
  until every delivery is recorded delivered.

Timings are noisy on shared machines: compare the ratios, not the absolute numbers.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg2  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from doo_webhooks import settings as settings_module  # noqa: E402
from storage.db import engine_for  # noqa: E402
from storage.db import utcnow  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from tests.support.ledger import insert_group  # noqa: E402
from tests.support.processes import Process  # noqa: E402
from tests.support.processes import environment  # noqa: E402
from tests.support.servers import Peer  # noqa: E402
from tests.support.servers import scripted  # noqa: E402
from workers import delivery  # noqa: E402
from workers import fanout  # noqa: E402
from workers.context import WorkerContext  # noqa: E402
from workers.producer import emit  # noqa: E402
from workers.producer import prepare  # noqa: E402

SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
BROKER = "redis://127.0.0.1:6379/12"


class Tenant:
    organization_id = None
    team_id = None


def make_database():
    name = f"doo_webhooks_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    return admin, name, url


def fan_out_many(engine, organization_id, count):
    ids = []
    for n in range(count):
        record = prepare("order_created", {"order_details": {"id": n, "status": "active"}, "event": {"id": 1}},
                         organization_id=organization_id)
        ids += fanout.fan_out(engine, record, utcnow())
    return ids


def baseline(url, ids, threads):
    """One delivery at a time, everything fresh: the design this project replaced."""
    dsn = url.replace("postgresql+psycopg2://", "postgresql://")

    def one(delivery_id):
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT d.endpoint, t.entity FROM deliveries d JOIN triggers t ON t.id = d.trigger_pk "
                            "WHERE d.id = %s", (delivery_id,))
                endpoint, entity = cur.fetchone()
                started = time.monotonic()
                answer = requests.post(endpoint, data=entity, headers={"Content-Type": "application/json"}, timeout=5)
                cur.execute("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code) "
                            "VALUES (%s, 1, now(), %s, %s)",
                            (delivery_id, int((time.monotonic() - started) * 1000), answer.status_code))
                cur.execute("UPDATE deliveries SET status = 'delivered', attempts = 1 WHERE id = %s", (delivery_id,))
        finally:
            conn.close()

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, ids))
    return time.monotonic() - started


def engine_run(ctx, ids, threads):
    batches = [ids[i:i + ctx.settings.batch_size] for i in range(0, len(ids), ctx.settings.batch_size)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda batch: delivery.deliver_batch(ctx, batch), batches))
    return time.monotonic() - started


def pipeline_run(env, engine, organization_id, count, threads, tmp, workers=1):
    redis.Redis.from_url(BROKER).flushdb()
    processes = [Process(["worker", "--concurrency", str(threads)], environment(env), f"{tmp}/worker-{n}.log")
                 for n in range(workers)]
    processes.append(Process(["scheduler"], environment(env), f"{tmp}/scheduler.log"))
    try:
        # let the worker connect before the clock starts
        emit("order_created", {"order_details": {"id": -1, "status": "active"}, "event": {"id": 1}},
             organization_id=organization_id, broker_url=BROKER)
        wait_delivered(engine, 1)
        started = time.monotonic()
        for n in range(count):
            emit("order_created", {"order_details": {"id": n, "status": "active"}, "event": {"id": 1}},
                 organization_id=organization_id, broker_url=BROKER)
        wait_delivered(engine, count + 1)
        return time.monotonic() - started
    finally:
        for process in processes:
            process.stop()


def wait_delivered(engine, count, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.begin() as conn:
            done = conn.execute(sa.text("SELECT count(*) FROM deliveries WHERE status = 'delivered'")).scalar()
        if done >= count:
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out: {done}/{count} delivered")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker processes in the pipeline run")
    parser.add_argument("--ordering-delay", default="0.5", help="DOO_WEBHOOKS_ORDERING_DELAY for the pipeline run")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()

    peer = Peer()
    peer.routes["/hook"] = scripted()
    admin, name, url = make_database()
    tmp = tempfile.mkdtemp()
    env = {"DOO_WEBHOOKS_DATABASE_URL": url, "DOO_WEBHOOKS_BROKER_URL": BROKER, "DOO_WEBHOOKS_REDIS_URL": BROKER,
           "DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8", "DOO_WEBHOOKS_DATA_DIR": tmp,
           "DOO_WEBHOOKS_LOG_LEVEL": "WARNING", "DOO_WEBHOOKS_DISPATCH_INTERVAL": "0.2",
           "DOO_WEBHOOKS_ORDERING_DELAY": args.ordering_delay}
    settings = settings_module.from_env(env)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            from storage import queries
            Tenant.organization_id = queries.create_organization(conn, "bench", utcnow())
            Tenant.team_id = queries.create_team(conn, Tenant.organization_id, "bench", utcnow())
        insert_group(engine, Tenant, [{"type": "order_created", "endpoint": peer.url("/hook")}])
        results = {}
        ids = fan_out_many(engine, Tenant.organization_id, args.deliveries)
        results["baseline"] = args.deliveries / baseline(url, ids, args.threads)
        ids = fan_out_many(engine, Tenant.organization_id, args.deliveries)
        ctx = WorkerContext.create(settings, publisher=None)
        results["engine"] = args.deliveries / engine_run(ctx, ids, args.threads)
        if not args.skip_pipeline:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE deliveries SET status = 'archived'"))
            results["pipeline"] = args.deliveries / pipeline_run(env, engine, Tenant.organization_id,
                                                                 args.deliveries, args.threads, tmp, args.workers)
        report = {"deliveries": args.deliveries, "threads": args.threads, "workers": args.workers,
                  "ordering_delay": args.ordering_delay,
                  "cores": os.cpu_count(),
                  "per_second": {k: round(v, 1) for k, v in results.items()},
                  "ratio_to_baseline": {k: round(v / results["baseline"], 2) for k, v in results.items()}}
        print(json.dumps(report, indent=2))
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        peer.close()


if __name__ == "__main__":
    main()
