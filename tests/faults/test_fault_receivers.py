"""Receivers that misbehave: time out, reset the connection, answer 500 or 3xx, answer
slowly, answer with a 100 MB body, or flap. A receiver that never recovers gets exactly ten
attempts per delivery (then the delivery is dead, a dead letter to replay); one that
recovers gets everything; the worker survives all of them.
"""

import json
import threading
import time

import pytest
import sqlalchemy as sa

from tests.support.servers import RESET
from tests.support.servers import Streamed
from tests.support.servers import scripted

TRIGGERS = 20
MB = 1024 * 1024


@pytest.fixture
def hung():
    """Set when the case ends: frees the threads of a receiver that never answers."""
    event = threading.Event()
    yield event
    event.set()


def run_case(case, make_pipeline, peer, route, expect, first, **settings):
    pipeline = make_pipeline(**settings)
    peer.routes["/crm"] = route
    pipeline.tenant.create_group({"name": "R", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    worker = pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    case.emit(pipeline, TRIGGERS, first)
    row = case.finish(pipeline, peer, expect=expect)
    assert worker.proc.poll() is None, "the worker survived the receiver"
    return pipeline, worker, row


def error_kinds(pipeline):
    """The error kinds of every attempt, and the processes' last log lines to say why."""
    kinds = {kind for kind, _, _ in attempt_errors(pipeline)}
    return kinds, pipeline.logs()[-3000:]


def attempt_errors(pipeline):
    with pipeline.engine.begin() as conn:
        return conn.execute(sa.text("SELECT error_kind, error_detail, response_excerpt FROM attempts")).all()


def test_receiver_that_never_answers_in_time(make_pipeline, peer, fault_case, hung):
    def route(recorded):
        hung.wait(30)
        return 504, {}, {"message": "too late"}
    case = fault_case("receiver never answers: read timeout 0.25 s (never recovers)")
    pipeline, _, _ = run_case(case, make_pipeline, peer, route, "dead", 10_000, read_timeout="0.25")
    kinds, logs = error_kinds(pipeline)
    assert kinds == {"timeout"}, logs


def test_receiver_that_resets_the_connection(make_pipeline, peer, fault_case):
    pipeline, _, _ = run_case(fault_case("receiver resets the connection (never recovers)"), make_pipeline, peer,
                              lambda recorded: RESET, "dead", 11_000)
    kinds, logs = error_kinds(pipeline)
    assert kinds == {"connection"}, logs


def test_receiver_that_answers_500(make_pipeline, peer, fault_case):
    pipeline, _, _ = run_case(fault_case("receiver answers 500 (never recovers)"), make_pipeline, peer,
                              scripted(then=500), "dead", 12_000)
    kinds, logs = error_kinds(pipeline)
    assert kinds == {"http_status"}, logs


def test_receiver_that_redirects(make_pipeline, peer, fault_case):
    statuses = iter([301, 302, 307, 308] * 1000)
    lock = threading.Lock()

    def route(recorded):
        with lock:
            status = next(statuses)
        return status, {"Location": peer.url("/elsewhere")}, {"message": "moved"}
    pipeline, _, _ = run_case(fault_case("receiver answers 301/302/307/308 (never recovers)"), make_pipeline, peer,
                              route, "dead", 13_000)
    assert peer.at("/elsewhere") == [], "a redirect was followed"
    assert all(detail.startswith("redirect not followed") for _, detail, _ in attempt_errors(pipeline))


def test_receiver_that_answers_slowly(make_pipeline, peer, fault_case):
    def route(recorded):
        time.sleep(0.3)  # the fault itself: a receiver that takes its time, within the read timeout
        return 200, {}, {"message": "ok"}
    run_case(fault_case("receiver answers 200 after 0.3 s"), make_pipeline, peer, route, "delivered", 14_000,
             read_timeout="1.5")


def hwm_kib(pid):
    """The process's peak resident memory (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_receiver_that_answers_with_a_100_mb_body(make_pipeline, peer, fault_case):
    case = fault_case("receiver answers 200 with a 100 MB body")
    bodies = []

    def route(recorded):
        bodies.append(Streamed(100 * MB))
        return 200, {}, bodies[-1]
    pipeline = make_pipeline()
    peer.routes["/crm"] = route
    pipeline.tenant.create_group({"name": "R", "hooks": [{"type": "order_created", "endpoint": peer.url("/crm")}]})
    worker = pipeline.start("worker", "--concurrency", "2")
    pipeline.start("scheduler")
    worker.wait_output("delivery engine started")
    before = hwm_kib(worker.pid)

    case.emit(pipeline, TRIGGERS, 15_000)
    written = lambda: max(body.written for body in bodies) // MB  # noqa: E731
    grown = lambda: (hwm_kib(worker.pid) - before) // 1024  # noqa: E731
    case.finish(pipeline, peer, notes=lambda: f"at most {written()} MB of a 100 MB body written before the worker "
                                              f"hung up; its peak memory grew {grown()} MB")
    assert worker.proc.poll() is None, "the worker survived the receiver"
    # 20 bodies read whole would be 2 GB: the worker keeps an excerpt and hangs up
    assert hwm_kib(worker.pid) - before < 64 * 1024, "the worker's peak memory grew by more than 64 MB"
    assert written() < 100
    excerpts = [excerpt for _, _, excerpt in attempt_errors(pipeline)]
    assert excerpts and all(len(excerpt.encode()) <= 65536 for excerpt in excerpts)


def test_receiver_that_flaps(make_pipeline, peer, fault_case):
    # down for 7 requests (500, reset, 502 in turn), up for 5, down again, ...
    count = iter(range(10**9))
    lock = threading.Lock()

    def route(recorded):
        with lock:
            n = next(count)
        if n % 12 < 7:
            return [(500, {}, {"message": "down"}), RESET, (502, {}, {"message": "bad gateway"})][n % 3]
        return 200, {}, {"message": "ok"}
    pipeline, _, row = run_case(fault_case("receiver flaps (down 7 requests, up 5, ...)"), make_pipeline, peer, route,
                                "delivered", 16_000)
    assert row.sent > row.deliveries, "the flapping cost retries"
    assert max(json.loads(r.body)["order_details"]["id"] for r in peer.at("/crm")) == 16_000 + TRIGGERS - 1
