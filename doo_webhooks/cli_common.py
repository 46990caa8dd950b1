"""What every ``doo-webhooks`` command needs: the settings (a bad one is a usage error, not a
traceback), the ledger's engine, and JSON out."""

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
