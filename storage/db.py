"""Engines and the one clock. Connections come from here; SQL lives in the other storage modules."""

import datetime
import functools
import pathlib

import sqlalchemy as sa
from sqlalchemy import event


def utcnow():
    """Naive UTC with microseconds: how every timestamp is stored."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


@functools.lru_cache(maxsize=None)
def engine_for(url, pre_ping=True):
    """One engine (and so one pool) per database URL per process.

    ``pre_ping`` tests each pooled connection before use (a round trip per transaction) so an
    API request after a PostgreSQL restart gets a fresh connection instead of an error. The
    delivery engine turns it off: it retries its transactions on connection errors anyway.
    """
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so that
        # "BEGIN IMMEDIATE" makes a claim the single writer (SQLite has no SKIP LOCKED).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return sa.create_engine(url, pool_pre_ping=pre_ping, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record):
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
