"""What a worker process runs: the intake loop (triggers -> deliveries) and the send loop
(due deliveries -> receivers -> ledger), each on a thread of its own, plus a listener that
wakes the send loop when another process made rows due (a redelivery, a replay, ...)."""

import logging
import threading

import redis

from storage.lifecycle import Status
from workers import intake
from workers.sender import Sender

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, ctx, consumer=None, stream_url=None):
        """``consumer``: an intake consumer (``intake.StreamConsumer`` or ``intake.InboxConsumer``)
        whose ``on_fanned_out`` this engine sets; ``stream_url``: the Redis to listen on for nudges."""
        self.ctx = ctx
        self.sender = Sender(ctx)
        self.consumer = consumer
        self.stream_url = stream_url
        self.stopping = threading.Event()
        self.nudged = threading.Event()  # the inbox consumer's wake-up (standalone)
        self.threads = []
        if consumer is not None:
            consumer.on_fanned_out = self._fanned_out

    @classmethod
    def for_streams(cls, ctx):
        streams = intake.RedisStreams(ctx.settings.broker_url)
        return cls(ctx, intake.StreamConsumer(streams, ctx.engine), stream_url=ctx.settings.broker_url)

    def _fanned_out(self, rows):
        if any(row["status"] == Status.PENDING for row in rows):
            self.sender.nudge()

    def start(self):
        self._thread("send", self.sender.run)
        if isinstance(self.consumer, intake.StreamConsumer):
            self.consumer.streams.ensure_groups()
            self._thread("intake", self.consumer.run, self.stopping)
        elif self.consumer is not None:
            self._thread("intake", self.consumer.run, self.stopping, self.nudged)
        if self.stream_url:
            self._thread("nudges", self._listen)
        return self

    def _thread(self, name, target, *args):
        thread = threading.Thread(target=self._guarded, args=(name, target, *args), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guarded(self, name, target, *args):
        try:
            target(*args)
        except Exception:
            log.exception("the %s loop stopped unexpectedly", name)

    def _listen(self):
        """Nudges from other processes; a lost connection only means waiting for the next poll."""
        while not self.stopping.is_set():
            try:
                streams = intake.RedisStreams(self.stream_url)
                pubsub = streams.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(streams.nudge_channel)
                while not self.stopping.is_set():
                    if pubsub.get_message(timeout=1.0):
                        self.sender.nudge()
            except redis.RedisError:
                self.stopping.wait(1)

    def nudge_intake(self):
        self.nudged.set()

    def stop(self, timeout=30):
        """Stop taking work; what is in flight is sent and recorded (up to ``timeout``)."""
        self.stopping.set()
        self.nudged.set()
        self.sender.stop()
        for thread in self.threads:
            thread.join(timeout)
