"""What every ``doo-webhooks`` command needs: the settings (a bad one is a usage error, not a
traceback), the service layer's Context, a use case's refusal said as a message (exit 1),
and JSON out."""

import functools
import json

import click

from ground import settings as settings_module


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


def _context():
    """The services' Context of a command. No publisher: a command reaches the workers
    through the broker's nudge (cli_operations._nudge_workers), and only when it answers."""
    from services.context import Context
    settings = _settings()
    return Context.create(settings, engine=_engine(settings))


def refusals(command):
    """Say a use case's refusal (services.errors) as ``Error: <message>`` and exit 1, as the
    API answers it with its status: no traceback for an unknown id or a wrong state."""
    from services.errors import Refused
    from services.errors import said

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Refused as exc:
            fields = "; ".join(said(exc.errors))
            raise click.ClickException(" ".join(part for part in (exc.message, fields) if part)) from None
    return wrapper
