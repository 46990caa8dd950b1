"""workers.metrics: what each delivery outcome, token fetch and sweep counts."""

import datetime
import types

import pytest
from prometheus_client import REGISTRY

from workers import metrics
from tests.support.observability import metric

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Sample values before and after a block: the registry is shared by the whole test run."""

    def __init__(self, *samples):
        self.samples = samples

    def __enter__(self):
        self.before = [value(name, **labels) for name, labels in self.samples]
        return self

    def __exit__(self, *exc):
        self.after = [value(name, **labels) for name, labels in self.samples]

    @property
    def moved(self):
        return [round(b - a, 6) for a, b in zip(self.before, self.after)]


def outcome(status, code=200, error=None, duration_ms=120, received=T0, now=T0 + datetime.timedelta(seconds=3)):
    return {"id": "d-1", "number": 1, "status": status, "last_status_code": code, "last_error": error,
            "duration_ms": duration_ms, "received_at": received, "now": now,
            "delivered_at": now if status == "delivered" else None, "trigger_id": "t-1", "group_id": "g-1"}


@pytest.mark.parametrize("code, klass", [(200, "2xx"), (201, "2xx"), (302, "3xx"), (410, "4xx"), (503, "5xx"),
                                         (None, "none"), (99, "none"), (600, "none"), ("200", "none")])
def test_status_class(code, klass):
    assert metrics.status_class(code) == klass


def test_a_delivered_attempt():
    with Delta(("doo_webhooks_attempts_total", {"outcome": "success", "status_class": "2xx"}),
               ("doo_webhooks_deliveries_total", {"outcome": "delivered", "status_class": "2xx"}),
               ("doo_webhooks_delivery_latency_seconds_count", {}),
               ("doo_webhooks_delivery_latency_seconds_sum", {}),
               ("doo_webhooks_attempt_duration_seconds_sum", {"status_class": "2xx"})) as delta:
        metrics.observe_outcome(outcome("delivered"))
    assert delta.moved == [1, 1, 1, 3.0, 0.12]


def test_a_retried_attempt_finishes_no_delivery():
    with Delta(("doo_webhooks_attempts_total", {"outcome": "http_status", "status_class": "5xx"}),
               ("doo_webhooks_deliveries_total", {"outcome": "retrying", "status_class": "5xx"}),
               ("doo_webhooks_delivery_latency_seconds_count", {})) as delta:
        metrics.observe_outcome(outcome("retrying", 503, "http_status"))
    assert delta.moved == [1, 0, 0]


def test_a_dead_delivery_is_a_dead_letter_with_its_reason():
    with Delta(("doo_webhooks_attempts_total", {"outcome": "timeout", "status_class": "none"}),
               ("doo_webhooks_deliveries_total", {"outcome": "dead", "status_class": "none"}),
               ("doo_webhooks_dead_letters_total", {"reason": "timeout"}),
               ("doo_webhooks_delivery_latency_seconds_count", {})) as delta:
        metrics.observe_outcome(outcome("dead", None, "timeout"))
    assert delta.moved == [1, 1, 1, 0]


def test_a_broken_outcome_is_logged_not_raised(caplog):
    metrics.observe_outcome({"status": "delivered", "received_at": "not a time", "now": T0})
    assert "recording delivery metrics failed" in caplog.text


def test_token_fetches_and_sweeps():
    with Delta(("doo_webhooks_token_fetches_total", {"outcome": "ok"}),
               ("doo_webhooks_token_fetches_total", {"outcome": "timeout"}),
               ("doo_webhooks_claimed_total", {"lane": "retrying"}), ("doo_webhooks_leases_expired_total", {}),
               ("doo_webhooks_dead_letters_total", {"reason": "worker_lost"}),
               ("doo_webhooks_deliveries_total", {"outcome": "dead", "status_class": "none"})) as delta:
        metrics.token_fetched("ok")
        metrics.token_fetched("timeout")
        metrics.claimed("retrying", 5)
        metrics.claimed("retrying", 0)
        metrics.swept(3, 1)
        metrics.swept(0, 0)
    assert delta.moved == [1, 1, 5, 3, 1, 1]


def test_instrument_wires_observers_and_token_fetches_once():
    ctx = types.SimpleNamespace(observers=[print], tokens=types.SimpleNamespace(on_fetch=None))
    metrics.instrument(metrics.instrument(ctx))
    assert ctx.observers == [print, metrics.observe_outcome]
    assert ctx.tokens.on_fetch is metrics.token_fetched


class Ledger:
    def __init__(self, due=None, fail=False):
        self.due, self.fail = due, fail

    def connect(self):
        if self.fail:
            raise OSError("database away")
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_ledger_collector_reads_at_scrape_time_and_survives_failures(monkeypatch, caplog):
    from storage import ledger
    monkeypatch.setattr(ledger, "due_backlog", lambda conn, now: conn.due)
    text, _ = metrics.exposition([metrics.LedgerCollector(Ledger(7), lambda: {"triggers": 2, "deliveries": 5})])
    text = text.decode()
    assert metric(text, "doo_webhooks_deliveries_due") == 7
    assert metric(text, "doo_webhooks_queue_depth", queue="deliveries") == 5
    assert metric(text, "doo_webhooks_queue_depth", queue="triggers") == 2
    assert "doo_webhooks_attempts_total" in text  # beside the process's own metrics

    def broken():
        raise ConnectionError("broker away")
    text, _ = metrics.exposition([metrics.LedgerCollector(Ledger(fail=True), broken)])
    text = text.decode()
    assert "doo_webhooks_deliveries_due" not in text and "doo_webhooks_queue_depth" not in text
    assert "doo_webhooks_attempts_total" in text
    assert "could not count the due deliveries: OSError" in caplog.text
    assert "could not read the queue depths: ConnectionError" in caplog.text

