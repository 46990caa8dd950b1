"""What every storage module shares: statements that work on both dialects, the batch-as-arrays
form of PostgreSQL and the cache of built statements. Callers pass a connection inside a transaction.

Two dialects are served: PostgreSQL (production; claims use ``FOR UPDATE SKIP LOCKED`` so
many workers and schedulers take disjoint rows) and SQLite (embedded mode; a single
writer, made explicit by ``BEGIN IMMEDIATE`` in storage.db).
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite


def insert(conn, table):
    """An INSERT that knows ON CONFLICT on both dialects."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def skip_locked(conn, select):
    """``select`` taking row locks and skipping rows another transaction holds (PostgreSQL);
    SQLite's single writer needs neither."""
    if conn.dialect.name == "postgresql":
        return select.with_for_update(skip_locked=True)
    return select


def unnest(prefix, kinds):
    """``unnest(CAST(:a AS type[]), ...) AS v(a, ...)``: a batch of rows as one table on
    PostgreSQL, in a statement whose text does not grow with the batch. The arrays are
    parameters (``arrays``), so the statement can be built once (``built``)."""
    return sa.func.unnest(*(
        sa.cast(sa.bindparam(f"{prefix}_{name}", type_=postgresql.ARRAY(kind)), postgresql.ARRAY(kind))
        for name, kind in kinds.items()
    )).table_valued(*(sa.column(name, kind) for name, kind in kinds.items()), name="v").render_derived()


def arrays(prefix, names, rows):
    """The parameters of ``unnest(prefix, ...)``: one list per column."""
    return {f"{prefix}_{name}": [row[name] for row in rows] for name in names}


_statements = {}


def built(key, build):
    """The statement ``build()`` makes, built once per ``key``.

    Building a statement and computing its cache key cost SQLAlchemy about a millisecond each
    time, more than running it: the hot statements (claims, records, fan-out) are built once
    with bind parameters and executed with values.
    """
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = build()
    return stmt


def bulk_insert(conn, table, rows):
    """(statement, parameters) inserting many rows (dicts with the same keys) at a Python cost
    that hardly grows per row.

    On PostgreSQL: ``INSERT ... SELECT * FROM unnest(:col1, :col2, ...)``, one array per column,
    so the statement text is the same whatever the batch size (compiled once, cached) and
    psycopg2 adapts each array in C. On SQLite (in-process, one writer): an executemany.
    """
    if conn.dialect.name != "postgresql":
        return insert(conn, table), rows
    names = tuple(rows[0])

    def build():
        v = unnest(table.name, {name: table.c[name].type for name in names})
        return insert(conn, table).from_select(names, sa.select(*(v.c[name] for name in names)))
    return built(("insert", table.name, names), build), arrays(table.name, names, rows)
