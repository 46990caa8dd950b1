"""Procfile, docker-compose.yml and the Dockerfile name only commands that exist.

Each command line is read from its file (not copied here): its program must be installed
beside this Python, must answer ``--help`` (gunicorn: ``--check-config`` with its config),
and the long-running ones are started as written and must answer their health endpoint.
"""

import json
import os
import pathlib
import shlex
import shutil
import sys

import pytest
import redis
import yaml

from tests.conftest import TEST_KEY
from tests.e2e.conftest import BROKER
from tests.support import isolation
from tests.support.processes import Command
from tests.support.observability import free_port
from tests.support.observability import wait_http

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
OUR_PROGRAMS = {"doo-webhooks", "gunicorn"}


def procfile():
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip() and line[0] != "#"]
    return {f"Procfile {name.strip()}": shlex.split(command)
            for name, _, command in (line.partition(":") for line in lines)}


def compose():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    found = {}
    for name, service in services.items():
        if "build" not in service:  # postgres, redis: images of their own
            continue
        command = service["command"]
        found[f"compose {name}"] = shlex.split(command) if isinstance(command, str) else list(command)
    return found


def dockerfile():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return {"Dockerfile CMD": json.loads(line[4:])}
    raise AssertionError("the Dockerfile has no CMD")


COMMANDS = {**procfile(), **compose(), **dockerfile()}


def test_the_files_are_read():
    assert {"Procfile web", "Procfile worker", "Procfile scheduler", "Procfile release"} <= set(COMMANDS)
    assert {"compose migrate", "compose web", "compose worker", "compose scheduler"} <= set(COMMANDS)
    assert {argv[0] for argv in COMMANDS.values()} == OUR_PROGRAMS


@pytest.fixture
def env(tmp_path):
    """A bare environment on a fresh SQLite file; PYTHONPATH: this checkout, whatever is installed."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DOO_WEBHOOKS_", "PROMETHEUS_"))}
    environment.update({
        "DOO_WEBHOOKS_DATA_DIR": str(tmp_path), "DOO_WEBHOOKS_SECRET_KEYS": TEST_KEY,
        "DOO_WEBHOOKS_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        "DOO_WEBHOOKS_BROKER_URL": BROKER, "DOO_WEBHOOKS_REDIS_URL": BROKER, "DOO_WEBHOOKS_LOG_FORMAT": "json",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return environment


def program(argv):
    found = shutil.which(argv[0], path=str(BIN))
    assert found, f"{argv[0]} is not installed beside {sys.executable}"
    return [found, *argv[1:]]


@pytest.mark.parametrize("where", sorted(COMMANDS))
def test_each_command_exists_and_answers_help(where, env):
    argv = program(COMMANDS[where])
    if argv[0].endswith("gunicorn"):
        env["PROMETHEUS_MULTIPROC_DIR"] = env["DOO_WEBHOOKS_DATA_DIR"]
        done = isolation.run([argv[0], "--check-config", *argv[1:]], env=env, capture_output=True, text=True,
                              timeout=60)
    else:
        done = isolation.run([*argv, "--help"], env=env, capture_output=True, text=True, timeout=60)
        assert "Usage:" in done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def _one_of(prefix, name):
    return [where for where in sorted(COMMANDS) if where.startswith(prefix) and where.endswith(f" {name}")]


@pytest.mark.parametrize("where", _one_of("Procfile", "release") + _one_of("compose", "migrate"))
def test_migrations_run(where, env, tmp_path):
    done = isolation.run(program(COMMANDS[where]), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database at revision" in done.stdout


@pytest.mark.parametrize("where", _one_of("Procfile", "web") + _one_of("compose", "web"))
def test_web_starts_and_answers_health(where, env, tmp_path):
    redis.Redis.from_url(BROKER).flushdb()  # its queue depths below: nothing left by earlier tests
    isolation.run(program(["doo-webhooks", "db", "upgrade"]), env=env, check=True, capture_output=True)
    port = free_port()
    env.update(PORT=str(port), WEB_CONCURRENCY="2")
    # as written, but on 127.0.0.1 only (the config binds 0.0.0.0 for containers)
    command = Command([*program(COMMANDS[where]), "--bind", f"127.0.0.1:{port}"], env, tmp_path / "web.log")
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_http(base + "/healthz", process=command.proc, what="web").json() == {"status": "ok"}
        assert wait_http(base + "/readyz").status_code == 200
        exposition = wait_http(base + "/metrics").text  # gunicorn workers' counters and the ledger's gauges
        assert "doo_webhooks_api_requests_total" in exposition
        assert "doo_webhooks_deliveries_due 0.0" in exposition
        assert 'doo_webhooks_queue_depth{queue="triggers"} 0.0' in exposition
        assert wait_http(base + "/v1/openapi.json").json()["info"]["title"] == "doo-webhooks"
    finally:
        assert command.stop() == 0, command.output()


@pytest.mark.parametrize("where", _one_of("Procfile", "worker") + _one_of("compose", "worker")
                         + _one_of("Procfile", "scheduler") + _one_of("compose", "scheduler"))
def test_worker_and_scheduler_start_and_answer_health(where, env, tmp_path):
    redis.Redis.from_url(BROKER).flushdb()
    isolation.run(program(["doo-webhooks", "db", "upgrade"]), env=env, check=True, capture_output=True)
    port = free_port()
    env.update(DOO_WEBHOOKS_METRICS_PORT=str(port), DOO_WEBHOOKS_METRICS_HOST="127.0.0.1")
    command = Command(program(COMMANDS[where]), env, tmp_path / "process.log")
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_http(base + "/healthz", process=command.proc, what=where).json() == {"status": "ok"}
        assert wait_http(base + "/readyz").json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
        assert "doo_webhooks_attempts_total" in wait_http(base + "/metrics").text
        # its stop below must be the clean one: wait until it took over its signals
        command.wait_output(" ready." if COMMANDS[where][1] == "worker" else "scheduler started")
    finally:
        assert command.stop() == 0, command.output()


def test_compose_healthchecks_probe_the_ports_the_processes_serve():
    compose_file = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    metrics_port = compose_file["x-app"]["environment"]["DOO_WEBHOOKS_METRICS_PORT"]
    web_port = compose_file["services"]["web"]["ports"][0].rsplit(":", 1)[1]
    expected = {"web": web_port, "worker": metrics_port, "scheduler": metrics_port}
    for name, port in expected.items():
        probe = " ".join(compose_file["services"][name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in probe, (name, probe)
