"""The Celery app and its at-least-once settings.

The database is the ledger; a broker message only says "look at these rows now". So the
broker may lose a message (the scheduler re-enqueues the row) but a worker must never
acknowledge work it did not finish: acks_late + reject_on_worker_lost, prefetch 1.
"""

from celery import Celery
from celery import signals

from ground import settings as settings_module

from workers.queues import DELIVER
from workers.queues import DELIVERIES_QUEUE
from workers.queues import FAN_OUT
from workers.queues import TRIGGERS_QUEUE


def configure(app, settings):
    per_delivery = 3 * (settings.connect_timeout + settings.read_timeout)  # origin + token + POST
    app.conf.update(
        broker_url=settings.broker_url,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_soft_shutdown_timeout=30,
        # one batch sends concurrently, so it lasts about one delivery; the visibility
        # timeout must exceed that or Redis hands the message to a second worker
        task_time_limit=int(per_delivery + 60),
        # A SIGKILLed worker's unacknowledged messages come back only after this long; for a
        # delivery the scheduler is quicker (its lease), but a trigger not yet fanned out waits
        # for it. So: just above the longest task, not the hour Celery defaults to.
        broker_transport_options={"visibility_timeout": int(2 * per_delivery + 60)},
        task_default_queue=DELIVERIES_QUEUE,
        task_routes={FAN_OUT: {"queue": TRIGGERS_QUEUE}, DELIVER: {"queue": DELIVERIES_QUEUE}},
    )
    return app


@signals.setup_logging.connect
def _our_logging(**_):
    """Celery's own lines go through our formatter too: with a receiver here, Celery adds no
    handler of its own and redirects no output (see ground.logs)."""
    from ground.logs import configure
    configure(settings_module.from_env())


def make_celery(settings):
    return configure(Celery("doo_webhooks", include=["workers.tasks"]), settings)


app = make_celery(settings_module.from_env())
