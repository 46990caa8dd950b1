"""The send loop: claim due deliveries from the ledger in batches, send them on asyncio,
record their outcomes in batches.

The ledger, not a message per delivery, says what is due: a worker claims a batch of due,
unblocked rows (SKIP LOCKED, so workers take disjoint rows) whenever it has room, when
nudged (its own fan-out stored new rows, or another process asked) or every
DISPATCH_INTERVAL. Sends are sockets on one event loop, not threads, capped per receiver
host (workers.transport), so slow receivers never hold up healthy ones; and a receiver
host at its cap is left out of the next claim, so no lease runs out while a row waits.

First attempts and retries are separate lanes with room of their own (retries a quarter of
the first attempts'), so a storm of retries never starves first attempts (as Hook0 does);
and receivers at their host cap count for at most half of a lane's room, so however many
receivers are slow, healthy ones keep the other half.

An endpoint with a rate limit (max_per_second, workers.rate_limit) is sent to when the
limiter grants it, one waiter per endpoint at a time; a row whose turn would come after its
lease is safe to wait is given back unattempted (storage.ledger.give_back), due when its turn is
expected. An endpoint whose receiver asked for a pause (429/503 with Retry-After) gets no
request from this worker until then; the pause is recorded on the hook, and a row claimed
during it (it carries the hook's paused_until) is given back until its end.

Outcomes are written a batch at a time (workers.delivery.record_outcomes: one transaction, one
statement per table); a claimed row counts against its lane until its outcome is written,
which bounds how far sending may run ahead of the ledger.
"""

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime
import logging
import time

from workers import metrics
import storage.ledger
from storage import lifecycle
from storage.db import utcnow
from storage.lifecycle import Status
from workers import delivery
from workers import rate_limit
from workers.transport import Transport
from workers.transport import host_port

log = logging.getLogger(__name__)

SUMMARY_SECONDS = 10
MAX_THROTTLE_WAIT = 10.0  # seconds a claimed row may wait for its rate limit (and less than a third of its lease)


@dataclasses.dataclass
class _Gate:
    """The rows of one rate-limited endpoint waiting in this process: one asks the limiter at a
    time (the lock is fair, so they go in the order they came)."""
    endpoint: str
    interval: float
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    waiting: int = 0

    def full(self, seconds):
        """Whether the rows waiting here already fill ``seconds`` of turns."""
        return self.waiting * self.interval > seconds


class Sender:
    """One process's send loop. ``run`` blocks (give it a thread); ``nudge`` and ``stop``
    may be called from any thread."""

    def __init__(self, ctx, capacity=None, per_host=None, claim_batch=None):
        settings = ctx.settings
        self.ctx = ctx
        capacity = capacity or settings.send_concurrency
        self.room = {Status.PENDING: capacity, Status.RETRYING: max(1, capacity // 4)}
        self.used = {lane: 0 for lane in lifecycle.LANES}  # claimed and not yet recorded
        self.held = {lane: collections.Counter() for lane in lifecycle.LANES}  # the same, by receiver host
        self.claim_batch = claim_batch or settings.batch_size
        # hosts at their cap count for at most half of a lane's room (see _room), so the
        # sockets may number up to twice the rooms: that is the hard limit
        self.transport = Transport(settings, per_host=per_host or settings.host_concurrency,
                                   total=2 * sum(self.room.values()))
        self.sending = collections.Counter()  # endpoint -> requests in flight
        self.outcomes, self.cancelled, self.given_back = [], [], []
        self.gates = {}  # rate_limit.endpoint_key -> _Gate
        self.paused = {}  # rate_limit.endpoint_key -> until (UTC), as receivers asked
        self.throttle_wait = min(MAX_THROTTLE_WAIT, delivery.lease_seconds(settings) / 3)
        self.limiter = None
        self.counts = collections.Counter()
        self.loop = self._wake = self._recorded = self._flush = None
        self._stopping = False
        self._writing = False  # the recorder is writing a batch it took

    # --- from other threads ------------------------------------------------------------

    def nudge(self):
        """New rows may be due: claim now rather than at the next poll."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def stop(self):
        self._stopping = True
        self.nudge()

    def run(self, drain_seconds=30):
        asyncio.run(self._main(drain_seconds))

    # --- the loop ----------------------------------------------------------------------

    async def _main(self, drain_seconds):
        self.loop = asyncio.get_running_loop()
        self._wake, self._recorded, self._flush = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.limiter = rate_limit.limiter_for(self.ctx.settings)  # made on this loop, which its connections use
        ledger = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="ledger")
        recorder = asyncio.create_task(self._recorder(ledger))
        tasks = set()
        pause, summary_at = self.ctx.settings.dispatch_interval, time.monotonic() + SUMMARY_SECONDS
        try:
            while not self._stopping:
                # cleared before the claim, not after it: a nudge that comes while the claim
                # runs must start another round, not wait for the next poll
                self._wake.clear()
                try:
                    full = await self._claim_round(ledger, tasks)
                    pause = self.ctx.settings.dispatch_interval
                except Exception as exc:  # the database is away: try again, slower each time
                    log.warning("claiming deliveries failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
                    full, pause = False, min(pause * 2, 5)
                if time.monotonic() >= summary_at:
                    self._summary()
                    summary_at = time.monotonic() + SUMMARY_SECONDS
                if full:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except asyncio.TimeoutError:
                    pass
            await self._drain(tasks, drain_seconds)
        finally:
            recorder.cancel()
            await self.transport.close()
            await self.limiter.close()
            ledger.shutdown(wait=True)
            self._summary()

    async def _drain(self, tasks, seconds):
        """Stopping: what is in flight finishes (bounded by the timeouts) and is recorded; what
        is not done within ``seconds`` is left to the scheduler (its leases run out)."""
        deadline = self.loop.time() + seconds
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)
        while self.outcomes or self.cancelled or self.given_back or self._writing:
            self._recorded.clear()
            self._flush.set()
            try:
                await asyncio.wait_for(self._recorded.wait(), max(0.0, deadline - self.loop.time()))
            except asyncio.TimeoutError:
                log.warning("stopped with %d outcome(s) not recorded: the scheduler takes them back",
                            len(self.outcomes) + len(self.cancelled) + len(self.given_back))
                return

    async def _claim_round(self, ledger, tasks):
        """Claim what each lane has room for and start sending it; True when a lane's claim
        came back full (more may be due right now)."""
        full = False
        busy = self.transport.busy_hosts()
        skip = {endpoint for endpoint in self.sending if host_port(endpoint) in busy} if busy else set()
        # an endpoint whose rate limit already has this worker's turns for a while: claiming
        # more of it would only give them back
        skip.update(gate.endpoint for gate in self.gates.values() if gate.full(self.throttle_wait))
        for lane in lifecycle.LANES:
            room = self._room(lane, busy)
            if room <= 0:
                continue
            limit = min(room, self.claim_batch)
            rows = await self.loop.run_in_executor(ledger, self._claim, lane, limit, skip)
            full = full or (len(rows) == limit and room > limit)
            metrics.claimed(lane, len(rows))
            for row in rows:
                self.used[lane] += 1
                self.held[lane][host_port(row.endpoint)] += 1
                if row.group_deleted_at is not None:
                    self.cancelled.append((lane, row))
                    continue
                task = asyncio.create_task(self._send(lane, row))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if self.outcomes or self.cancelled or self.given_back:
            self._recorded.clear()
            self._flush.set()
        return full

    def _claim(self, lane, limit, skip_endpoints):
        with self.ctx.engine.begin() as conn:
            return storage.ledger.claim_due(conn, utcnow(), delivery.lease_seconds(self.ctx.settings), limit, lane,
                                            skip_endpoints)

    def _room(self, lane, busy):
        """What a lane may claim now. Rows of hosts at their cap (``busy``: never claimed
        more of until they have room) count for at most half of the lane's room: however many
        receivers are slow, the other half is there for the healthy ones."""
        held = self.held[lane]
        on_busy = sum(held[host] for host in busy if host in held)
        return self.room[lane] - (self.used[lane] - on_busy) - min(on_busy, self.room[lane] // 2)

    async def _send(self, lane, row):
        key = rate_limit.endpoint_key(row.group_id, row.endpoint) if (row.max_per_second or self.paused) else None
        back_at = self._paused_until(key) if self.paused else None
        if back_at is None and row.paused_until is not None and row.paused_until > utcnow():
            back_at = row.paused_until  # paused by another worker's receiver answer, recorded on the hook
        if back_at is None and row.max_per_second:
            back_at = await self._throttle(key, row.endpoint, row.max_per_second)
        if back_at is not None:  # not now: the row goes back unattempted, due at back_at
            self.given_back.append((lane, row, back_at))
            self._flush.set()
            return
        self.sending[row.endpoint] += 1
        try:
            outcome = await delivery.attempt_async(self.ctx, self.transport, row)
        finally:
            self.sending[row.endpoint] -= 1
            if not self.sending[row.endpoint]:
                del self.sending[row.endpoint]
        if outcome.get("paused_until"):
            self.paused[key or rate_limit.endpoint_key(row.group_id, row.endpoint)] = outcome["paused_until"]
        self.outcomes.append((lane, row.endpoint, outcome))
        self._flush.set()

    def _paused_until(self, key):
        """When the endpoint's receiver asked this worker to come back, or None."""
        until = self.paused.get(key)
        if until is not None and until <= utcnow():
            del self.paused[key]
            return None
        return until

    async def _throttle(self, key, endpoint, max_per_second):
        """Wait for the endpoint's turn under its rate limit. None: send now; a time (UTC): the
        turn would come too late for the row's lease, so it goes back until then."""
        gate = self.gates.get(key)
        if gate is None:
            gate = self.gates[key] = _Gate(endpoint, rate_limit.interval(max_per_second))
        expected = gate.waiting * gate.interval
        if gate.full(self.throttle_wait):  # the rows ahead already fill the wait: no need to queue
            return utcnow() + datetime.timedelta(seconds=expected)
        gate.waiting += 1
        deadline = self.loop.time() + self.throttle_wait
        try:
            await asyncio.wait_for(gate.lock.acquire(), self.throttle_wait)
        except asyncio.TimeoutError:
            gate.waiting -= 1
            self._forget_idle(key, gate)
            return utcnow() + datetime.timedelta(seconds=expected)
        try:
            while True:
                try:
                    wait = await self.limiter.wait_for(key, max_per_second)
                except Exception as exc:  # no limiter, no request: the limit is a promise
                    self._limiter_failed(exc)
                    wait = 1.0
                if wait <= 0:
                    return None
                if self._stopping or self.loop.time() + wait > deadline:  # stopping: no waiting
                    return utcnow() + datetime.timedelta(seconds=wait)
                await asyncio.sleep(wait)
        finally:
            gate.lock.release()
            gate.waiting -= 1
            self._forget_idle(key, gate)

    def _forget_idle(self, key, gate):
        """Drop an endpoint's gate once no row waits there (else every endpoint ever throttled stays)."""
        if not gate.waiting and not gate.lock.locked() and self.gates.get(key) is gate:
            del self.gates[key]

    def _limiter_failed(self, exc, _last=[0.0]):
        if time.monotonic() - _last[0] > SUMMARY_SECONDS:
            _last[0] = time.monotonic()
            log.warning("the rate limiter is unreachable (%s): rate-limited endpoints wait", exc)

    async def _recorder(self, ledger):
        """Write outcomes as they come, a batch per transaction, one transaction at a time."""
        while True:
            await self._flush.wait()
            self._flush.clear()
            while self.outcomes or self.cancelled or self.given_back:
                batch, self.outcomes = self.outcomes[:1000], self.outcomes[1000:]
                cancelled, self.cancelled = self.cancelled, []
                given_back, self.given_back = self.given_back, []
                self._writing = True
                try:
                    await self.loop.run_in_executor(
                        ledger, delivery.record_outcomes, self.ctx, [o for _, _, o in batch],
                        [row.id for _, row in cancelled],
                        [(row.id, lane, row.attempts, at) for lane, row, at in given_back])
                except Exception:
                    # _record retried for a minute: the leases will run out and the scheduler
                    # takes the rows back (a worker_lost attempt each); nothing is lost
                    log.exception("recording %d outcome(s) failed; their leases will expire", len(batch))
                finally:
                    self._writing = False
                for lane, endpoint, outcome in batch:
                    self._release(lane, endpoint)
                    self.counts[outcome["status"]] += 1
                    self.ctx.observe(outcome)
                for lane, row in cancelled:
                    self._release(lane, row.endpoint)
                    self.counts[Status.CANCELLED] += 1
                for lane, row, _ in given_back:
                    self._release(lane, row.endpoint)
                    self.counts["given back (rate limit or pause)"] += 1
                self._recorded.set()
                self._wake.set()  # room again, and the rows behind these may be unblocked now

    def _release(self, lane, endpoint):
        self.used[lane] -= 1
        held, host = self.held[lane], host_port(endpoint)
        held[host] -= 1
        if not held[host]:
            del held[host]

    def _summary(self):
        if self.counts:
            log.info("recorded %s", ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items())),
                     extra={"counts": dict(self.counts)})
            self.counts.clear()
