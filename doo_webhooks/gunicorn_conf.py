"""gunicorn settings for the ``web`` process (Procfile). Each can be overridden on the command line.

Threads suit the API: every request waits on PostgreSQL, never on the CPU for long.

Environment (gunicorn's conventions, not DOO_WEBHOOKS_ settings): ``PORT`` (8080),
``WEB_CONCURRENCY`` (worker processes, 2), ``WEB_THREADS`` (threads per worker, 8).

Metrics: several worker processes each count their own requests, so prometheus_client runs
in multiprocess mode. ``PROMETHEUS_MULTIPROC_DIR`` must be set before prometheus_client is
imported by any worker; this file is read by the gunicorn master before it loads the app,
so it sets the variable here (to a fresh temporary directory unless the operator chose one),
empties the directory at start, and removes the files of a worker that exits. ``/metrics`` of
any worker then answers for all of them.
"""

import atexit
import glob
import os
import shutil
import tempfile

from gunicorn import glogging

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# gunicorn's access log never carries headers: x-api-key and tokens stay out of the logs
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="doo-webhooks-metrics-")
    _master = os.getpid()
    # removed when the master exits (also after --check-config), never by an exiting worker
    atexit.register(lambda: os.getpid() == _master and shutil.rmtree(
        os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True))


def on_starting(server):
    """Counters of a previous run must not be added to this one's."""
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


class GunicornLogger(glogging.Logger):
    """gunicorn's error and access logs, formatted like every other line (JSON in production)."""

    def setup(self, cfg):
        super().setup(cfg)
        from ground import settings as settings_module
        from ground.logs import formatter
        chosen = formatter(settings_module.from_env())
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(chosen)


logger_class = GunicornLogger
