"""Micro benchmark: workers.transport (aiohttp, one event loop) against workers.http.send in
threads (requests, today's send path), both sending to a fast local receiver.

    python bench/transport_bench.py --requests 20000 --concurrency 64

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
    """Answers every complete request with RESPONSE; keeps the connection open."""

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
            self.transport.write(RESPONSE)


def serve():
    async def main():
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
    asyncio.run(main())


def settings():
    from doo_webhooks.settings import from_env
    return from_env({"DOO_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8"})


def run_transport(url, total, concurrency):
    from workers.transport import Transport

    async def main():
        sender = Transport(settings(), per_host=concurrency, total=concurrency)
        left, failures = [total], [0]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                result = await sender.send("POST", url, body=BODY, headers=HEADERS, max_bytes=4096)
                failures[0] += result.status_code != 200
        await sender.send("POST", url, body=BODY, headers=HEADERS, max_bytes=4096)  # warm up
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await sender.close()
        return elapsed, cpu, failures[0]
    return asyncio.run(main())


def run_bare_aiohttp(url, total, concurrency):
    """aiohttp with nothing of ours (no guard, caps, deadline or header rules): our overhead."""
    import aiohttp

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


def run_threads(url, total, concurrency):
    from workers import http
    config = settings()
    lock, left, failures = threading.Lock(), [total], [0]

    def worker():
        session = http.session_for(config)
        http.send(session, "POST", url, body=BODY, headers=HEADERS, timeouts=config.timeouts, max_bytes=4096)
        ready.wait()
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
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
    ready.set()  # connections are warm (one request each) before the clock starts
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, time.process_time() - cpu, failures[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="run each sender this many times, alternating")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve()
    receiver = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        rows = {"aiohttp Transport, 1 loop": [], f"requests, {args.concurrency} threads": [],
                "bare aiohttp (reference)": []}
        for _ in range(args.rounds):
            for name, run in zip(rows, (run_transport, run_threads, run_bare_aiohttp)):
                rows[name].append(run(url, args.requests, args.concurrency))
        rates = {}
        print(f"{args.requests} POSTs of {len(BODY)} bytes, {args.concurrency} in flight, "
              f"best of {args.rounds}")
        for name, runs in rows.items():
            elapsed, cpu, failures = min(runs)
            rates[name] = args.requests / elapsed
            print(f"  {name:28} {rates[name]:8.0f} req/s   {cpu / args.requests * 1e6:6.0f} us CPU/req"
                  f"   {failures} not 200")
        ours, threads, bare = rates.values()
        print(f"  ratio Transport / threads: {ours / threads:.1f}x;  "
              f"Transport / bare aiohttp: {ours / bare:.2f}")
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
