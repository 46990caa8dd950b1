"""gunicorn settings for the ``web`` process (Procfile). Each can be overridden on the command line.

Threads suit the API: every request waits on PostgreSQL, never on the CPU for long.
"""

import os

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
