"""The receivers the bench sends to: bench/receiver.py (raw asyncio) in a process of its own,
or nginx when it is installed (a receiver that costs less CPU than anything in Python), behind
one interface (``Receivers``)."""

import json
import os
import socket
import sys
import time
import urllib.request

import harness


class ReceiverProcess:
    """bench/receiver.py in a process of its own (its CPU is not the pipeline's)."""

    kind = "bench/receiver.py (asyncio)"

    def __init__(self, behaviours, log_dir):
        self.control = harness.free_port()
        self.ports = {}
        args = []
        for name, spec in behaviours.items():
            self.ports[name] = harness.free_port()
            args += ["--port", f"{self.ports[name]}={spec}"]
        self.child = harness.Child("receiver", [sys.executable, os.path.join(harness.ROOT, "bench", "receiver.py"),
                                        "--control", str(self.control), *args], dict(os.environ), log_dir)
        deadline = time.monotonic() + 15
        while True:
            try:
                self._call("GET", "/stats")
                break
            except OSError:
                if time.monotonic() > deadline or not self.child.alive():
                    raise RuntimeError(f"receiver did not start:\n{self.child.tail()}")
                time.sleep(0.05)

    def _call(self, method, path):
        request = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", method=method,
                                         data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def counts(self):
        """{"port:status": n}"""
        return self._call("GET", "/stats")["counts"]

    def records(self):
        return [tuple(r) for r in self._call("GET", "/records")["records"]]

    def reset(self):
        self._call("POST", "/reset")

    def behave(self, name, mode):
        return self._call("POST", f"/behaviour?port={self.ports[name]}&mode={mode}")

    def cpu(self):
        return harness.cpu_seconds(self.child.pid)

    def close(self):
        self.child.stop()


NGINX_CONF = """daemon off;
worker_processes auto;
pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    log_format bench '$msec $server_port $status $http_webhook_id $http_x_doo_trigger';
    access_log {dir}/access.log bench;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000; keepalive_timeout 120s;
{servers}
}}
"""


class NginxReceiver:
    """nginx answering 200 at once (``return 200``) on the ports that need nothing else; records
    come from its access log ($msec, webhook-id, X-Doo-Trigger: no body, so matching a receipt
    to its emit needs the X-Doo-Trigger header)."""

    kind = "nginx"

    def __init__(self, binary, names, log_dir):
        self.dir = os.path.join(log_dir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.ports = {name: harness.free_port() for name in names}
        servers = "\n".join(f"    server {{ listen 127.0.0.1:{p} backlog=4096; location / {{ return 200; }} }}"
                            for p in self.ports.values())
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, servers=servers))
        self.log = os.path.join(self.dir, "access.log")
        self.child = harness.Child("nginx", [binary, "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
                           dict(os.environ), log_dir)
        deadline = time.monotonic() + 15
        port = next(iter(self.ports.values()))
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not self.child.alive():
                    raise RuntimeError(f"nginx did not start:\n{self.child.tail()}")
                time.sleep(0.05)
        self.reset()

    def records(self):
        found = []
        with open(self.log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5:
                    found.append((float(parts[0]), int(parts[1]), int(parts[2]),
                                  None if parts[3] == "-" else parts[3], None if parts[4] == "-" else parts[4], None))
        return found

    def counts(self):
        counts = {}
        for record in self.records():
            key = f"{record[1]}:{record[2]}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def reset(self):
        open(self.log, "w").close()  # nginx appends (O_APPEND): it writes on at the start

    def cpu(self):
        return harness.cpu_seconds(self.child.pid)

    def close(self):
        self.child.stop()


class Receivers:
    """The receivers of a run by name: nginx for "ok" (throughput, fan-out, baseline: where the
    receiver's own speed matters most) when it is installed, bench/receiver.py for every other
    (whose receipts must be matched to emits by the bench_seq in the body)."""

    def __init__(self, behaviours, log_dir, nginx=None):
        self.python = ReceiverProcess(behaviours, log_dir)
        self.nginx = None
        if nginx:
            self.nginx = NginxReceiver(nginx, ["ok"], log_dir)
        self.ports = {**self.python.ports, **(self.nginx.ports if self.nginx else {})}
        self.kind = f"nginx (200 at once) + {ReceiverProcess.kind}" if self.nginx else ReceiverProcess.kind

    def all(self):
        return [r for r in (self.python, self.nginx) if r is not None]

    def url(self, name, path="/hook"):
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def count(self, names, status=200):
        counts = {}
        for receiver in self.all():
            counts.update(receiver.counts())
        return sum(counts.get(f"{self.ports[n]}:{status}", 0) for n in names)

    def records(self):
        """[(time, port, status, webhook_id, trigger, seq)]"""
        return [r for receiver in self.all() for r in receiver.records()]

    def reset(self):
        for receiver in self.all():
            receiver.reset()

    def behave(self, name, mode):
        return self.python.behave(name, mode)

    def cpu(self):
        return sum(r.cpu() for r in self.all())

    def close(self):
        try:
            for receiver in self.all():
                receiver.close()
        finally:
            for receiver in self.all():
                receiver.child.kill()
