"""ground.logs: JSON lines, text lines, delivery context, and the credential scrubber."""

import json
import logging
import sys

import pytest

from ground import logs
from ground.settings import from_env


def record(message, *args, exc_info=None, **extra):
    rec = logging.LogRecord("workers.delivery", logging.INFO, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


CONTEXT = {"trigger_id": "t-1", "delivery_id": "d-1", "group_id": "g-1", "attempt": 2, "status_code": 503,
           "error_kind": "http_status"}


def test_json_line_carries_the_delivery_context():
    line = json.loads(logs.JsonFormatter().format(record("attempt %s: %s", 2, "retrying", **CONTEXT)))
    assert line["message"] == "attempt 2: retrying"
    assert (line["level"], line["logger"]) == ("INFO", "workers.delivery")
    assert {k: line[k] for k in CONTEXT} == CONTEXT


def test_json_line_is_one_line_even_with_a_traceback():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        text = logs.JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_text_line_shows_the_context_as_key_values():
    text = logs.TextFormatter().format(record("attempt %s: %s", 2, "retrying", **dict(CONTEXT, error_kind=None)))
    assert text.endswith("INFO workers.delivery: attempt 2: retrying trigger_id=t-1 delivery_id=d-1 group_id=g-1 "
                         "attempt=2 status_code=503")


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer abcdef123456.xyz", "abcdef123456.xyz"),
    ("headers {'Authorization': 'bearer eyJhbGciOiJIUzI1NiJ9.e30.sig'}", "eyJhbGciOiJIUzI1NiJ9.e30.sig"),
    ("grant_type=client_credentials&client_id=crm&client_secret=s3cr3t-value&x=1", "s3cr3t-value"),
    ('{"access_token": "tok-very-secret", "expires_in": 3600}', "tok-very-secret"),
    ("x-api-key: dk_abcdefgh", "dk_abcdefgh"),
    ("connecting to postgresql://doo:hunter22@db:5432/doo", "hunter22"),
    ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
])
def test_scrub_blanks_credentials(text, secret):
    scrubbed = logs.scrub(text)
    assert secret not in scrubbed
    assert logs.REDACTED in scrubbed


@pytest.mark.parametrize("text", [
    "attempt 1: delivered", "trigger fanned out to 3 hook(s)", "took back 2 delivery(ies) whose worker stopped",
    "token endpoint answered HTTP 500: ***", "scheduler started (every 1.0s)",
])
def test_scrub_leaves_ordinary_lines_alone(text):
    assert logs.scrub(text) == text


def test_both_formatters_scrub_messages_and_tracebacks():
    try:
        raise RuntimeError("request failed with Authorization: Bearer leaked-token-123")
    except RuntimeError:
        info = sys.exc_info()
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        text = formatter.format(record("sent %s", "client_secret=leaked-secret", exc_info=info))
        assert "leaked-token-123" not in text and "leaked-secret" not in text


def test_effective_format(monkeypatch):
    assert logs.effective_format(from_env({"DOO_WEBHOOKS_LOG_FORMAT": "json"})) == "json"
    assert logs.effective_format(from_env({"DOO_WEBHOOKS_LOG_FORMAT": "text"})) == "text"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert logs.effective_format(from_env({})) == "text"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert logs.effective_format(from_env({})) == "json"
    assert isinstance(logs.formatter(from_env({})), logs.JsonFormatter)
