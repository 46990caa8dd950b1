"""The ground every other layer stands on: settings (read from the environment in one place,
documented in one table), crypto (secrets at rest, digests of credentials) and logs. It
imports nothing of the project; setup.cfg's import contracts keep it that way."""

__version__ = "0.1.0"
