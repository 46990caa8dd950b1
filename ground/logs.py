"""Logging: one JSON object a line in production, plain text in a terminal.

Every process (API, gunicorn, Celery worker, scheduler, standalone) logs through the
formatters below: ``configure`` installs one on the root logger, Celery is told to leave
logging alone (``workers.celery_app``), and gunicorn's own loggers use ``doo_webhooks.gunicorn_conf.GunicornLogger``.

A delivery's lines carry ``trigger_id``, ``delivery_id``, ``group_id`` and ``attempt`` (as
fields in JSON, as ``key=value`` in text). Secrets are never passed to a logger; as a second
line of defence both formatters blank out bearer tokens, ``client_secret=``/``access_token``
values and passwords in URLs should one slip into a message or a traceback.
"""

import json
import logging
import re
import sys

_CONFIGURED = False
CONTEXT_FIELDS = ("trigger_id", "delivery_id", "group_id", "attempt", "status_code", "error_kind")
REDACTED = "[redacted]"

_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)((?:client_secret|access_token|refresh_token|password|api_key|x-api-key)"
                r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"), rf"\1{REDACTED}"),
    (re.compile(r"(\w+://[^/\s:@]+:)[^/\s@]+@"), rf"\1{REDACTED}@"),
)


def scrub(text):
    """``text`` with anything shaped like a credential blanked out."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _context(record):
    return {field: getattr(record, field) for field in CONTEXT_FIELDS if hasattr(record, field)}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": scrub(record.getMessage())}
        line.update(_context(record))
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` then the traceback, if any."""

    def format(self, record):
        text = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        context = _context(record)
        if context:
            text += " " + " ".join(f"{k}={v}" for k, v in context.items() if v is not None)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return scrub(text)


def effective_format(settings):
    """'json' or 'text': LOG_FORMAT, with 'auto' meaning text on a terminal, JSON otherwise."""
    if settings.log_format != "auto":
        return settings.log_format
    return "text" if sys.stderr.isatty() else "json"


def formatter(settings):
    return JsonFormatter() if effective_format(settings) == "json" else TextFormatter()


def configure(settings):
    """Once per process: one stderr handler with our formatter on the root logger."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    _CONFIGURED = True
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.captureWarnings(True)  # warnings.warn() lines too (e.g. Celery's), through the formatter
    # Alembic narrates every plugin it loads at INFO; an operator needs only the migrations run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

