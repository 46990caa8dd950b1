"""Logging: one JSON object a line in production, plain text in a terminal."""

import json
import logging
import sys

_CONFIGURED = False
CONTEXT_FIELDS = ("trigger_id", "delivery_id", "group_id", "attempt", "status_code", "error_kind")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        for field in CONTEXT_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(settings):
    global _CONFIGURED
    if _CONFIGURED:
        return
    _CONFIGURED = True
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
