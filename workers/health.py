"""Liveness and readiness: is the process up, can it reach its database and its broker.

``/healthz`` answers as long as the process serves HTTP: restart the process when it fails.
``/readyz`` opens a new connection to the database and pings the broker, each with a short
timeout: take the process out of rotation when it fails (it cannot do its work), but do
not restart it (a restart does not bring PostgreSQL back).
"""

import concurrent.futures
import functools
import logging
import sqlite3

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

DATABASE_TIMEOUT = 2  # seconds; libpq's connect_timeout takes whole seconds, 2 at least
BROKER_TIMEOUT = 1

_checks = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="readyz")


@functools.lru_cache(maxsize=None)
def _probe_engine(url):
    """An engine for probes only: no pool, so every check is a real new connection."""
    connect_args = {}
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        # only connect_timeout: a startup "options" parameter would be refused by PgBouncer
        connect_args = {"connect_timeout": DATABASE_TIMEOUT}
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def check_database(url):
    """Raises when the ledger cannot be reached; SQLite: the file must exist and answer."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:":
            # mode=rw: a missing file is an error, not a new empty database
            with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=DATABASE_TIMEOUT) as conn:
                conn.execute("SELECT 1").fetchone()
            conn.close()
        return
    with _probe_engine(url).connect() as conn:
        conn.exec_driver_sql("SELECT 1").scalar_one()


@functools.lru_cache(maxsize=None)
def _redis(url):
    import redis
    return redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT)


def check_broker(url):
    """Raises when the broker cannot be reached. Standalone's broker is its own database
    (the inbox table), checked as the database is."""
    if url.startswith(("sqlite", "postgresql")):
        check_database(url)
        return
    if url.startswith(("redis://", "rediss://", "unix://")):
        _redis(url).ping()
        return
    import kombu
    with kombu.Connection(url, connect_timeout=BROKER_TIMEOUT) as conn:
        conn.connect()


def readiness(settings):
    """(ready, {check: "ok" | "failed: <error type>"}) for the database and the broker, checked at once."""
    futures = {
        "database": _checks.submit(check_database, settings.database_url),
        "broker": _checks.submit(check_broker, settings.broker_url),
    }
    checks = {}
    for name, future in futures.items():
        try:
            future.result(timeout=DATABASE_TIMEOUT + BROKER_TIMEOUT + 1)
            checks[name] = "ok"
        except concurrent.futures.TimeoutError:
            checks[name] = "failed: timeout"
            log.warning("readyz: %s check timed out", name)
        except Exception as exc:
            checks[name] = f"failed: {type(exc).__name__}"
            log.warning("readyz: %s unreachable: %s", name, str(exc).strip()[:300])
    return all(v == "ok" for v in checks.values()), checks
