"""The dashboard's queries at 1,000,000 deliveries: EXPLAIN (ANALYZE, BUFFERS) and timings.

    python bench/dashboard_explain.py [--rows 1000000] [--postgres URL] [--out docs/dashboard-explain.txt]

Creates a fresh PostgreSQL database on the given server (dropped at the end), migrates it to
0006, seeds it with INSERT ... SELECT generate_series (two organizations, the first with 90 %
of the rows, 30 days of deliveries, one attempt per settled delivery), times migration 0007
(the dashboard's indexes built over the seeded ledger), then runs every query a dashboard page
runs: the very statements storage/dashboard.py and storage/delivery_log.py send (caught as the
driver receives them), each with EXPLAIN (ANALYZE, BUFFERS), and the page's calls timed warm
(median of 7). Prints everything; --out also writes it to a file.
"""

import argparse
import contextlib
import datetime
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sqlalchemy as sa  # noqa: E402

from storage import dashboard as store  # noqa: E402
from storage import delivery_log  # noqa: E402
from storage import hook_stats  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

NOW = datetime.datetime(2026, 12, 10, 12, 0, 0)
DAYS = 30
GROUPS = (10, 2)  # groups of the first and of the second organization, two hooks each


def seed(engine, rows):
    """The ledger: organizations, groups, hooks, triggers and ``rows`` deliveries with attempts."""
    big = int(rows * 0.9)
    groups_a, groups_b = GROUPS
    params = {"now": NOW, "rows": rows, "big": big, "span": DAYS * 86400.0, "ga": groups_a, "gb": groups_b,
              "triggers": rows // 2}
    with engine.begin() as conn:
        run = conn.exec_driver_sql
        run("INSERT INTO organizations (id, name, created_at) VALUES (1, 'Festival Org', %(now)s), "
            "(2, 'Other Org', %(now)s)", params)
        run("INSERT INTO teams (id, organization_id, name, is_all_events_team, created_at) VALUES "
            "(1, 1, 'Team', true, %(now)s), (2, 2, 'Team', true, %(now)s)", params)
        run("INSERT INTO organizers (id, email, name, created_at) VALUES (1, 'a@example.org', 'A', %(now)s)", params)
        run("INSERT INTO memberships (organizer_id, team_id, role) VALUES (1, 1, 'team_admin')")
        run("INSERT INTO credentials (id, organizer_id, api_key_hash, client_id, client_secret_hash, created_at) "
            "VALUES (1, 1, repeat('a', 64), 'client', repeat('b', 64), %(now)s)", params)
        run("INSERT INTO webhook_groups (id, organization_id, team_id, name, created_at, updated_at) "
            "SELECT 'g' || g, CASE WHEN g <= %(ga)s THEN 1 ELSE 2 END, CASE WHEN g <= %(ga)s THEN 1 ELSE 2 END, "
            "'Group ' || g, %(now)s, %(now)s FROM generate_series(1, %(ga)s + %(gb)s) g", params)
        run("INSERT INTO hooks (id, group_id, position, type, type_key, method, endpoint, disabled_at, disabled_reason) "
            "SELECT h, 'g' || ((h - 1) / 2 + 1), (h - 1) %% 2, t, t, 'POST', 'https://crm.example/' || h, "
            "CASE WHEN h = 3 THEN %(now)s END, CASE WHEN h = 3 THEN 'the receiver answered 410 Gone' END "
            "FROM generate_series(1, 2 * (%(ga)s + %(gb)s)) h, "
            "LATERAL (SELECT CASE WHEN h %% 2 = 1 THEN 'order_created' ELSE 'order_updated' END AS t) x", params)
        run("INSERT INTO triggers (id, trigger_id, type, organization_id, entity_kind, entity_id, entity, occurred_at, "
            "received_at, delivery_count) SELECT i, 't' || i, 'order_created', CASE WHEN i <= %(triggers)s * 0.9 "
            "THEN 1 ELSE 2 END, 'order', (i %% 100000)::text, '{}', %(now)s, %(now)s, 2 "
            "FROM generate_series(1, %(triggers)s) i", params)
        # i = 1 is the newest; created_at spreads the rows evenly over DAYS days
        run("""
            INSERT INTO deliveries (id, trigger_pk, hook_id, group_id, organization_id, type, endpoint, entity_kind,
                entity_id, ordering_key, sequence, status, attempts, attempt_base, source, next_attempt_at,
                payload, last_status_code, last_error, created_at, updated_at, delivered_at)
            SELECT md5(i::text)::uuid::text, (i - 1) / 2 + 1, hook, 'g' || ((hook - 1) / 2 + 1), org,
                CASE WHEN hook %% 2 = 1 THEN 'order_created' ELSE 'order_updated' END,
                'https://crm.example/' || hook, 'order', (((i - 1) / 2 + 1) %% 100000)::text,
                'k' || hook || ':' || (((i - 1) / 2 + 1) %% 100000), i, status,
                CASE WHEN status = 'pending' THEN 0 WHEN status = 'dead' THEN 10 ELSE 1 END, 0,
                CASE WHEN i %% 1000 = 7 THEN 'init' ELSE 'trigger' END, created,
                '{"order_details": {"id": ' || i || '}}', CASE WHEN status = 'delivered' THEN 200
                WHEN status = 'pending' THEN NULL ELSE 503 END, CASE WHEN status IN ('dead', 'retrying')
                THEN 'http_status' END, created, created, CASE WHEN status = 'delivered' THEN created END
            FROM generate_series(1, %(rows)s) i,
            LATERAL (SELECT CASE WHEN i <= %(big)s THEN 1 ELSE 2 END AS org,
                            %(now)s - make_interval(secs => i * %(span)s / %(rows)s) AS created,
                            CASE WHEN i %% 100 < 90 THEN 'delivered' WHEN i %% 100 < 95 THEN 'dead'
                                 WHEN i %% 100 < 98 THEN 'retrying' ELSE 'pending' END AS status) x,
            LATERAL (SELECT CASE WHEN i <= %(big)s THEN 1 + (i %% (2 * %(ga)s))
                                 ELSE 2 * %(ga)s + 1 + (i %% (2 * %(gb)s)) END AS hook) y
        """, params)
        run("""
            INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, error_kind,
                response_excerpt, request_headers)
            SELECT id, 1, created_at + interval '1 second', 40 + (sequence %% 200), last_status_code, last_error,
                CASE WHEN last_status_code = 200 THEN '{"message": "ok"}' ELSE '{"message": "down"}' END,
                '{"webhook-id": "' || id || '", "authorization": "[redacted]"}'
            FROM deliveries WHERE status <> 'pending'
        """)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


@contextlib.contextmanager
def caught(engine):
    """Every statement the driver receives inside the block, with its parameters."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def measure(engine, out, title, call):
    """EXPLAIN (ANALYZE, BUFFERS) each statement of ``call(conn)``, then time the call warm."""
    with engine.begin() as conn:
        call(conn)  # warm: plans cached by SQLAlchemy, pages in shared buffers
    with caught(engine) as seen:
        with engine.begin() as conn:
            call(conn)
    timings = []
    for _ in range(7):
        with engine.begin() as conn:
            started = time.perf_counter()
            call(conn)
            timings.append((time.perf_counter() - started) * 1000)
    out(f"\n=== {title}: median {statistics.median(timings):.2f} ms, max {max(timings):.2f} ms (7 warm runs)")
    with engine.begin() as conn:  # one transaction, as the page's: its SET LOCAL holds for what follows
        for statement, parameters in seen:
            out("--- " + " ".join(statement.split()))
            if statement.lstrip().upper().startswith("SET "):
                conn.exec_driver_sql(statement)
                continue
            out(f"    parameters: {parameters}")
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars().all()
            out("\n".join("    " + line for line in plan))
    return statistics.median(timings)


def scenarios(engine, rows):
    """(title, call) for every query of every page, as the page makes it."""
    org = [1]
    day = datetime.timedelta(days=1)
    with engine.begin() as conn:
        middle = conn.exec_driver_sql(
            "SELECT created_at, id FROM deliveries WHERE organization_id = 1 ORDER BY created_at DESC, id DESC "
            "OFFSET %(half)s LIMIT 1", {"half": int(rows * 0.45)}).first()
        dead_id = conn.exec_driver_sql("SELECT id FROM deliveries WHERE status = 'dead' LIMIT 1").scalar()
        groups = [row.id for row in store.groups_of(conn, org, 500)[0]]
    page = 51
    return [
        ("session lookup (every page)", lambda c: store.live_session(c, "0" * 64, NOW)),
        ("groups page: groups and hooks", lambda c: store.groups_of(c, org, 500)),
        ("groups page: hook health over 24 h", lambda c: hook_stats.recent(c, groups, NOW - day)),
        ("groups page: waiting deliveries of disabled hooks", lambda c: store.open_counts(c, [3])),
        ("timeline: one group, 3 days", lambda c: store.timeline(c, "g1", NOW - 3 * day)),
        ("timeline: one group, 14 days", lambda c: store.timeline(c, "g1", NOW - 14 * day)),
        ("deliveries: first page, no filter", lambda c: store.delivery_page(c, org, page)),
        (f"deliveries: a page halfway down (keyset at row {int(rows * 0.45):,})",
         lambda c: store.delivery_page(c, org, page, older_than=(middle.created_at, middle.id))),
        ("deliveries: newer page from halfway down",
         lambda c: store.delivery_page(c, org, page, newer_than=(middle.created_at, middle.id))),
        ("deliveries: status = dead", lambda c: store.delivery_page(c, org, page, status="dead")),
        ("deliveries: status = pending (2 %)", lambda c: store.delivery_page(c, org, page, status="pending")),
        ("deliveries: type = order_updated", lambda c: store.delivery_page(c, org, page, hook_type="order_updated")),
        ("deliveries: one entity", lambda c: store.delivery_page(c, org, page, entity_id="4242")),
        ("deliveries: one group", lambda c: store.delivery_page(c, org, page, group_id="g3")),
        ("deliveries: a one-hour window 20 days ago",
         lambda c: store.delivery_page(c, org, page, since=NOW - 20 * day, until=NOW - 20 * day + day / 24)),
        ("deliveries: type + status + group (a sparse combination)",
         lambda c: store.delivery_page(c, org, page, hook_type="order_created", status="retrying", group_id="g5")),
        ("dead letters: first page", lambda c: store.delivery_page(c, org, page, status="dead", live_groups=True)),
        ("dead letters: one group", lambda c: store.delivery_page(c, org, page, status="dead", live_groups=True,
                                                                  group_id="g2")),
        ("dead letters: replay selection check", lambda c: store.visible_dead(c, org, [dead_id])),
        ("delivery page: the delivery", lambda c: delivery_log.delivery_view(c, dead_id)),
        ("delivery page: its attempts", lambda c: delivery_log.attempts_of(c, dead_id)),
        ("delivery page: its request headers", lambda c: delivery_log.latest_request_headers(c, dead_id)),
        ("initialization page: progress", lambda c: store.init_progress(c, org)),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test",
                        help="a database on the server where this creates (and drops) its own")
    parser.add_argument("--out", help="also write the report here (e.g. docs/dashboard-explain.txt)")
    args = parser.parse_args(argv)
    lines = []

    def out(text):
        print(text, flush=True)
        lines.append(text)

    name = f"doo_webhooks_dashboard_explain_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        version = conn.exec_driver_sql("SHOW server_version").scalar()
    url = sa.engine.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    try:
        out(f"# bench/dashboard_explain.py --rows {args.rows}: PostgreSQL {version}, "
            f"{os.cpu_count()} CPUs, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        upgrade(url, "0006")
        started = time.perf_counter()
        seed(engine, args.rows)
        with engine.connect() as conn:
            counts = conn.exec_driver_sql("SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts), "
                                          "(SELECT count(*) FROM triggers)").first()
        out(f"# seeded {counts[0]:,} deliveries, {counts[1]:,} attempts, {counts[2]:,} triggers "
            f"in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        upgrade(url)
        out(f"# migrations 0007-0010 (dashboard_sessions, its indexes, the hook_stats backfill, the lean indexes) over the seeded ledger: "
            f"{time.perf_counter() - started:.1f} s")
        with engine.begin() as conn:  # a thousand live sessions
            conn.exec_driver_sql(
                "INSERT INTO dashboard_sessions (id_hash, credential_id, csrf_token, created_at, expires_at) "
                "SELECT md5(i::text) || md5((i + 1)::text), 1, 'csrf', %(now)s, %(now)s + interval '8 hours' "
                "FROM generate_series(1, 1000) i", {"now": NOW})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        summary = []
        for title, call in scenarios(engine, args.rows):
            summary.append((title, measure(engine, out, title, call)))
        out("\n=== summary (median of 7 warm runs, ms)")
        for title, ms in summary:
            out(f"{ms:9.2f}  {title}")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
