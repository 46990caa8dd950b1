"""The import direction of setup.cfg's [importlinter] contracts: entry points -> faces ->
domain -> storage -> ground. import-linter checks it here, so a wrong-way import fails the suite."""

import pathlib

from importlinter import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_imports_run_one_way(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(config_filename=str(ROOT / "setup.cfg")) == cli.EXIT_STATUS_SUCCESS
