"""The ``doo-webhooks`` command: run the processes, migrate, bootstrap tenants, rotate keys."""

import json
import sys

import click

from doo_webhooks import __version__
from doo_webhooks import settings as settings_module
from storage.lifecycle import Status


def _settings():
    try:
        return settings_module.from_env()
    except settings_module.SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _engine(settings):
    from storage.db import engine_for
    return engine_for(settings.database_url)


def _print(obj):
    click.echo(json.dumps(obj, indent=2))


@click.group()
@click.version_option(__version__, prog_name="doo-webhooks")
def main():
    """doo-webhooks: webhook delivery for the doo event-ticketing platform."""
    from doo_webhooks.logs import configure
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


def _create(fn, *args):
    from storage.db import utcnow
    settings = _settings()
    try:
        with _engine(settings).begin() as conn:
            return fn(conn, *args, utcnow())
    except LookupError as exc:
        raise click.BadParameter(str(exc)) from None


@admin.command("create-organization")
@click.option("--name", required=True)
def create_organization(name):
    """Create an organization; prints its id."""
    from storage import tenancy
    _print({"organization_id": _create(tenancy.create_organization, name)})


@admin.command("create-team")
@click.option("--organization-id", type=int, required=True)
@click.option("--name", default=None)
def create_team(organization_id, name):
    """Create a team in an organization; prints its id."""
    from storage import tenancy
    _print({"team_id": _create(tenancy.create_team, organization_id, name)})


@admin.command("create-organizer")
@click.option("--email", required=True)
@click.option("--name", default=None)
@click.option("--team-id", type=int, required=True, multiple=True, help="Repeat for several teams.")
@click.option("--role", type=click.Choice(("team_admin", "team_member", "team_viewer")), default="team_admin",
              show_default=True)
def create_organizer(email, name, team_id, role):
    """Create an organizer (a user) with a role in one or more teams."""
    from sqlalchemy.exc import IntegrityError

    from storage import tenancy
    from storage.db import utcnow
    settings = _settings()
    try:
        with _engine(settings).begin() as conn:
            organizer_id = tenancy.create_organizer(conn, email, name, utcnow())
            for team in team_id:
                tenancy.add_membership(conn, organizer_id, team, role)
    except LookupError as exc:
        raise click.BadParameter(str(exc)) from None
    except IntegrityError:
        raise click.BadParameter(f"an organizer with email {email!r} exists already") from None
    _print({"organizer_id": organizer_id, "teams": list(team_id), "role": role})


@admin.command("create-credentials")
@click.option("--organizer-id", type=int, required=True)
def create_credentials(organizer_id):
    """Print a new api_key, client_id and client_secret for an organizer (shown once)."""
    from doo_webhooks.crypto import digest, new_secret
    from storage import tenancy
    api_key, client_id, client_secret = new_secret("dk_"), new_secret("dc_")[:40], new_secret("ds_")
    _create(tenancy.create_credentials, organizer_id, digest(api_key), client_id, digest(client_secret))
    _print({"api_key": api_key, "client_id": client_id, "client_secret": client_secret})


@admin.command("create-platform-key")
@click.option("--name", default="platform", show_default=True)
def create_platform_key(name):
    """Print a new key for POST /v1/triggers (shown once)."""
    from doo_webhooks.crypto import digest, new_secret
    from storage import tenancy
    key = new_secret("dp_")
    _create(tenancy.create_platform_key, name, digest(key))
    _print({"platform_key": key})


# --- secrets ---------------------------------------------------------------------------

@main.group()
def secrets():
    """Encryption of receiver secrets at rest."""


@secrets.command("rotate")
def secrets_rotate():
    """Re-encrypt every stored secret under the newest key of DOO_WEBHOOKS_SECRET_KEYS."""
    from doo_webhooks.crypto import SecretBox
    from storage import groups
    settings = _settings()
    box = SecretBox(settings)
    rotated, after = 0, ""
    while True:
        with _engine(settings).begin() as conn:
            rows = groups.groups_with_secrets(conn, after, 500)
            for row in rows:
                groups.set_group_secrets(conn, row.id, {
                    name: box.rotate(getattr(row, name)) if getattr(row, name) else None
                    for name in groups.SECRET_COLUMNS})
                rotated += 1
        if not rows:
            break
        after = rows[-1].id
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
    from doo_webhooks import metrics
    from doo_webhooks.logs import effective_format
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

    from doo_webhooks import metrics
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


# --- operating deliveries --------------------------------------------------------------
# The operator's side of the API's delivery endpoints, straight on the ledger (no tenant
# scoping: whoever holds the database settings sees every organization). Nothing here needs
# the broker: restarted deliveries are due rows that the workers claim at their next poll;
# in services mode a nudge through the broker, when it answers, has them claimed at once.


def _nudge_workers(settings):
    """Wake the workers' send loops (best effort: StreamPublisher swallows a broker that is
    away). A standalone service is not reached from here: it polls every DISPATCH_INTERVAL."""
    if settings.broker_url.startswith("sqlite"):
        return
    from workers.producer import StreamPublisher
    StreamPublisher(settings.broker_url).nudge()

def _when(value, zone=None):
    """An ISO date-time option as naive UTC; no offset means UTC (or ``zone``)."""
    if value is None:
        return None
    import datetime
    try:  # Python 3.10's fromisoformat does not read a trailing "Z"
        when = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone or datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _hook_type(value):
    if value is None:
        return None
    from schemas.types import normalize_type
    try:
        return normalize_type(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _window_options(fn):
    for option in reversed((
        click.option("--organization-id", type=int, default=None, help="Only this organization."),
        click.option("--group-id", default=None, help="Only this webhook group."),
        click.option("--type", "hook_type", default=None, help="Only this webhook type (on_ prefix accepted)."),
        click.option("--since", default=None, help="Created at or after (ISO 8601; no offset = UTC)."),
        click.option("--until", default=None, help="Created before (ISO 8601; no offset = UTC)."),
    )):
        fn = option(fn)
    return fn


def _window(organization_id, group_id, hook_type, since, until):
    return {"organization_ids": [organization_id] if organization_id is not None else None,
            "group_id": group_id, "hook_type": _hook_type(hook_type), "since": _when(since), "until": _when(until)}


def _listing(filters, page, page_size):
    import json as json_module

    from app import deliveries as views
    from storage import delivery_log
    with _engine(_settings()).begin() as conn:
        total, rows = delivery_log.list_deliveries(conn, page_size, (page - 1) * page_size, **filters)
    items = [views.summary(row, f"/v1/deliveries/{row.id}") for row in rows]
    click.echo(json_module.dumps({"total_items": total, "page": page, "deliveries": items}, indent=2, default=str))


@main.group()
def deliveries():
    """The delivery log: list and show deliveries with their attempts."""


@deliveries.command("list")
@_window_options
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 1000), default=25, show_default=True)
def deliveries_list(organization_id, group_id, hook_type, since, until, status, page, page_size):
    """Deliveries, newest first."""
    filters = _window(organization_id, group_id, hook_type, since, until)
    _listing(dict(filters, status=status), page, page_size)


def _delivery(conn, delivery_id):
    from storage import delivery_log
    row = delivery_log.delivery_view(conn, delivery_id)
    if row is None:
        raise click.BadParameter(f"no delivery {delivery_id}", param_hint="DELIVERY_ID")
    return row


@deliveries.command("show")
@click.argument("delivery_id")
def deliveries_show(delivery_id):
    """One delivery: payload, request headers (redacted) and every attempt with the receiver's answer."""
    from app import deliveries as views
    from storage import delivery_log
    with _engine(_settings()).begin() as conn:
        row = _delivery(conn, delivery_id)
        attempts = delivery_log.attempts_of(conn, delivery_id)
        headers = delivery_log.latest_request_headers(conn, delivery_id)
    item = views.detail(row, attempts, headers, {"self": f"/v1/deliveries/{delivery_id}"})
    click.echo(json.dumps(item, indent=2, default=str, ensure_ascii=False))


@deliveries.command("redeliver")
@click.argument("delivery_id")
def deliveries_redeliver(delivery_id):
    """Send a dead, delivered or skipped delivery again (a new attempt series, same payload and
    webhook-id). A skipped one whose hook is still disabled waits until the hook is enabled."""
    from storage.db import utcnow
    from workers import operations
    settings = _settings()
    with _engine(settings).begin() as conn:
        row = _delivery(conn, delivery_id)
        try:
            operations.redeliver(conn, row, utcnow())
        except operations.Refused as exc:
            raise click.ClickException(str(exc)) from None
    _nudge_workers(settings)
    _print({"delivery_id": delivery_id, "status": Status.PENDING.value})


@main.group("dead-letters")
def dead_letters():
    """Deliveries that failed every attempt: list them, replay them."""


@dead_letters.command("list")
@_window_options
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 1000), default=25, show_default=True)
def dead_letters_list(organization_id, group_id, hook_type, since, until, page, page_size):
    """Dead deliveries of live groups, newest first."""
    filters = _window(organization_id, group_id, hook_type, since, until)
    _listing(dict(filters, status=Status.DEAD, live_groups=True), page, page_size)


@dead_letters.command("replay")
@_window_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=10_000, show_default=True,
              help="Most dead letters to replay in this run.")
def dead_letters_replay(organization_id, group_id, hook_type, since, until, limit):
    """Replay dead letters, oldest first, each in a new attempt series; they keep their order per entity."""
    from storage.db import utcnow
    from workers import operations
    filters = _window(organization_id, group_id, hook_type, since, until)
    settings = _settings()
    engine, queued, remaining = _engine(settings), 0, 0
    with click.progressbar(length=limit, label="replaying", file=sys.stderr) as bar:
        while queued < limit:
            with engine.begin() as conn:
                ids, remaining = operations.replay(conn, utcnow(), limit=min(500, limit - queued), **filters)
            queued += len(ids)
            bar.update(len(ids))
            if not ids:
                break
    if queued:
        _nudge_workers(settings)
    _print({"queued": queued, "remaining": remaining})


@main.group("init")
def init():
    """Webhook initialization: re-send the latest known state of existing entities, paced."""


def _init_command(resource):
    from schemas.types import RESOURCES
    kind = RESOURCES[resource]

    # the help is given here: click reads a command's help when it is made, so a __doc__ set
    # afterwards never reached ``init --help``
    @init.command(resource, help=f"Re-send every matching {kind} to its hooks, at most --max-rate-per-min a minute.",
                  short_help=f"Re-send the latest state of every matching {kind}, paced.")
    # no default=None here: with one, click takes a missing required option as given
    @click.option("--organization-id", type=int, required=(resource == "events"))
    @click.option("--event-id", required=(resource != "events"))
    @click.option("--last-updated-after", default=None, help="ISO 8601; no offset = CET, as doo documents.")
    @click.option("--last-updated-before", default=None, help="ISO 8601; no offset = CET.")
    @click.option("--webhook-type", multiple=True, help="Repeat for several; default every type of the resource.")
    @click.option("--webhook-configuration-id", default=None, help="Only this webhook group.")
    @click.option("--max-rate-per-min", type=click.IntRange(1, 50), default=50, show_default=True)
    def command(organization_id, event_id, last_updated_after, last_updated_before, webhook_type,
                webhook_configuration_id, max_rate_per_min):
        from app.api.fields import cet
        from schemas.types import TYPES
        from storage.db import utcnow
        from workers import initialization
        types = sorted({_hook_type(t) for t in webhook_type}) or None
        wrong = [f"{t} does not carry {kind}s" for t in types or () if TYPES[t] != kind]
        if wrong:
            raise click.BadParameter("; ".join(wrong), param_hint="--webhook-type")
        with _engine(_settings()).begin() as conn:
            items, rows = initialization.initialize(
                conn, kind, utcnow(), hook_types=types, rate=max_rate_per_min,
                organization_ids=[organization_id] if organization_id is not None else None, event_id=event_id,
                updated_after=_when(last_updated_after, cet()), updated_before=_when(last_updated_before, cet()),
                group_id=webhook_configuration_id)
        _print({"items_processed": items, "deliveries_queued": len(rows),
                "last_due_at": rows[-1]["next_attempt_at"].isoformat() + "Z" if rows else None})
    return command


for _resource in ("events", "orders", "attendees"):
    _init_command(_resource)


@main.command()
@click.option("--older-than", required=True, help="Age like 30d, 12h, 90m, 2w.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--keep-snapshots/--drop-snapshots", default=True, show_default=True,
              help="Keep each entity's latest trigger (what initialization re-sends).")
def purge(older_than, batch_size, keep_snapshots):
    """Delete delivered deliveries (with their attempts and payloads) older than --older-than,
    and the triggers no delivery names any more. Dead and owed deliveries are never purged."""
    from storage import retention
    from storage.db import utcnow
    from workers import operations
    try:
        cutoff = utcnow() - operations.parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    engine = _engine(_settings())
    with engine.begin() as conn:
        total = retention.count_purgeable(conn, cutoff)
    with click.progressbar(length=total, label="purging deliveries", file=sys.stderr) as bar:
        done, triggers = operations.purge(engine, cutoff, batch_size, keep_snapshots, progress=bar.update)
    _print({"deliveries_deleted": done, "triggers_deleted": triggers, "cutoff": cutoff.isoformat() + "Z"})

if __name__ == "__main__":
    sys.exit(main())
