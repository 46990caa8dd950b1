"""The README's run command: `doo-webhooks standalone` on a bare machine (SQLite, no broker)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import requests

from tests.support import isolation
from tests.support.servers import scripted

ORDER = {"order_details": {"id": 5, "status": "active"}, "event": {"id": 3}}


class Standalone:
    def __init__(self, data_dir, **env):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
        environment.update({"DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8", "DOO_WEBHOOKS_RETRY_JITTER": "0",
                            "DOO_WEBHOOKS_DISPATCH_INTERVAL": "0.1", "DOO_WEBHOOKS_LOG_FORMAT": "json", **env})
        self.proc = isolation.Popen(
            [sys.executable, "-m", "doo_webhooks.cli", "standalone", "--port", "0", "--data-dir", str(data_dir)],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.output = []
        for line in self.proc.stdout:  # the banner tells where it listens and ends with Ctrl-C
            self.output.append(line)
            if "Stop with Ctrl-C" in line:
                break
        found = re.search(r"running at (http://127\.0\.0\.1:\d+)", "".join(self.output))
        if not found:
            raise AssertionError("standalone exited before listening: " + "".join(self.output))
        self.base = found.group(1)
        self.creds = json.loads((data_dir / "demo-credentials.json").read_text())

    def token(self):
        answer = requests.post(f"{self.base}/v1/oauth", headers={"x-api-key": self.creds["api_key"]}, json={
            "client_id": self.creds["client_id"], "client_secret": self.creds["client_secret"],
            "grant_type": "client_credentials"}, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["access_token"]

    def headers(self):
        return {"x-api-key": self.creds["api_key"], "Authorization": f"Bearer {self.token()}"}

    def emit(self, entity):
        answer = requests.post(f"{self.base}/v1/triggers", headers={"x-api-key": self.creds["platform_key"]},
                               json={"type": "order_created", "entity": entity,
                                     "organization_id": self.creds["organization_id"]}, timeout=5)
        assert answer.status_code == 202, answer.text
        return answer.json()["data"]["trigger_id"]

    def interrupt(self):
        """Ctrl-C; returns the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        return time.monotonic() - started

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def test_standalone_runs_the_whole_flow_and_survives_a_restart(tmp_path, peer):
    peer.routes["/crm"] = scripted()
    service = Standalone(tmp_path)
    try:
        assert "curl" in "".join(service.output)
        ready = requests.get(f"{service.base}/readyz", timeout=5)  # its broker is its own database
        assert (ready.status_code, ready.json()["checks"]) == (200, {"database": "ok", "broker": "ok"})
        team = service.creds["team_id"]
        created = requests.post(f"{service.base}/v1/team/{team}/webhooks", headers=service.headers(), json={
            "name": "CRM", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]}, timeout=5)
        assert created.status_code == 200, created.text

        service.emit(ORDER)
        peer.wait_for(lambda p: len(p.at("/crm")) == 1, what="the delivery")
        assert peer.at("/crm")[0].json()["order_details"] == ORDER["order_details"]
        assert service.interrupt() < 5
        assert service.proc.returncode == 0
    finally:
        service.kill()

    # the receiver goes down; a retry falls due while the service is stopped
    peer.routes["/crm"] = scripted(500)
    service = Standalone(tmp_path, DOO_WEBHOOKS_RETRY_SCHEDULE="1")
    try:
        listed = requests.get(f"{service.base}/v1/team/{service.creds['team_id']}/webhooks",
                              headers=service.headers(), timeout=5)
        assert [g["name"] for g in listed.json()["_embedded"]["webhooks"]] == ["CRM"]
        service.emit(dict(ORDER, order_details={"id": 6, "status": "active"}))
        peer.wait_for(lambda p: len(p.at("/crm")) == 2, what="the failing attempt")
        service.kill()  # not even a clean stop
    finally:
        service.kill()

    service = Standalone(tmp_path)
    try:
        peer.wait_for(lambda p: len(p.at("/crm")) == 3, what="the retry after the restart")
        assert peer.at("/crm")[2].json()["order_details"]["id"] == 6
    finally:
        service.interrupt()


def test_all_three_ways_to_emit_reach_a_running_standalone(tmp_path, peer):
    """POST /v1/triggers, `doo-webhooks emit` and emit() from Python, with the standalone's
    settings (its data dir) and no broker anywhere: each trigger is delivered, with the
    X-Doo-Trigger header naming its type."""
    peer.routes["/crm"] = scripted()
    service = Standalone(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
    env["DOO_WEBHOOKS_DATA_DIR"] = str(tmp_path)
    try:
        created = requests.post(f"{service.base}/v1/team/{service.creds['team_id']}/webhooks",
                                headers=service.headers(), json={
                                    "name": "CRM", "hooks": [{"type": t, "endpoint": peer.url("/crm")}
                                                             for t in ("order_created", "order_updated")]},
                                timeout=5)
        assert created.status_code == 200, created.text
        organization = str(service.creds["organization_id"])

        service.emit(ORDER)  # 1. over HTTP
        (tmp_path / "order.json").write_text(json.dumps(dict(ORDER, order_details={"id": 6, "status": "active"})))
        cli = subprocess.run([sys.executable, "-m", "doo_webhooks.cli", "emit", "order_updated", "--organization-id",
                              organization, str(tmp_path / "order.json")], env=env, capture_output=True, text=True,
                             timeout=60)
        assert cli.returncode == 0, cli.stderr  # 2. from a shell
        script = ("from workers.producer import emit; "
                  f"print(emit('order_created', {{'order_details': {{'id': 7, 'status': 'active'}}, "
                  f"'event': {{'id': 3}}}}, organization_id={organization}))")
        python = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert python.returncode == 0, python.stderr  # 3. from Python

        peer.wait_for(lambda p: len(p.at("/crm")) == 3, what="three deliveries")
        got = {r.json()["order_details"]["id"]: r.headers["x-doo-trigger"] for r in peer.at("/crm")}
        assert got == {5: "order_created", 6: "order_updated", 7: "order_created"}
        trigger_id = json.loads(cli.stdout)["trigger_id"]
        status = requests.get(f"{service.base}/v1/triggers/{trigger_id}", headers=service.headers(), timeout=5)
        assert status.status_code == 200, status.text
        assert [d["status"] for d in status.json()["data"]["deliveries"]] == ["delivered"]
    finally:
        service.kill()


def test_emit_without_a_standalone_or_broker_fails_in_one_line(tmp_path):
    """Nothing to hand the trigger to: a clear line and a non-zero exit, never a success."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOO_WEBHOOKS_")}
    env["DOO_WEBHOOKS_DATA_DIR"] = str(tmp_path / "never-started")
    (tmp_path / "order.json").write_text(json.dumps(ORDER))
    cli = subprocess.run([sys.executable, "-m", "doo_webhooks.cli", "emit", "order_created", "--organization-id", "1",
                          str(tmp_path / "order.json")], env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and cli.stdout == ""
    assert cli.stderr.count("\n") == 1 and "doo-webhooks standalone" in cli.stderr, cli.stderr
    assert not (tmp_path / "never-started").exists()  # nothing was created on the way

    env["DOO_WEBHOOKS_BROKER_URL"] = "redis://127.0.0.1:1/0"  # a port nothing listens on
    cli = subprocess.run([sys.executable, "-m", "doo_webhooks.cli", "emit", "order_created", "--organization-id", "1",
                          str(tmp_path / "order.json")], env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and cli.stdout == ""
    assert cli.stderr.count("\n") == 1 and "unavailable" in cli.stderr, cli.stderr
