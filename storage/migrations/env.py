"""Alembic environment: the URL comes from doo-webhooks settings, the tables from storage.tables."""

from alembic import context

from storage.tables import metadata

config = context.config


def run_migrations_online():
    connectable = config.attributes.get("connection")
    if connectable is None:
        from storage.db import engine_for
        connectable = engine_for(config.get_main_option("sqlalchemy.url"))
    with connectable.connect() as connection:
        # render_as_batch: SQLite can only change a table by copying it
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
