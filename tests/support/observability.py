"""Helpers for tests of health endpoints and metrics: free ports, a TCP proxy that can make a
server unreachable and reachable again, and reading Prometheus expositions."""

import socket
import threading
import time

import requests
from prometheus_client.parser import text_string_to_metric_families


def free_port():
    """A port nothing listens on right now (the OS's choice; good enough for a test process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url, timeout=30, status=None, what=None, process=None):
    """Poll ``url`` until it answers (with ``status``, when given); returns the response.

    ``process`` (a Popen) that exits meanwhile fails the wait at once.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = requests.get(url, timeout=2)
            if status is None or last.status_code == status:
                return last
        # a read timeout too: gunicorn's master accepts before its workers have loaded the app
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = exc
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what or url} answered")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or url}; last: {last!r}")
        time.sleep(0.05)


def samples(text):
    """{(name, ((label, value), ...)): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def metric(text, name, **labels):
    """The value of one sample (0.0 when the exposition does not have it)."""
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def wait_metric(url, name, at_least, timeout=30, **labels):
    """Scrape ``url`` until ``name{labels}`` reaches ``at_least``; returns the last exposition."""
    deadline = time.monotonic() + timeout
    while True:
        text = requests.get(url, timeout=5).text
        if metric(text, name, **labels) >= at_least:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} stayed at {metric(text, name, **labels)} < {at_least}")
        time.sleep(0.05)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until ``close()``: then the port
    refuses connections and the open ones are cut, as when a database host goes away."""

    def __init__(self, target_port, port=0):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR: the port can be reopened
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.closed:
                    client.close()
                    upstream.close()
                    return
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        with self.lock:
            self.closed = True
            sockets, self.sockets = self.sockets, []
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        except OSError:
            pass
        self.listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
