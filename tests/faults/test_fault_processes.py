"""SIGKILL of the service's own processes mid-batch: a worker, the scheduler, the web process.

A SIGKILL leaves no chance to clean up: in-flight rows keep their lease, stream entries stay
pending, an HTTP request is cut. Each case then starts the process again and checks that
every accepted trigger ends delivered, duplicates (re-sends of a request the receiver had
already accepted) carrying the same webhook-id.
"""

import os
import pathlib
import sys
import threading
import time

import requests
import sqlalchemy as sa

from ground.crypto import digest
from storage import tenancy
from storage.db import utcnow
from tests.e2e.conftest import order
from tests.support.observability import free_port
from tests.support.observability import wait_http
from tests.support.processes import Command
from tests.support.processes import environment
from tests.support.servers import held
from tests.support.servers import scripted

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def in_flight(pipeline):
    with pipeline.engine.begin() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM deliveries WHERE status = 'in_flight'")).scalar_one()


def test_worker_sigkill_mid_batch_then_restart(make_pipeline, peer, fault_case):
    case = fault_case("worker SIGKILL mid-batch, restarted")
    pipeline = make_pipeline()
    release = threading.Event()
    peer.routes["/crm"] = held(release, free=10)
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    worker = pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")

    case.emit(pipeline, 40, 1000)
    # mid-batch: some delivered, some requests in flight (held), the rest claimed or due
    peer.wait_for(lambda p: len(p.requests) >= 14, what="requests in flight")
    worker.kill()
    stranded = in_flight(pipeline)
    case.emit(pipeline, 20, 2000)  # while no worker runs: they wait in the stream
    release.set()
    pipeline.start("worker", "--concurrency", "2")

    case.finish(pipeline, peer, notes=f"{stranded} in flight at the kill, taken back by the scheduler")


def test_scheduler_sigkill_with_a_dead_workers_deliveries_in_flight(make_pipeline, peer, fault_case):
    case = fault_case("scheduler SIGKILL (and worker) mid-batch, restarted")
    pipeline = make_pipeline()
    release = threading.Event()
    peer.routes["/crm"] = held(release)
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    worker = pipeline.start("worker", "--concurrency", "2")
    scheduler = pipeline.start("scheduler")

    case.emit(pipeline, 30, 3000)
    peer.wait_for(lambda p: len(p.requests) >= 4, what="requests in flight")
    # the scheduler dies, then the worker whose leases only the scheduler takes back
    scheduler.kill()
    worker.kill()
    release.set()
    pipeline.start("worker", "--concurrency", "2")
    case.emit(pipeline, 10, 3100)  # new work goes through without a scheduler

    # once every stranded lease has run out, nobody has taken them back yet: no scheduler runs
    def leases_expired():
        with pipeline.engine.begin() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) = 0 FROM deliveries WHERE status = 'in_flight' AND lease_until >= :now"),
                {"now": utcnow()}).scalar_one()
    pipeline.wait_until(leases_expired, timeout=30, what="the dead worker's leases to run out")
    waiting = in_flight(pipeline)
    pipeline.start("scheduler")

    case.finish(pipeline, peer, notes=f"{waiting} in flight waited for the scheduler's restart")


def start_web(pipeline, port, tmp_path, n):
    prometheus = tmp_path / f"prometheus-{n}"
    prometheus.mkdir()
    env = environment({**pipeline.env, "WEB_CONCURRENCY": "1", "WEB_THREADS": "4",
                       "PROMETHEUS_MULTIPROC_DIR": str(prometheus),
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    web = Command([str(BIN / "gunicorn"), "--config", "python:doo_webhooks.gunicorn_conf",
                   "--bind", f"127.0.0.1:{port}", "app.wsgi:app"], env, tmp_path / f"web-{n}.log")
    wait_http(f"http://127.0.0.1:{port}/healthz", process=web.proc, what="gunicorn")
    return web


def test_web_sigkill_while_triggers_are_posted(make_pipeline, peer, fault_case, tmp_path):
    case = fault_case("web (gunicorn) SIGKILL during POST /v1/triggers, restarted")
    pipeline = make_pipeline()
    peer.routes["/crm"] = scripted()
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    with pipeline.engine.begin() as conn:
        tenancy.create_platform_key(conn, "platform", digest("platform-key"), utcnow())
    pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    port = free_port()
    web = start_web(pipeline, port, tmp_path, 1)

    # The platform's side: POST each trigger until it is answered 202; a cut connection or
    # an error is sent again with the same trigger_id (that is what trigger_id is for).
    accepted, failed = [], []
    deadline = time.monotonic() + 60

    def post(first, count):
        for n in range(first, first + count):
            while True:
                try:
                    answer = requests.post(f"http://127.0.0.1:{port}/v1/triggers", timeout=5, headers={
                        "x-api-key": "platform-key"}, json={
                        "type": "order_created", "entity": order(n), "trigger_id": f"web-{n}",
                        "organization_id": pipeline.tenant.organization_id})
                    if answer.status_code == 202:
                        accepted.append(answer.json()["data"]["trigger_id"])
                        break
                    failed.append(answer.status_code)
                except requests.RequestException as exc:
                    failed.append(type(exc).__name__)
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)  # the web process is away: ask again shortly, as a platform would

    posters = [threading.Thread(target=post, args=(4000 + 100 * k, 20)) for k in range(2)]
    for poster in posters:
        poster.start()
    pipeline.wait_until(lambda: len(accepted) >= 12, what="triggers accepted before the kill")
    web.kill()
    web = start_web(pipeline, port, tmp_path, 2)
    for poster in posters:
        poster.join(timeout=70)
    web.stop()
    case.accepted = list(accepted)
    assert len(set(accepted)) == 40, f"the platform could not hand over every trigger: {len(set(accepted))}"

    case.finish(pipeline, peer, notes=f"{len(failed)} POST(s) cut or refused, sent again")


def test_worker_killed_during_every_attempt_gives_up_after_ten(make_pipeline, peer, fault_case):
    """A receiver whose requests kill the worker (a poison delivery): the attempts are
    counted when claimed, so the delivery is dead after exactly ten, not retried forever."""
    case = fault_case("worker SIGKILLed during every attempt (poison delivery)")
    # a lease of 3.3 x 0.4 s: the scheduler takes a dead worker's rows back about as fast
    # as the next worker starts
    pipeline = make_pipeline(connect_timeout="0.1", read_timeout="0.3")
    release = threading.Event()
    peer.routes["/crm"] = held(release, status=500)  # it never accepts one
    pipeline.tenant.create_group({"name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    pipeline.start("scheduler")
    case.emit(pipeline, 3, 8000)

    kills = 0
    try:
        while not case.settled(pipeline.engine):
            assert kills < 15, "the deliveries are retried beyond their ten attempts"
            seen = len(peer.requests)
            worker = pipeline.start("worker", "--concurrency", "1")
            deadline = time.monotonic() + 30
            while len(peer.requests) == seen and not case.settled(pipeline.engine):
                assert time.monotonic() < deadline, "no attempt within 30 s"
                time.sleep(0.02)
            worker.kill()
            kills += 1
    finally:
        release.set()
    with pipeline.engine.begin() as conn:
        lost = conn.execute(sa.text("SELECT count(*) FROM attempts WHERE error_kind = 'worker_lost'")).scalar_one()

    case.finish(pipeline, peer, expect="dead", notes=f"{kills} workers killed; {lost} attempts recorded as worker_lost")
