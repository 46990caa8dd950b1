"""``doo-webhooks deliveries | dead-letters | init | purge``: the operator's side of the API's
delivery endpoints (doo_webhooks.cli registers them on the main command)."""

import contextlib
import json
import sys

import click

from doo_webhooks.cli_common import _context
from doo_webhooks.cli_common import _print
from doo_webhooks.cli_common import refusals
from storage.lifecycle import Status


commands = click.Group()  # holds this module's groups until register() puts them on main


def register(main):
    for name, command in commands.commands.items():
        main.add_command(command, name)


# --- operating deliveries --------------------------------------------------------------
# The operator's side of the API's delivery endpoints: the same use cases (services.deliveries)
# for OPERATOR (whoever holds the database settings sees every organization). Nothing here needs
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
    return {"organization_id": organization_id, "group_id": group_id, "hook_type": _hook_type(hook_type),
            "since": _when(since), "until": _when(until)}


def _listing(found, page):
    from app import deliveries as views
    total, rows = found
    items = [views.summary(row, f"/v1/deliveries/{row.id}") for row in rows]
    click.echo(json.dumps({"total_items": total, "page": page, "deliveries": items}, indent=2, default=str))


@commands.group()
def deliveries():
    """The delivery log: list and show deliveries with their attempts."""


@deliveries.command("list")
@_window_options
@click.option("--status", type=click.Choice([status.value for status in Status]))
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 1000), default=25, show_default=True)
@refusals
def deliveries_list(organization_id, group_id, hook_type, since, until, status, page, page_size):
    """Deliveries, newest first."""
    from services import deliveries as delivery_service
    from services.tenancy import OPERATOR
    filters = _window(organization_id, group_id, hook_type, since, until)
    _listing(delivery_service.deliveries(_context(), OPERATOR, page_size, (page - 1) * page_size, status=status,
                                         **filters), page)


@contextlib.contextmanager
def _delivery(delivery_id):
    """An unknown DELIVERY_ID is a bad argument: click's usage error, as for any other argument."""
    from services.errors import NotFound
    try:
        yield
    except NotFound:
        raise click.BadParameter(f"no delivery {delivery_id}", param_hint="DELIVERY_ID") from None


@deliveries.command("show")
@click.argument("delivery_id")
@refusals
def deliveries_show(delivery_id):
    """One delivery: payload, request headers (redacted) and every attempt with the receiver's answer."""
    from app import deliveries as views
    from services import deliveries as delivery_service
    from services.tenancy import OPERATOR
    with _delivery(delivery_id):
        found = delivery_service.delivery(_context(), OPERATOR, delivery_id)
    item = views.detail(found.row, found.attempts, found.request_headers, {"self": f"/v1/deliveries/{delivery_id}"})
    click.echo(json.dumps(item, indent=2, default=str, ensure_ascii=False))


@deliveries.command("redeliver")
@click.argument("delivery_id")
@refusals
def deliveries_redeliver(delivery_id):
    """Send a dead, delivered or skipped delivery again (a new attempt series, same payload and
    webhook-id). A skipped one whose hook is still disabled waits until the hook is enabled."""
    from services import deliveries as delivery_service
    from services.tenancy import OPERATOR
    ctx = _context()
    with _delivery(delivery_id):
        delivery_service.redeliver(ctx, OPERATOR, delivery_id)
    _nudge_workers(ctx.settings)
    _print({"delivery_id": delivery_id, "status": Status.PENDING.value})


@commands.group("dead-letters")
def dead_letters():
    """Deliveries that failed every attempt: list them, replay them."""


@dead_letters.command("list")
@_window_options
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 1000), default=25, show_default=True)
@refusals
def dead_letters_list(organization_id, group_id, hook_type, since, until, page, page_size):
    """Dead deliveries of live groups, newest first."""
    from services import deliveries as delivery_service
    from services.tenancy import OPERATOR
    filters = _window(organization_id, group_id, hook_type, since, until)
    _listing(delivery_service.dead_letters(_context(), OPERATOR, page_size, (page - 1) * page_size, **filters), page)


@dead_letters.command("replay")
@_window_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=10_000, show_default=True,
              help="Most dead letters to replay in this run.")
@refusals
def dead_letters_replay(organization_id, group_id, hook_type, since, until, limit):
    """Replay dead letters, oldest first, each in a new attempt series; they keep their order per entity."""
    from services import deliveries as delivery_service
    from services.tenancy import OPERATOR
    filters = _window(organization_id, group_id, hook_type, since, until)
    ctx, queued, remaining = _context(), 0, 0
    with click.progressbar(length=limit, label="replaying", file=sys.stderr) as bar:
        while queued < limit:  # batches of 500, one transaction each, so the bar moves
            ids, remaining = delivery_service.replay(ctx, OPERATOR, limit=min(500, limit - queued), **filters)
            queued += len(ids)
            bar.update(len(ids))
            if not ids:
                break
    if queued:
        _nudge_workers(ctx.settings)
    _print({"queued": queued, "remaining": remaining})


@commands.group("init")
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
    @refusals
    def command(organization_id, event_id, last_updated_after, last_updated_before, webhook_type,
                webhook_configuration_id, max_rate_per_min):
        from app.api.fields import cet
        from services import initialization
        from services.tenancy import OPERATOR
        started = initialization.start(_context(), OPERATOR, resource, {
            "organization_id": organization_id, "event_id": event_id,
            "last_updated_after": _when(last_updated_after, cet()),
            "last_updated_before": _when(last_updated_before, cet()),
            "webhook_type": [_hook_type(t) for t in webhook_type], "webhook_configuration_id": webhook_configuration_id,
            "max_rate_per_min": max_rate_per_min})
        last_due_at = started["last_due_at"]
        _print(dict(started, last_due_at=last_due_at.isoformat() + "Z" if last_due_at else None))
    return command


for _resource in ("events", "orders", "attendees"):
    _init_command(_resource)


@commands.command()
@click.option("--older-than", required=True, help="Age like 30d, 12h, 90m, 2w.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--keep-snapshots/--drop-snapshots", default=True, show_default=True,
              help="Keep each entity's latest trigger (what initialization re-sends).")
def purge(older_than, batch_size, keep_snapshots):
    """Delete delivered deliveries (with their attempts and payloads) older than --older-than,
    and the triggers no delivery names any more. Dead and owed deliveries are never purged."""
    from services import retention
    from services.tenancy import OPERATOR
    from workers import operations
    try:
        age = operations.parse_age(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    purged = retention.purge(_context(), OPERATOR, age, batch_size, keep_snapshots, progress=lambda total: (
        click.progressbar(length=total, label="purging deliveries", file=sys.stderr)))
    _print(dict(purged, cutoff=purged["cutoff"].isoformat() + "Z"))
