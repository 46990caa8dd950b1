"""``doo-webhooks db upgrade``: Alembic, configured in code so no alembic.ini is needed."""

import logging
import pathlib

from alembic import command
from alembic.config import Config

MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


def alembic_config(url):
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url, revision="head"):
    command.upgrade(alembic_config(url), revision)


def current(url):
    from alembic.runtime.migration import MigrationContext
    from storage.db import engine_for
    # Reading the revision makes a second migration context, which logs "Context impl ..." and
    # "Will assume ..." again right after the upgrade did: keep those lines to the upgrade.
    log = logging.getLogger("alembic.runtime.migration")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with engine_for(url).connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        log.setLevel(level)
