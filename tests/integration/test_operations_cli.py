"""The operator's side, on SQLite and PostgreSQL: migration 0002, and the CLI's deliveries,
dead-letters, init and purge commands on a real ledger."""

import datetime
import json
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from doo_webhooks.cli import main
from storage import delivery_log
from storage import groups
from storage import ledger
from storage import tenancy
from storage.db import engine_for
from storage.db import utcnow
from storage.migrate import upgrade
from storage.tables import attempts
from storage.tables import deliveries
from storage.tables import metadata
from storage.tables import triggers
from tests.conftest import PG_SERVER
from tests.conftest import TEST_KEY
from workers.fanout import fan_out
from workers.producer import StreamPublisher
from workers.producer import prepare

# --- migration 0002 ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path):
    """An empty database of its own: migrations start from nothing."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"doo_webhooks_migrate_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    yield url
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_0002_keeps_existing_deliveries_and_matches_the_tables(fresh_url):
    from storage.migrate import alembic_config
    from alembic import command
    upgrade(fresh_url, "0001")
    engine = engine_for(fresh_url)
    now = utcnow()
    with engine.begin() as conn:  # a ledger written before 0002 (no attempt_base, no source)
        org = tenancy.create_organization(conn, "Org", now)
        team = tenancy.create_team(conn, org, "Team", now)
        conn.execute(sa.text(
            "INSERT INTO webhook_groups (id, organization_id, team_id, name, created_at, updated_at) "
            "VALUES ('g', :org, :team, 'g', :now, :now)"), {"org": org, "team": team, "now": now})
        conn.execute(sa.text(
            "INSERT INTO hooks (id, group_id, position, type, type_key, method, endpoint) "
            "VALUES (1, 'g', 0, 'order_created', 'order_created', 'POST', 'https://crm.example/a')"))
        conn.execute(sa.text(
            "INSERT INTO triggers (id, trigger_id, type, organization_id, entity_kind, entity_id, entity, "
            "occurred_at, received_at, delivery_count) VALUES (1, 't', 'order_created', :org, 'order', '1', '{}', "
            ":now, :now, 1)"), {"org": org, "now": now})
        conn.execute(sa.text(
            "INSERT INTO deliveries (id, trigger_pk, hook_id, group_id, organization_id, type, endpoint, "
            "entity_kind, entity_id, ordering_key, sequence, status, attempts, next_attempt_at, created_at, "
            "updated_at) VALUES ('d', 1, 1, 'g', :org, 'order_created', 'https://crm.example/a', 'order', '1', "
            "'k', 1, 'dead', 10, :now, :now, :now)"), {"org": org, "now": now})

    upgrade(fresh_url)
    with engine.connect() as conn:
        row = delivery_log.delivery(conn, "d")
        assert (row.attempts, row.attempt_base, row.source) == (10, 0, "trigger")
        # what the migrations build is what storage.tables describes
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []

    command.downgrade(alembic_config(fresh_url), "0001")
    with engine.connect() as conn:
        assert "attempt_base" not in {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
        assert conn.execute(sa.text("SELECT status FROM deliveries WHERE id = 'd'")).scalar() == "dead"


# --- the CLI -------------------------------------------------------------------------------

class Cli:
    def __init__(self, url, tmp_path, monkeypatch):
        for key, value in {"DATABASE_URL": url, "DATA_DIR": str(tmp_path), "SECRET_KEYS": TEST_KEY,
                           "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"}.items():
            monkeypatch.setenv(f"DOO_WEBHOOKS_{key}", value)
        self.engine = engine_for(url)
        self.runner = CliRunner()
        # the nudges the CLI sends to the workers, by broker URL (none reaches a real broker:
        # Redis channels are shared by every database of the server, so every test run's workers)
        self.nudges = []
        monkeypatch.setattr(StreamPublisher, "nudge", lambda publisher: self.nudges.append(publisher.broker_url))
        now = utcnow()
        with self.engine.begin() as conn:
            self.organization_id = tenancy.create_organization(conn, "Org", now)
            self.team_id = tenancy.create_team(conn, self.organization_id, "Team", now)
            self.group_id = str(uuid.uuid4())
            groups.insert_group(conn, {
                "id": self.group_id, "organization_id": self.organization_id, "team_id": self.team_id,
                "name": "CRM", "created_at": now, "updated_at": now,
            }, [{"type": t, "type_key": t, "method": "POST", "endpoint": "https://crm.example/a"}
                for t in ("order_created", "order_updated")])

    def __call__(self, *args, ok=True):
        result = self.runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args):
        return json.loads(self(*args).stdout)

    def emit(self, trigger_type, order_id, when, event_id=7):
        record = prepare(trigger_type, {"order_details": {"id": order_id, "status": "active"},
                                        "event": {"id": event_id}},
                         organization_id=self.organization_id, occurred_at=when.replace(tzinfo=datetime.timezone.utc))
        return fan_out(self.engine, record, when)

    def set(self, ids, **values):
        with self.engine.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.id.in_(ids)).values(**values))

    def rows(self, table):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(table)).all()


@pytest.fixture
def cli(database_url, tmp_path, monkeypatch):
    return Cli(database_url, tmp_path, monkeypatch)


def test_deliveries_list_and_show(cli):
    now = utcnow()
    (first,) = cli.emit("order_created", 1, now - datetime.timedelta(minutes=2))
    (second,) = cli.emit("order_updated", 1, now - datetime.timedelta(minutes=1))
    cli.set([first], status="dead", attempts=1, payload='{"a":1}')
    with cli.engine.begin() as conn:
        conn.execute(sa.insert(attempts).values(
            delivery_id=first, number=1, started_at=now, duration_ms=12, status_code=503, error_kind="http_status",
            response_excerpt='{"message":"down","description":"maintenance"}',
            request_headers='{"webhook-id":"%s","Authorization":"[redacted]"}' % first))

    listed = cli.json("deliveries", "list", "--group-id", cli.group_id)
    assert listed["total_items"] == 2 and [d["id"] for d in listed["deliveries"]] == [second, first]
    assert [d["id"] for d in cli.json("deliveries", "list", "--status", "dead")["deliveries"]] == [first]
    assert [d["id"] for d in cli.json("deliveries", "list", "--type", "on_order_updated")["deliveries"]] == [second]

    shown = cli.json("deliveries", "show", first)
    assert shown["payload"] == {"a": 1}
    assert shown["request_headers"] == {"webhook-id": first, "Authorization": "[redacted]"}
    assert shown["attempt_log"][0]["response"] == {"message": "down", "description": "maintenance"}
    assert "no delivery" in cli("deliveries", "show", "nope", ok=False).output


def test_dead_letters_list_and_replay_leave_the_sending_to_the_workers(cli):
    now = utcnow()
    ids = cli.emit("order_created", 1, now - datetime.timedelta(minutes=3)) + \
        cli.emit("order_updated", 1, now - datetime.timedelta(minutes=2)) + \
        cli.emit("order_created", 2, now - datetime.timedelta(minutes=1))
    cli.set(ids, status="dead", attempts=10)
    listed = cli.json("dead-letters", "list", "--organization-id", str(cli.organization_id))
    assert [d["id"] for d in listed["deliveries"]] == list(reversed(ids))

    # "remaining" counts what still matches the same filters
    assert cli.json("dead-letters", "replay", "--type", "order_created", "--limit", "1") == \
        {"queued": 1, "remaining": 1}
    assert cli.json("dead-letters", "replay") == {"queued": 2, "remaining": 0}
    with cli.engine.begin() as conn:
        rows = {row.id: row for row in conn.execute(sa.select(deliveries))}
        assert all((rows[i].status, rows[i].attempt_base) == ("pending", 10) for i in ids)
        # the workers' send loops claim them, one at a time per entity and endpoint, in order
        assert {r.id for r in ledger.claim_due(conn, utcnow(), 60, 100, "pending")} == {ids[0], ids[2]}

    cli.set([ids[1]], status="delivered")
    assert cli.json("deliveries", "redeliver", ids[1])["status"] == "pending"
    assert "only a dead, delivered or skipped" in cli("deliveries", "redeliver", ids[2], ok=False).output


def test_restarts_nudge_the_workers_through_the_broker_in_services_mode(cli, monkeypatch, tmp_path):
    now = utcnow()
    ids = cli.emit("order_created", 1, now - datetime.timedelta(minutes=2)) + \
        cli.emit("order_created", 2, now - datetime.timedelta(minutes=1))
    cli.set(ids, status="dead", attempts=10)
    broker = "redis://127.0.0.1:6379/9"
    monkeypatch.setenv("DOO_WEBHOOKS_BROKER_URL", broker)

    assert cli.json("dead-letters", "replay", "--type", "order_updated")["queued"] == 0
    assert cli.nudges == []  # nothing restarted: nothing to wake anyone for
    assert cli.json("dead-letters", "replay", "--limit", "1")["queued"] == 1
    assert cli.nudges == [broker]
    cli("deliveries", "redeliver", ids[0], ok=False)  # pending now: refused
    assert cli.nudges == [broker]
    cli.json("deliveries", "redeliver", ids[1])
    assert cli.nudges == [broker, broker]

    # a standalone service polls its ledger: the CLI has no way to it, and does not try
    cli.set([ids[1]], status="dead")
    monkeypatch.setenv("DOO_WEBHOOKS_BROKER_URL", f"sqlite:///{tmp_path / 'standalone.sqlite3'}")
    assert cli.json("deliveries", "redeliver", ids[1])["status"] == "pending"
    assert cli.nudges == [broker, broker]


def test_init_orders_paces_what_it_queues(cli):
    now = utcnow()
    for order_id in range(1, 6):
        cli.emit("order_created", order_id, now - datetime.timedelta(minutes=10 - order_id))
    cli.set([row.id for row in cli.rows(deliveries)], status="delivered")
    answer = cli.json("init", "orders", "--event-id", "7", "--webhook-type", "on_order_updated",
                      "--max-rate-per-min", "20")
    assert (answer["items_processed"], answer["deliveries_queued"]) == (5, 5)
    due = sorted(row.next_attempt_at for row in cli.rows(deliveries) if row.source == "init")
    assert [(b - a).total_seconds() for a, b in zip(due, due[1:])] == [3.0] * 4
    assert "does not carry" in cli("init", "orders", "--event-id", "7", "--webhook-type", "event_created",
                                   ok=False).output
    assert cli("init", "events", ok=False).exit_code == 2  # --organization-id is required for events


def test_purge_deletes_old_delivered_rows_and_orphaned_triggers_only(cli):
    now = utcnow()
    old, recent = now - datetime.timedelta(days=40), now - datetime.timedelta(days=1)
    (old_delivered,) = cli.emit("order_created", 1, old)
    (old_update,) = cli.emit("order_updated", 1, old + datetime.timedelta(minutes=1))
    (old_dead,) = cli.emit("order_created", 2, old)
    (recent_delivered,) = cli.emit("order_created", 3, recent)
    cli.set([old_delivered, old_update], status="delivered", delivered_at=old)
    cli.set([old_dead], status="dead")
    cli.set([recent_delivered], status="delivered", delivered_at=recent)
    with cli.engine.begin() as conn:
        conn.execute(sa.insert(attempts), [
            {"delivery_id": i, "number": 1, "started_at": old, "duration_ms": 1, "status_code": 200}
            for i in (old_delivered, old_dead, recent_delivered)])

    assert "not an age" in cli("purge", "--older-than", "thirty days", ok=False).output
    result = cli.json("purge", "--older-than", "30d", "--batch-size", "1")
    assert (result["deliveries_deleted"], result["triggers_deleted"]) == (2, 1)
    assert {row.id for row in cli.rows(deliveries)} == {old_dead, recent_delivered}
    assert {row.delivery_id for row in cli.rows(attempts)} == {old_dead, recent_delivered}
    # order 1's older trigger went; its latest is kept: initialization re-sends it
    assert sorted((row.entity_id, row.type) for row in cli.rows(triggers)) == [
        ("1", "order_updated"), ("2", "order_created"), ("3", "order_created")]
    assert cli.json("purge", "--older-than", "30d", "--drop-snapshots")["triggers_deleted"] == 1
    assert sorted(row.entity_id for row in cli.rows(triggers)) == ["2", "3"]


# --- database URLs -----------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_db_upgrade_takes_the_urls_platforms_hand_out(pg_url, scheme, monkeypatch):
    """postgresql:// and postgres:// (what compose files and platforms give) migrate with psycopg2."""
    url = sa.engine.make_url(pg_url).set(drivername=scheme).render_as_string(hide_password=False)
    monkeypatch.setenv("DOO_WEBHOOKS_DATABASE_URL", url)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database at revision" in result.output


def test_a_database_driver_that_is_not_installed_is_one_line_and_no_traceback(monkeypatch):
    monkeypatch.setenv("DOO_WEBHOOKS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "driver for 'postgresql+psycopg' is not installed" in errors[0]
    assert "Traceback" not in result.output



# --- help and output ---------------------------------------------------------------------

def test_init_help_says_what_each_subcommand_does():
    result = CliRunner().invoke(main, ["init", "--help"])
    assert result.exit_code == 0
    for kind in ("events", "orders", "attendees"):
        line = next(line for line in result.output.splitlines() if line.strip().startswith(kind))
        assert f"every matching {kind[:-1]}" in line, result.output


def test_redeliver_help_names_every_status_it_takes():
    result = CliRunner().invoke(main, ["deliveries", "redeliver", "--help"])
    assert "dead, delivered or skipped" in " ".join(result.output.split())


def test_db_upgrade_prints_each_alembic_line_once(tmp_path):
    import sys

    from tests.support.isolation import run
    from tests.support.processes import environment
    env = environment({"DOO_WEBHOOKS_DATA_DIR": str(tmp_path), "DOO_WEBHOOKS_LOG_FORMAT": "text"})
    done = run([sys.executable, "-m", "doo_webhooks.cli", "db", "upgrade"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line.split(" INFO ", 1)[-1] for line in done.stderr.splitlines() if "alembic" in line]
    assert "alembic.runtime.migration: Context impl SQLiteImpl." in lines
    assert len(lines) == len(set(lines)), done.stderr
    assert "database at revision" in done.stdout
