"""Fixtures shared by every tier: settings, a migrated database on SQLite and on PostgreSQL.

PostgreSQL is not optional: without it these fixtures fail (they never skip), because
.ci/run starts it and a green run must mean the real database was used.
"""

import datetime
import os
import platform
import uuid

import pytest
import sqlalchemy as sa

from ground import settings as settings_module
from storage.migrate import upgrade
from storage.tables import metadata
from tests.support import fault_report
from tests.support import isolation

PG_SERVER = os.environ.get("DOO_WEBHOOKS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
# a database of this run's own (see tests/support/isolation.py); the variable still chooses one
REDIS_URL = isolation.redis_url("DOO_WEBHOOKS_TEST_REDIS")
TEST_KEY = "LQwtSIAHezKh40ehoYvtu0Me8cfhWcc7LuQq-QFGc2Q="  # a valid Fernet key, for tests only


def make_settings(tmp_path, database_url, **env):
    base = {
        "DOO_WEBHOOKS_DATA_DIR": str(tmp_path),
        "DOO_WEBHOOKS_DATABASE_URL": database_url,
        "DOO_WEBHOOKS_SECRET_KEYS": TEST_KEY,
        "DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DOO_WEBHOOKS_REDIS_URL": REDIS_URL,
        "DOO_WEBHOOKS_BROKER_URL": REDIS_URL,
        "DOO_WEBHOOKS_LOG_FORMAT": "text",
    }
    base.update({f"DOO_WEBHOOKS_{k.upper()}": str(v) for k, v in env.items()})
    return settings_module.from_env(base)


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"doo_webhooks_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    from storage.db import engine_for
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ledger.sqlite3'}"
    upgrade(url)
    return url


def _empty(url):
    from storage.db import engine_for
    with engine_for(url).begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """Each test using this runs on both databases, starting from empty tables."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    _empty(url)
    return url


@pytest.fixture
def pg_database_url(pg_url):
    _empty(pg_url)
    return pg_url


@pytest.fixture
def settings(tmp_path, database_url):
    return make_settings(tmp_path, database_url)


@pytest.fixture
def server(httpserver_ipv4):
    """A pytest-httpserver on 127.0.0.1 (the network every test's settings allow), emptied before each test.

    One server serves the whole run (pytest-httpserver's session fixture), because stopping one
    takes werkzeug half a second; a test only adds expectations and reads ``server.log``.
    """
    return httpserver_ipv4


# --- the fault report (tests/faults/), whole under pytest-xdist too -----------------------

def pytest_sessionfinish(session):
    """A worker of pytest-xdist hands its fault rows to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fault_cells"] = list(fault_report.CELLS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller of pytest-xdist collects each worker's fault rows."""
    fault_report.CELLS.extend(tuple(cells) for cells in getattr(node, "workeroutput", {}).get("fault_cells", ()))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the fault report and write it to its file (only when fault cases ran)."""
    cells = fault_report.CELLS
    if not cells or hasattr(config, "workeroutput"):
        return
    table = fault_report.markdown(cells)
    terminalreporter.write_sep("=", f"fault report ({len(cells)} case(s); lost must be 0)")
    terminalreporter.write_line(table)
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    path = os.environ.get("DOO_WEBHOOKS_FAULT_REPORT") or os.path.join(str(config.rootpath), ".fault-report.md")
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"# Fault report\n\n{when}, {platform.node()}, {os.cpu_count()} CPU(s), pytest exit "
                  f"status {int(exitstatus)}\n\n{table}\n")
    terminalreporter.write_line(f"fault report written to {path}")
