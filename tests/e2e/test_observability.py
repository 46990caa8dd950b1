"""Metrics, health endpoints, logs and the demo, for real: worker and scheduler processes,
gunicorn, PostgreSQL behind a proxy that can go away, and the ``demo`` command."""

import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse

import sqlalchemy as sa

from tests.conftest import TEST_KEY
from tests.e2e.conftest import BROKER
from tests.e2e.conftest import order
from tests.support.processes import Command
from tests.support import isolation
from tests.support.observability import TcpProxy
from tests.support.observability import free_port
from tests.support.observability import metric
from tests.support.observability import wait_http
from tests.support.observability import wait_metric
from tests.support.processes import environment
from tests.support.servers import scripted
from tests.support.servers import token_route

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def start_with_metrics(pipeline, what, *args):
    """A pipeline process with its metrics server on a port of its own; returns (process, base URL)."""
    port = free_port()
    pipeline.env.update(DOO_WEBHOOKS_METRICS_PORT=str(port), DOO_WEBHOOKS_METRICS_HOST="127.0.0.1")
    try:
        process = pipeline.start(what, *args)
    finally:
        del pipeline.env["DOO_WEBHOOKS_METRICS_PORT"], pipeline.env["DOO_WEBHOOKS_METRICS_HOST"]
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", process=process.proc, what=f"the {what}'s health endpoint")
    return process, base


def authentication(peer, client_secret):
    return {"grant_type": "client_credentials", "endpoint": peer.url("/oauth"),
            "credentials": {"client_id": "crm", "client_secret": client_secret}}


# --- metrics -------------------------------------------------------------------------------

def test_metrics_move_in_a_pipeline_run(pipeline_factory, peer):
    pipeline = pipeline_factory(max_attempts=3)
    worker, worker_url = start_with_metrics(pipeline, "worker", "--concurrency", "4")
    scheduler, scheduler_url = start_with_metrics(pipeline, "scheduler")
    assert metric(wait_http(worker_url + "/metrics").text, "doo_webhooks_attempts_total",
                  outcome="success", status_class="2xx") == 0

    peer.routes["/oauth"] = token_route()
    peer.routes["/crm"] = scripted(500)  # the first attempt fails; the scheduler brings the retry
    peer.routes["/gone"] = scripted(then=503)  # never: three attempts, then the dead letters
    pipeline.tenant.create_group({
        "name": "CRM", "authentication": authentication(peer, "s3cret"),
        "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")},
                  {"type": "order_updated", "endpoint": peer.url("/gone")}]})
    pipeline.emit("order_created", order(1))
    pipeline.emit("order_created", order(2))
    pipeline.emit("order_updated", order(3))
    pipeline.wait_until(lambda: pipeline.all_settled(3), what="three settled deliveries")

    url = worker_url + "/metrics"
    text = wait_metric(url, "doo_webhooks_deliveries_total", 2, outcome="delivered", status_class="2xx")
    text = wait_metric(url, "doo_webhooks_dead_letters_total", 1, reason="http_status")
    assert metric(text, "doo_webhooks_deliveries_total", outcome="dead", status_class="5xx") == 1
    assert metric(text, "doo_webhooks_attempts_total", outcome="success", status_class="2xx") == 2
    assert metric(text, "doo_webhooks_attempts_total", outcome="http_status", status_class="5xx") == 1 + 3
    assert metric(text, "doo_webhooks_attempt_duration_seconds_count", status_class="5xx") == 4
    assert metric(text, "doo_webhooks_delivery_latency_seconds_count") == 2
    assert metric(text, "doo_webhooks_delivery_latency_seconds_sum") > 0
    assert metric(text, "doo_webhooks_token_fetches_total", outcome="ok") == 1  # cached for the rest

    assert metric(text, "doo_webhooks_claimed_total", lane="pending") == 3  # three first attempts
    assert metric(text, "doo_webhooks_claimed_total", lane="retrying") == 3  # the dead one's retries
    assert wait_http(scheduler_url + "/readyz").json() == {"status": "ok", "checks": {"database": "ok",
                                                                                      "broker": "ok"}}

    # the API's own /metrics: its requests, and the ledger's state read at scrape time
    text = pipeline.client.get("/metrics").get_data(as_text=True)
    assert metric(text, "doo_webhooks_api_requests_total", endpoint="/v1/team/<int:team_id>/webhooks",
                  method="POST", status="200") >= 1
    assert metric(text, "doo_webhooks_api_requests_total", endpoint="/v1/oauth", method="POST", status="200") >= 1
    assert ("doo_webhooks_deliveries_due", ()) in _keys(text)
    assert metric(text, "doo_webhooks_deliveries_due") == 0  # all settled
    assert ("doo_webhooks_queue_depth", (("queue", "triggers"),)) in _keys(text)


def _keys(text):
    from tests.support.observability import samples
    return set(samples(text))


# --- logs ----------------------------------------------------------------------------------

def test_secrets_and_tokens_never_reach_the_logs(pipeline_factory, peer, caplog):
    pipeline = pipeline_factory(log_level="DEBUG")
    pipeline.start("worker", "--concurrency", "4")
    pipeline.start("scheduler")
    client_secret = "cs-" + secrets.token_hex(16)
    issued = []

    def token_endpoint(recorded):
        if not issued:
            # a careless endpoint echoes the request, secret included, in its error
            issued.append("refused")
            return 500, {}, {"error": "server_error", "request": recorded.body.decode()}
        token = "at-" + secrets.token_hex(20)
        issued.append(token)
        return 200, {}, {"access_token": token, "expires_in": 3600}

    peer.routes["/oauth"] = token_endpoint
    peer.routes["/crm"] = scripted(401)  # the receiver drops the first token: a second is fetched
    with caplog.at_level("DEBUG"):
        group_id = pipeline.tenant.create_group({
            "name": "CRM", "authentication": authentication(peer, client_secret),
            "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
        pipeline.client.get(f"/v1/webhooks/{group_id}", headers=pipeline.tenant.headers())
    trigger_id = pipeline.emit("order_created", order(1))
    pipeline.wait_until(lambda: pipeline.all_settled(1), what="the delivery")
    assert pipeline.deliveries()[0].status == "delivered"
    tokens = [t for t in issued if t != "refused"]
    assert len(tokens) == 2, issued  # token_error attempt, then 401 -> new token -> 200

    for process in pipeline.processes:
        process.stop()
    logs = pipeline.logs()
    forbidden = [client_secret, urllib.parse.quote_plus(client_secret), *tokens,
                 pipeline.tenant.api_key, pipeline.tenant.client_secret, pipeline.tenant.access_token]
    for text, where in ((logs, "worker and scheduler logs"), (caplog.text, "API logs")):
        for value in forbidden:
            assert value not in text, f"{value!r} appears in the {where}"
    with pipeline.engine.begin() as conn:  # nor in what the ledger keeps of each attempt
        kept = " ".join(str(v) for row in conn.execute(sa.text(
            "SELECT error_detail, request_headers, response_excerpt FROM attempts")) for v in row)
    for value in forbidden:
        assert value not in kept

    # not vacuous: the logs are there, one JSON object a line, Celery's own lines included,
    # and each line of a delivery carries its trigger, delivery, group and attempt
    lines = [json.loads(line) for line in logs.splitlines()
             # the one line Celery's signal handler writes to stdout itself, not through logging
             if line.strip() and line != "worker: Warm shutdown (MainProcess)"]
    assert any(line["logger"].startswith("celery") for line in lines)
    assert any(line["level"] == "DEBUG" for line in lines)
    attempts = [line for line in lines if line["message"].startswith("attempt ")]
    assert [(a["attempt"], a["error_kind"]) for a in attempts] == [(1, "token_error"), (2, None)]
    for line in attempts:
        assert line["trigger_id"] == trigger_id and line["group_id"] == group_id
        assert line["delivery_id"] == pipeline.deliveries()[0].id


# --- health ----------------------------------------------------------------------------------

def _gunicorn(tmp_path, database_url, name="web"):
    port = free_port()
    prometheus = tmp_path / f"prometheus-{name}"
    prometheus.mkdir()
    env = environment({
        "DOO_WEBHOOKS_DATABASE_URL": database_url, "DOO_WEBHOOKS_BROKER_URL": BROKER,
        "DOO_WEBHOOKS_SECRET_KEYS": TEST_KEY, "DOO_WEBHOOKS_LOG_FORMAT": "json",
        "DOO_WEBHOOKS_DATA_DIR": str(tmp_path), "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(prometheus),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    command = Command([str(BIN / "gunicorn"), "--config", "python:doo_webhooks.gunicorn_conf",
                       "--bind", f"127.0.0.1:{port}", "app.wsgi:app"], env, tmp_path / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", process=command.proc, what="gunicorn")
    return command, base


def test_readyz_turns_red_when_postgresql_is_unreachable(pg_database_url, tmp_path):
    url = sa.engine.make_url(pg_database_url)
    proxy = TcpProxy(url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    web, base = _gunicorn(tmp_path, proxied)
    try:
        ready = wait_http(base + "/readyz")
        assert (ready.status_code, ready.json()["checks"]) == (200, {"database": "ok", "broker": "ok"})

        proxy.close()  # PostgreSQL is gone
        red = wait_http(base + "/readyz", status=503)
        assert red.json() == {"status": "unavailable",
                              "checks": {"database": "failed: OperationalError", "broker": "ok"}}
        started = time.monotonic()
        for _ in range(3):  # every check answers quickly, and so does liveness
            assert wait_http(base + "/readyz").status_code == 503
            healthz = wait_http(base + "/healthz")
            assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
        assert time.monotonic() - started < 10

        proxy = TcpProxy(url.port or 5432, port=proxy.port)  # back
        assert wait_http(base + "/readyz", status=200).json()["status"] == "ok"

        # several gunicorn workers, one count: /metrics adds up every worker's requests
        before = metric(wait_http(base + "/metrics").text, "doo_webhooks_api_requests_total",
                        endpoint="/healthz", method="GET", status="200")
        for _ in range(20):
            wait_http(base + "/healthz")
        after = metric(wait_http(base + "/metrics").text, "doo_webhooks_api_requests_total",
                       endpoint="/healthz", method="GET", status="200")
        assert after - before == 20
    finally:
        proxy.close()
        assert web.stop() == 0
    lines = [json.loads(line) for line in web.output().splitlines() if line.strip()]  # gunicorn's own too
    assert any(line["logger"] == "gunicorn.access" and "/readyz" in line["message"] for line in lines)
    assert any(line["logger"] == "workers.health" and line["level"] == "WARNING" for line in lines)


def test_worker_and_scheduler_readyz_without_their_database(pipeline_factory):
    pipeline = pipeline_factory()
    pipeline.env["DOO_WEBHOOKS_DATABASE_URL"] = "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
    for what in ("scheduler", "worker"):
        _, base = start_with_metrics(pipeline, what)
        answer = wait_http(base + "/readyz")
        assert (answer.status_code, answer.json()["checks"]) == (
            503, {"database": "failed: OperationalError", "broker": "ok"}), what
        assert wait_http(base + "/healthz").status_code == 200
        assert wait_http(base + "/nothing-here").status_code == 404


# --- demo ----------------------------------------------------------------------------------

def _demo(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path))  # to see what it leaves behind
    return isolation.Popen([sys.executable, "-m", "doo_webhooks.cli", "demo", *args], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_demo_shows_deliveries_arriving_and_stops_by_itself(tmp_path):
    demo = _demo(tmp_path)
    try:
        lines, live = [], None
        for line in demo.stdout:
            lines.append(line)
            if live is None and re.search(r"delivery .*: attempt 1 -> HTTP 200 .* delivered", line):
                live = demo.poll() is None  # shown while it runs, not in a report at the end
        assert demo.wait(timeout=60) == 0, "".join(lines) + demo.stderr.read()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    output = "".join(lines)
    assert live, output
    assert "All 5 deliveries arrived (1 after a retry)" in output
    assert len(re.findall(r"delivery .*: attempt \d -> HTTP 200 .*, delivered", output)) == 5
    assert re.search(r"order_created order 1003: attempt 1 -> HTTP 503 .*, retrying", output)
    assert len(re.findall(r"receiver +/webhooks: .*signature ok -> 200", output)) == 5
    assert 'doo_webhooks_deliveries_total{outcome="delivered",status_class="2xx"} 5.0' in output
    assert 'doo_webhooks_token_fetches_total{outcome="ok"} 1.0' in output
    assert "/metrics):" not in output and not re.search(r"http://\S+/metrics", output), \
        "the demo names no metrics URL: its server is gone when it prints"
    assert not list(tmp_path.glob("doo-webhooks-demo-*")) and not (tmp_path / ".doo-webhooks").exists()


def test_demo_stops_on_ctrl_c(tmp_path):
    demo = _demo(tmp_path, "--data-dir", str(tmp_path / "kept"))
    try:
        # as soon as it is running, before it emits: with the pipeline as fast as it is now, a
        # Ctrl-C after the first trigger could come after the last delivery (seen in CI)
        for line in demo.stdout:
            if "doo-webhooks demo: the service runs at" in line:
                break
        started = time.monotonic()
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=10) == 130
        assert time.monotonic() - started < 5
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert "interrupted" in demo.stdout.read()
    assert (tmp_path / "kept" / "doo-webhooks.sqlite3").exists()  # --data-dir is kept
