"""README.rst's curl walkthrough, run as written against a fresh `doo-webhooks standalone`.

Only what a second machine would make collide is changed: standalone and the receiver listen on
ports of this run instead of 8080 and 9000, and the script waits for the delivery it then shows
instead of README's ``sleep 2`` (a reader's pause, not something a loaded test machine keeps).
"""

import os
import pathlib
import re
import sys

from tests.support import readme
from tests.support.observability import free_port
from tests.support.processes import Command
from tests.support.processes import environment

BIN = pathlib.Path(sys.executable).parent


def test_the_walkthrough_runs_as_written(tmp_path):
    script = readme.walkthrough()
    assert script.count("127.0.0.1:8080") == 1
    assert script.count("127.0.0.1:9000") == 1 and script.count('("127.0.0.1", 9000)') == 1
    assert script.count("sleep 2\n") == 1
    env = environment({"DOO_WEBHOOKS_DATA_DIR": str(tmp_path / "data"), "DOO_WEBHOOKS_LOG_FORMAT": "json"})
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])  # doo-webhooks as a user has it
    service = Command(["doo-webhooks", "standalone", "--port", "0"],
                      dict(env, DOO_WEBHOOKS_ALLOWED_NETWORKS="127.0.0.0/8"), tmp_path / "standalone.log")
    try:
        service.wait_output("Stop with Ctrl-C", timeout=60)
        base = re.search(r"running at (http://127\.0\.0\.1:\d+)", service.output()).group(1)
        port = free_port()
        script = (script.replace("http://127.0.0.1:8080", base)
                  .replace("127.0.0.1:9000", f"127.0.0.1:{port}").replace('("127.0.0.1", 9000)', f'("127.0.0.1", {port})')
                  .replace("sleep 2\n", "until curl -s $API/triggers/$TRIGGER -H \"x-api-key: $API_KEY\" "
                           "-H \"Authorization: Bearer $TOKEN\" | grep -q '\"status\":\"delivered\"'; do sleep 0.1; done\n"))
        (tmp_path / "walkthrough.sh").write_text("set -euo pipefail\n" + script)
        shell = Command(["timeout", "120", "bash", str(tmp_path / "walkthrough.sh")], env, tmp_path / "walkthrough.log")
        code = shell.proc.wait(timeout=150)
        shell.stop()
        output = shell.output()
        assert code == 0, output
    finally:
        service.stop()
    # standalone's demo tenant holds organization, team and organizer 1: the README's are the next
    assert "organization 2, team 2, organizer 2" in output
    assert re.search(r'receiver got delivery [0-9a-f-]{36} \{"event":\{"id":42\},"order_details":\{"id":1001', output)
    assert '"organization_id":2' in output and '"status":"delivered"' in output
    assert output.rstrip().endswith("204")
