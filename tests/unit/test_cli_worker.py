"""`doo-webhooks worker` without Redis says what it needs in one line, instead of a traceback."""

import os

from click.testing import CliRunner

from doo_webhooks.cli import main


def test_a_worker_without_a_broker_says_what_it_needs(tmp_path):
    env = {k: None for k in os.environ if k.startswith("DOO_WEBHOOKS_")}
    env["DOO_WEBHOOKS_DATA_DIR"] = str(tmp_path)  # embedded defaults: no Redis, no PostgreSQL
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 1
    assert "needs Redis" in result.output and "doo-webhooks standalone" in result.output
    assert result.output.count("\n") == 1
