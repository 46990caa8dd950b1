"""Not collected by the suite: tests/e2e/test_isolation.py runs this file in a pytest of its own
and SIGKILLs that pytest while the processes below run.

It starts what the suite starts (a doo-webhooks process, and a shell with a background job
of its own, as the README walkthrough test does), writes their pids and its Redis databases to
$VICTIM_INFO, and waits to be killed.
"""

import json
import os
import sys
import threading

from tests.conftest import REDIS_URL
from tests.support import isolation
from tests.support.processes import Command
from tests.support.processes import environment


def test_start_processes_and_wait_to_be_killed(tmp_path):
    env = environment({"DOO_WEBHOOKS_DATA_DIR": str(tmp_path), "DOO_WEBHOOKS_LOG_FORMAT": "json"})
    standalone = Command([sys.executable, "-m", "doo_webhooks.cli", "standalone", "--port", "0"], env,
                         tmp_path / "standalone.log")
    standalone.wait_output("Stop with Ctrl-C")
    shell = Command(["bash", "-c", "sleep 600 & echo background $!; wait"], env, tmp_path / "shell.log")
    shell.wait_output("background ")
    background = int(shell.output().split("background ", 1)[1].split()[0])
    info = {"pids": [standalone.pid, shell.pid, background], "redis_url": REDIS_URL,
            "owner": isolation.OWNER, "pytest": os.getpid()}
    pathlib_info = os.environ["VICTIM_INFO"]
    with open(pathlib_info + ".tmp", "w") as handle:
        json.dump(info, handle)
    os.replace(pathlib_info + ".tmp", pathlib_info)
    threading.Event().wait(300)  # the test that runs this file kills this pytest meanwhile
