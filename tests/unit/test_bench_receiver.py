"""The benchmark receiver's HTTP parser (bench/receiver.py): what it records must be right,
or every latency the bench reports is wrong."""

import importlib.util
import pathlib

import pytest

_path = pathlib.Path(__file__).resolve().parents[2] / "bench" / "receiver.py"
_spec = importlib.util.spec_from_file_location("bench_receiver", _path)
receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(receiver)


def test_two_pipelined_requests_with_bodies_parse_in_order():
    first = b'POST /hook HTTP/1.1\r\nHost: x\r\nwebhook-id: d1\r\nContent-Length: 16\r\n\r\n{"bench_seq": 7}'
    second = b"POST /hook HTTP/1.1\r\nX-Doo-Trigger: t-9\r\nContent-Length: 2\r\n\r\n{}"
    buffer = bytearray(first + second)
    request, used = receiver.parse(buffer)
    assert (request.method, request.target, request.headers[b"webhook-id"]) == (b"POST", b"/hook", b"d1")
    assert request.body == b'{"bench_seq": 7}' and used == len(first)
    del buffer[:used]
    request, used = receiver.parse(buffer)
    assert request.headers[b"x-doo-trigger"] == b"t-9" and request.body == b"{}" and used == len(second)


def test_an_incomplete_request_waits_for_more_bytes():
    whole = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
    for cut in (5, whole.index(b"\r\n\r\n") + 2, len(whole) - 1):
        assert receiver.parse(bytearray(whole[:cut])) == (None, 0)


def test_a_chunked_body_is_joined():
    raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ben\r\n6\r\nch_seq\r\n0\r\n\r\n"
    request, used = receiver.parse(bytearray(raw))
    assert request.body == b'{"bench_seq' and used == len(raw)


@pytest.mark.parametrize("raw", [b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nno colon\r\n\r\n",
                                 b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"])
def test_a_malformed_request_is_refused(raw):
    with pytest.raises(receiver.ParseError):
        receiver.parse(bytearray(raw))


def test_keep_alive_follows_the_http_version_and_connection_header():
    def request(version, connection=None):
        headers = {b"connection": connection} if connection else {}
        return receiver.Request(b"POST", b"/", version, headers, b"")
    assert request(b"HTTP/1.1").keep_alive() and not request(b"HTTP/1.1", b"close").keep_alive()
    assert not request(b"HTTP/1.0").keep_alive() and request(b"HTTP/1.0", b"Keep-Alive").keep_alive()


def test_fail_then_ok_and_the_recorded_sequence_number():
    fail = receiver.Behaviour("fail:30")
    assert fail.answer(fail.set_at + 1) == (500, 0.0) and fail.answer(fail.set_at + 31) == (200, 0.0)
    assert receiver.Behaviour("delay:1").answer(0) == (200, 1.0)
    with pytest.raises(ValueError):
        receiver.Behaviour("delay")
    recorder = receiver.Recorder()
    recorder.add(18001, 200, receiver.Request(b"POST", b"/", b"HTTP/1.1", {b"webhook-id": b"d1"},
                                              b'{"order_details":{"id":3},"bench_seq":42}'))
    assert recorder.records[0][1:] == (18001, 200, "d1", None, 42) and recorder.counts == {"18001:200": 1}
