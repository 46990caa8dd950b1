"""The ``doo-webhooks`` command: run the processes, migrate, bootstrap tenants, rotate keys."""

import json
import sys

import click

from doo_webhooks import __version__
from ground import settings as settings_module
from doo_webhooks import cli_operations
from doo_webhooks.cli_common import _context
from doo_webhooks.cli_common import _print
from doo_webhooks.cli_common import _settings
from doo_webhooks.cli_common import refusals


@click.group()
@click.version_option(__version__, prog_name="doo-webhooks")
def main():
    """doo-webhooks: webhook delivery for the doo event-ticketing platform."""
    from ground.logs import configure
    configure(_settings())


# --- database --------------------------------------------------------------------------

@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision):
    """Create or migrate the tables (Alembic)."""
    from storage.migrate import current, upgrade
    settings = _settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {current(settings.database_url)}")


# --- bootstrap -------------------------------------------------------------------------

@main.group()
def admin():
    """Create organizations, teams, organizers and their credentials."""


@admin.command("create-organization")
@click.option("--name", required=True)
@refusals
def create_organization(name):
    """Create an organization; prints its id."""
    from services import access
    from services.tenancy import OPERATOR
    _print({"organization_id": access.create_organization(_context(), OPERATOR, name)})


@admin.command("create-team")
@click.option("--organization-id", type=int, required=True)
@click.option("--name", default=None)
@refusals
def create_team(organization_id, name):
    """Create a team in an organization; prints its id."""
    from services import access
    from services.tenancy import OPERATOR
    _print({"team_id": access.create_team(_context(), OPERATOR, organization_id, name)})


@admin.command("create-organizer")
@click.option("--email", required=True)
@click.option("--name", default=None)
@click.option("--team-id", type=int, required=True, multiple=True, help="Repeat for several teams.")
@click.option("--role", type=click.Choice(("team_admin", "team_member", "team_viewer")), default="team_admin",
              show_default=True)
@refusals
def create_organizer(email, name, team_id, role):
    """Create an organizer (a user) with a role in one or more teams."""
    from services import access
    from services.tenancy import OPERATOR
    organizer_id = access.create_organizer(_context(), OPERATOR, email, name, team_id, role)
    _print({"organizer_id": organizer_id, "teams": list(team_id), "role": role})


@admin.command("create-credentials")
@click.option("--organizer-id", type=int, required=True)
@refusals
def create_credentials(organizer_id):
    """Print a new api_key, client_id and client_secret for an organizer (shown once)."""
    from services import access
    from services.tenancy import OPERATOR
    _print(access.create_credentials(_context(), OPERATOR, organizer_id))


@admin.command("create-platform-key")
@click.option("--name", default="platform", show_default=True)
@refusals
def create_platform_key(name):
    """Print a new key for POST /v1/triggers (shown once)."""
    from services import access
    from services.tenancy import OPERATOR
    _print({"platform_key": access.create_platform_key(_context(), OPERATOR, name)})


# --- secrets ---------------------------------------------------------------------------

@main.group()
def secrets():
    """Encryption of receiver secrets at rest."""


@secrets.command("rotate")
@refusals
def secrets_rotate():
    """Re-encrypt every stored secret under the newest key of DOO_WEBHOOKS_SECRET_KEYS."""
    from services import access
    from services.tenancy import OPERATOR
    rotated = access.rotate_secrets(_context(), OPERATOR)
    click.echo(f"re-encrypted the secrets of {rotated} webhook group(s) under the newest key")


# --- processes -------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def api(host, port):
    """Serve the REST API alone (development server; use gunicorn in production)."""
    from app import create_app
    from storage.migrate import upgrade
    settings = _settings()
    upgrade(settings.database_url)
    create_app(settings).run(host=host, port=port)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the SQLite file and keys live (default DOO_WEBHOOKS_DATA_DIR).")
def standalone(host, port, data_dir):
    """API, worker and scheduler in one process on SQLite: no Redis, no PostgreSQL."""
    import os
    import pathlib

    from doo_webhooks.standalone import run
    env = dict(os.environ)
    if data_dir:
        env["DOO_WEBHOOKS_DATA_DIR"] = data_dir
        if not env.get("DOO_WEBHOOKS_DATABASE_URL"):
            env["DOO_WEBHOOKS_DATABASE_URL"] = f"sqlite:///{pathlib.Path(data_dir).expanduser().resolve()}/doo-webhooks.sqlite3"
    try:
        settings = settings_module.from_env(env)
    except settings_module.SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    run(settings, host, port)


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Keep the demo's SQLite file here (default: a temporary folder, removed afterwards).")
@click.option("--timeout", default=60, show_default=True, type=int, help="Seconds to wait for the deliveries.")
@click.option("--verbose", is_flag=True, help="Show the service's log lines too.")
def demo(data_dir, timeout, verbose):
    """See the whole flow in a minute: a local receiver, a webhook group, triggers, deliveries."""
    import logging

    from doo_webhooks import demo as demo_module
    if not verbose:  # the live view tells what happens; log lines would bury it
        for name in ("", "werkzeug"):
            logging.getLogger(name).setLevel(logging.WARNING)
    raise SystemExit(demo_module.run(_settings(), data_dir, timeout=timeout))


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", default=20, show_default=True, type=int, help="Worker threads.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency, celery_args):
    """A worker: fans triggers out from the intake streams and sends due deliveries (asyncio),
    inside a Celery worker whose threads serve the Celery queues. Extra args go to Celery."""
    from workers import metrics
    from ground.logs import effective_format
    from workers.celery_app import app
    from workers.queues import DELIVERIES_QUEUE, TRIGGERS_QUEUE
    settings = _settings()
    if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise click.ClickException(
            "a worker needs Redis (DOO_WEBHOOKS_BROKER_URL=redis://...) and PostgreSQL "
            "(DOO_WEBHOOKS_DATABASE_URL); to run everything in one process on SQLite, use "
            "`doo-webhooks standalone`")
    metrics.serve(settings, "worker")
    # Celery's banner is not a log line: keep it off a JSON log stream
    quiet = ["--quiet"] if effective_format(settings) == "json" else []
    app.worker_main([*quiet, "worker", "-Q", f"{TRIGGERS_QUEUE},{DELIVERIES_QUEUE}", "--pool", "threads",
                     "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
                     "--loglevel", settings.log_level, *celery_args])


@main.command()
def scheduler():
    """The periodic sweep: takes back deliveries of workers that died, disables failing hooks, sends notifications."""
    import signal
    import threading

    from workers import metrics
    from workers import scheduler as sweeper
    from workers.tasks import context
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    metrics.serve(_settings(), "scheduler")
    sweeper.run(context(), stop)


@main.command()
@click.argument("trigger_type")
@click.argument("entity_file", type=click.File("r"))
@click.option("--organization-id", type=int, required=True)
@click.option("--event-id", default=None)
@click.option("--event-guide-id", default=None)
@click.option("--trigger-id", default=None, help="Makes the call idempotent.")
def emit(trigger_type, entity_file, organization_id, event_id, event_guide_id, trigger_id):
    """Emit a trigger: TRIGGER_TYPE (e.g. order_created) with the entity JSON in ENTITY_FILE ('-' = stdin)."""
    from marshmallow import ValidationError

    from workers.producer import BrokerUnavailable
    from workers.producer import emit as emit_trigger
    try:
        entity = json.load(entity_file)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="ENTITY_FILE") from None
    try:
        trigger_id = emit_trigger(trigger_type, entity, organization_id=organization_id, event_id=event_id,
                                  event_guide_id=event_guide_id, trigger_id=trigger_id,
                                  broker_url=_settings().broker_url)
    except ValidationError as exc:
        click.echo(json.dumps({"errors": exc.messages}, indent=2), err=True)
        raise SystemExit(2) from None
    except BrokerUnavailable as exc:  # nothing was sent: say so, in one line
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    _print({"trigger_id": trigger_id})


cli_operations.register(main)  # deliveries, dead-letters, init, purge


if __name__ == "__main__":
    sys.exit(main())
