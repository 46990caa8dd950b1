"""Micro benchmark: workers.transport (aiohttp, one event loop) against workers.http.send in
threads (requests, today's send path), both sending to a fast local receiver.

    python bench/transport_bench.py --requests 20000 --concurrency 64
    python bench/transport_bench.py --slow-hosts 100 --delay 1 --requests 4000 --total 1000

The first compares the senders against one fast receiver. The second spreads requests over
receivers (one port each) that answer after ``--delay`` seconds: the Transport keeps
``--per-host`` in flight per receiver and ``--total`` overall, the threads ``--concurrency``;
the threads send a tenth as many requests, they would take too long otherwise.

The receiver runs in a child process (raw asyncio, HTTP/1.1 keep-alive, answers 200 at once),
so the CPU figures (time.process_time of this process) are the sender's alone. Both senders go
through the SSRF guard with 127.0.0.0/8 allowed, keep connections alive, and send the same
1 KB JSON body with the same headers. A third row, bare aiohttp with nothing of ours, shows
what the guard, caps, deadline and header rules cost. Prints one line per sender and the ratios.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BODY = json.dumps({"event": "order.created", "data": {"id": 1, "pad": "x" * 960}}).encode()
HEADERS = {"Content-Type": "application/json", "User-Agent": "doo-webhooks-bench", "webhook-id": "msg_1"}
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


class Answer(asyncio.Protocol):
    """Answers every complete request with RESPONSE, after ``delay`` seconds; keeps the
    connection open."""
    delay = 0

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            if self.delay:
                asyncio.get_running_loop().call_later(self.delay, self._answer)
            else:
                self.transport.write(RESPONSE)

    def _answer(self):
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


def serve(ports, delay):
    Answer.delay = delay

    async def main():
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(Answer, "127.0.0.1", 0, backlog=1024) for _ in range(ports)]
        print(",".join(str(server.sockets[0].getsockname()[1]) for server in servers), flush=True)
        await asyncio.Future()
    asyncio.run(main())


def settings():
    from ground.settings import from_env
    return from_env({"DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8"})


def run_transport(urls, total, concurrency, per_host=None):
    from workers.transport import Transport

    async def main():
        sender = Transport(settings(), per_host=per_host or concurrency, total=concurrency)
        left, failures = [total], [0]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                url = urls[left[0] % len(urls)]
                result = await sender.send("POST", url, body=BODY, headers=HEADERS, max_bytes=4096)
                failures[0] += result.status_code != 200
        for url in urls:  # warm up: resolve, connect
            await sender.send("POST", url, body=BODY, headers=HEADERS, max_bytes=4096)
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await sender.close()
        return elapsed, cpu, failures[0]
    return asyncio.run(main())


def run_bare_aiohttp(urls, total, concurrency):
    """aiohttp with nothing of ours (no guard, caps, deadline or header rules): our overhead."""
    import aiohttp

    [url] = urls

    async def main():
        async with aiohttp.ClientSession() as session:
            left = [total]

            async def worker():
                while left[0] > 0:
                    left[0] -= 1
                    async with session.post(url, data=BODY, headers=HEADERS) as response:
                        await response.read()
            async with session.post(url, data=BODY, headers=HEADERS) as response:  # warm up
                await response.read()
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - started, time.process_time() - cpu, 0
    return asyncio.run(main())


def run_threads(urls, total, concurrency):
    from workers import http
    config = settings()
    lock, left, failures = threading.Lock(), [total], [0]

    def worker():
        session = http.session_for(config)
        if len(urls) == 1:  # warm: one connection each before the clock starts
            http.send(session, "POST", urls[0], body=BODY, headers=HEADERS, timeouts=config.timeouts)
        ready.wait()
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
                url = urls[left[0] % len(urls)]
            result = http.send(session, "POST", url, body=BODY, headers=HEADERS,
                               timeouts=config.timeouts, max_bytes=4096)
            if result.status_code != 200:
                with lock:
                    failures[0] += 1
    ready = threading.Event()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    started, cpu = time.perf_counter(), time.process_time()
    ready.set()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, time.process_time() - cpu, failures[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (threads)")
    parser.add_argument("--rounds", type=int, default=1, help="run each sender this many times, alternating")
    parser.add_argument("--slow-hosts", type=int, default=0, help="receivers answering after --delay")
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--per-host", type=int, default=8, help="Transport's cap per receiver (slow mode)")
    parser.add_argument("--total", type=int, default=1000, help="Transport's total cap (slow mode)")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.delay)
    slow = args.slow_hosts > 0
    receiver = subprocess.Popen([sys.executable, __file__, "--serve", str(args.slow_hosts or 1),
                                 "--delay", str(args.delay if slow else 0)],
                                stdout=subprocess.PIPE, text=True)
    try:
        urls = [f"http://127.0.0.1:{port}/hook" for port in receiver.stdout.readline().strip().split(",")]
        if slow:
            few = args.requests // 10
            runs = {f"aiohttp Transport, {args.total} in flight": (
                        lambda: run_transport(urls, args.requests, args.total, args.per_host), args.requests),
                    f"requests, {args.concurrency} threads": (
                        lambda: run_threads(urls, few, args.concurrency), few)}
            print(f"POSTs to {len(urls)} receivers answering after {args.delay} s; Transport caps "
                  f"{args.per_host} per receiver, {args.total} in all; best of {args.rounds}")
        else:
            runs = {"aiohttp Transport, 1 loop": (
                        lambda: run_transport(urls, args.requests, args.concurrency), args.requests),
                    f"requests, {args.concurrency} threads": (
                        lambda: run_threads(urls, args.requests, args.concurrency), args.requests),
                    "bare aiohttp (reference)": (
                        lambda: run_bare_aiohttp(urls, args.requests, args.concurrency), args.requests)}
            print(f"{args.requests} POSTs of {len(BODY)} bytes, {args.concurrency} in flight, "
                  f"best of {args.rounds}")
        results = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, (run, _) in runs.items():
                results[name].append(run())
        rates = []
        for name, runs_of_sender in results.items():
            count = runs[name][1]
            elapsed, cpu, failures = min(runs_of_sender)
            rates.append(count / elapsed)
            print(f"  {name:30} {count:6} req {rates[-1]:8.0f} req/s  {cpu / count * 1e6:6.0f} us CPU/req"
                  f"   {failures} not 200")
        line = f"  ratio Transport / threads: {rates[0] / rates[1]:.1f}x"
        if not slow:
            line += f";  Transport / bare aiohttp: {rates[0] / rates[2]:.2f}"
        print(line)
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
