"""doo-webhooks: webhook delivery for the doo event-ticketing platform.

This package holds the entry points (the ``doo-webhooks`` command, standalone, the demo, the
web process's gunicorn configuration); the layers below are app/, workers/, storage/,
schemas/ and ground/ (docs/architecture.md)."""

from ground import __version__  # noqa: F401  (the version users and setup.cfg know)
