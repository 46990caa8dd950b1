"""The import direction of setup.cfg's [importlinter] contracts: entry points -> faces ->
domain -> storage -> ground. import-linter checks it here, so a wrong-way import fails the suite.
It runs in a process of its own: in this one it would reconfigure logging for the tests after it."""

import pathlib
import subprocess
import sys

from tests.support import isolation

ROOT = pathlib.Path(__file__).resolve().parents[2]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_imports_run_one_way():
    done = isolation.run([sys.executable, "-c", LINT, "--config", str(ROOT / "setup.cfg")], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert "0 broken" in done.stdout
