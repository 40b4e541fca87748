"""The tracer: buffers spans per run as columns and sends them to Kafka without blocking the agent.

Spans are appended to per-run column lists and leave as one Kafka message per run when
`max_batch_spans` are buffered, when the oldest buffered span is `linger_ms` old (a background
flusher thread checks), when the run closes, or on `flush()`/`close()`. Frames go one per message.
Nothing here raises into the agent: producer errors are logged (rate-limited) and counted in
`Tracer.stats`.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol


from pipeline.config import Settings
from pipeline.sdk.run import FRAME_KINDS, ROW_FIELDS, Run
from pipeline.wire.frames import Frame, encode_frame, is_valid_content_type
from pipeline.wire.spans import DEFAULT_SDK, encode_span_batch

logger = logging.getLogger(__name__)

# Room for the frame's Avro fields and Kafka record overhead on top of the frame data itself.
FRAME_OVERHEAD_BYTES = 64 * 1024
# Upper bound on how long the flusher sleeps when nothing is buffered, so it still serves
# delivery reports promptly.
_IDLE_POLL_S = 0.1
# How long the flusher lets the producer drain after its local queue was full.
_QUEUE_FULL_BACKOFF_S = 0.1


class ProducerLike(Protocol):
    """The part of confluent_kafka.Producer the tracer uses."""

    def produce(self, topic: str, value: bytes | None = ..., key: bytes | None = ..., **kwargs: Any) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...


@dataclass
class TracerStats:
    """Counters of one tracer; `Tracer.stats` returns a copy.

    A span is buffered until it is handed to the producer, then in flight until its delivery
    report arrives, then delivered or dropped with reason delivery_failed.
    """

    spans_buffered: int = 0
    spans_in_flight: int = 0
    spans_sent: int = 0
    spans_delivered: int = 0
    spans_dropped_by_reason: dict[str, int] = field(default_factory=dict)
    frames_sent: int = 0
    frames_delivered: int = 0
    frames_dropped_by_reason: dict[str, int] = field(default_factory=dict)
    callback_errors: int = 0

    @property
    def spans_dropped(self) -> int:
        return sum(self.spans_dropped_by_reason.values())

    @property
    def frames_dropped(self) -> int:
        return sum(self.frames_dropped_by_reason.values())


class _RateLimitedLog:
    """Logs at most one message per key per interval and reports how many it suppressed."""

    def __init__(self, target: logging.Logger, interval_s: float = 10.0) -> None:
        self._target = target
        self._interval_s = interval_s
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_logged.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last_logged[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._target.log(level, message, *args, exc_info=exc_info)


class _ColumnBuffer:
    """Buffered spans of one run: one list per column, appended to in ROW_FIELDS order."""

    __slots__ = ("run_id", "agent", "columns", "appenders", "size", "first_monotonic")

    def __init__(self, run_id: str, agent: str, first_monotonic: float) -> None:
        self.run_id = run_id
        self.agent = agent
        self.columns: dict[str, list[Any]] = {name: [] for name in ROW_FIELDS}
        self.appenders = tuple(self.columns[name].append for name in ROW_FIELDS)
        self.size = 0
        self.first_monotonic = first_monotonic

    def append(self, row: tuple[Any, ...]) -> None:
        for append, value in zip(self.appenders, row):
            append(value)
        self.size += 1


def create_producer(settings: Settings, linger_ms: int) -> ProducerLike:
    """Create a confluent-kafka producer for spans and frames, configured from `settings`."""
    from confluent_kafka import Producer

    from pipeline.kafka_clients import librdkafka_config

    config = {
        **librdkafka_config(settings),
        "client.id": "spanline-sdk",
        # murmur2 is the Java clients' and aiokafka's partitioner: a run id lands on the same
        # partition whichever client produced it, which faust's run tables rely on.
        "partitioner": "murmur2_random",
        "linger.ms": linger_ms,
        "compression.type": "zstd",
        "enable.idempotence": True,
        "acks": "all",
        # librdkafka rejects messages over 1,000,000 bytes by default, below the frame limit.
        "message.max.bytes": settings.max_frame_bytes + FRAME_OVERHEAD_BYTES,
        "error_cb": _log_producer_error,
        # Sends librdkafka's own log lines through Python logging instead of raw stderr; they are
        # emitted from inside poll() and flush().
        "logger": logging.getLogger("pipeline.sdk.librdkafka"),
    }
    return Producer(config)


_producer_error_log = _RateLimitedLog(logger)


def _log_producer_error(error: Any) -> None:
    _producer_error_log.log(logging.WARNING, "producer", "Kafka producer error: %s", error)


class Tracer:
    """Entry point of the SDK: creates runs and sends their spans and frames to Kafka.

    Call `close()` before the process exits; an atexit hook closes a forgotten tracer with a
    5-second timeout.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        producer: ProducerLike | None = None,
        linger_ms: int = 50,
        max_batch_spans: int = 500,
        max_buffered_spans: int = 100_000,
        sdk_name: str = DEFAULT_SDK,
    ) -> None:
        if linger_ms < 0:
            raise ValueError(f"linger_ms={linger_ms} is negative; use 0 or more milliseconds")
        if max_batch_spans < 1:
            raise ValueError(f"max_batch_spans={max_batch_spans} must be at least 1")
        if max_buffered_spans < max_batch_spans:
            raise ValueError(
                f"max_buffered_spans={max_buffered_spans} is below max_batch_spans={max_batch_spans}; "
                "a full batch could never be buffered"
            )
        self.settings = settings or Settings.from_env()
        self.linger_ms = linger_ms
        self.max_batch_spans = max_batch_spans
        self.max_buffered_spans = max_buffered_spans
        self.sdk_name = sdk_name
        self._producer = producer if producer is not None else create_producer(self.settings, linger_ms)
        self._linger_s = linger_ms / 1000

        # _lock guards buffers and counters and is never held while calling the producer, because
        # the producer runs delivery callbacks (which take _lock) inside poll() and flush().
        self._lock = threading.Lock()
        # _send_lock makes encode-and-produce sequential, so batches of one run keep their order.
        self._send_lock = threading.Lock()
        self._pending: dict[tuple[str, str], _ColumnBuffer] = {}
        self._ready: deque[_ColumnBuffer] = deque()
        self._stats = TracerStats()
        self._closed = False
        self._log = _RateLimitedLog(logger)

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run_flusher, name="spanline-flusher", daemon=True)
        self._flusher.start()
        atexit.register(self._close_at_exit)

    # Public API

    def run(self, agent: str, run_id: str | None = None, *, root_span: bool = True) -> Run:
        """Start a run of `agent`. Use it as a context manager so its spans go out when it ends.

        The run records a root span of kind agent when it ends (see `Run`); an exception leaving
        the `with` block marks it failed.
        """
        return Run(self, agent, run_id, root_span=root_span)

    @property
    def stats(self) -> TracerStats:
        with self._lock:
            return copy.deepcopy(self._stats)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Send every buffered span and wait for delivery reports.

        Returns the number of messages still awaiting a delivery report (0 when all arrived).
        """
        deadline = time.monotonic() + timeout_s
        self._move_to_ready(everything=True)
        while not self._send_ready():
            if time.monotonic() >= deadline:
                break
            self._poll_producer(_QUEUE_FULL_BACKOFF_S)
        try:
            return int(self._producer.flush(max(0.0, deadline - time.monotonic())))
        except Exception as error:  # the SDK never raises into the agent
            self._log.log(logging.ERROR, "flush", "producer flush failed: %s", error)
            return -1

    def close(self, timeout_s: float = 30.0) -> TracerStats:
        """Flush everything, stop the flusher thread and return the final stats.

        Spans still unsent when the timeout expires are counted as dropped (close_timeout).
        Spans still in flight stay counted as in flight because their outcome is unknown.
        """
        with self._lock:
            if self._closed:
                return copy.deepcopy(self._stats)
            self._closed = True
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wake.set()
        self._flusher.join(max(0.0, deadline - time.monotonic()))
        remaining = self.flush(max(0.0, deadline - time.monotonic()))
        atexit.unregister(self._close_at_exit)

        with self._lock:
            leftover = list(self._ready) + list(self._pending.values())
            self._ready.clear()
            self._pending.clear()
            for buffer in leftover:
                self._drop_buffered_locked("close_timeout", buffer.size)
            stats = copy.deepcopy(self._stats)
        unsent = sum(buffer.size for buffer in leftover)
        if unsent:
            logger.error("tracer closed with unsent spans: dropped=%d timeout_s=%s", unsent, timeout_s)
        if remaining:
            logger.warning(
                "tracer closed before all delivery reports arrived: messages=%d spans_in_flight=%d",
                remaining,
                stats.spans_in_flight,
            )
        logger.info(
            "tracer closed: spans_delivered=%d spans_dropped=%d frames_delivered=%d frames_dropped=%d",
            stats.spans_delivered,
            stats.spans_dropped,
            stats.frames_delivered,
            stats.frames_dropped,
        )
        return stats

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc_info: object) -> bool:
        self.close()
        return False

    # Called by Run

    def _append_span(self, run: Run, row: tuple[Any, ...]) -> None:
        wake = False
        dropped_reason = None
        with self._lock:
            stats = self._stats
            if self._closed:
                dropped_reason = "tracer_closed"
            elif stats.spans_buffered + stats.spans_in_flight >= self.max_buffered_spans:
                dropped_reason = "buffer_full"
            else:
                key = (run.run_id, run.agent)
                buffer = self._pending.get(key)
                if buffer is None:
                    buffer = _ColumnBuffer(run.run_id, run.agent, time.monotonic())
                    self._pending[key] = buffer
                buffer.append(row)
                stats.spans_buffered += 1
                if buffer.size >= self.max_batch_spans:
                    del self._pending[key]
                    self._ready.append(buffer)
                    wake = True
            if dropped_reason is not None:
                self._count_locked(stats.spans_dropped_by_reason, dropped_reason, 1)
        if wake:
            self._wake.set()
        if dropped_reason == "buffer_full":
            self._log.log(
                logging.ERROR,
                "buffer_full",
                "span dropped because %d spans are buffered or in flight: run_id=%s; "
                "Kafka may be unreachable at %s, or raise max_buffered_spans",
                self.max_buffered_spans,
                run.run_id,
                self.settings.kafka_bootstrap,
            )
        elif dropped_reason == "tracer_closed":
            self._log.log(
                logging.ERROR, "tracer_closed", "span dropped because the tracer is closed: run_id=%s", run.run_id
            )

    def _drop_invalid_span(self, run: Run, span_id: str, step: Any, error: Exception) -> None:
        with self._lock:
            self._count_locked(self._stats.spans_dropped_by_reason, "invalid_span", 1)
        self._log.log(
            logging.ERROR,
            "invalid_span",
            "span dropped because a value is invalid: run_id=%s step=%s span_id=%s error=%s",
            run.run_id,
            step,
            span_id,
            error,
        )

    def _close_run(self, run: Run) -> None:
        with self._lock:
            buffer = self._pending.pop((run.run_id, run.agent), None)
            if buffer is None:
                return
            self._ready.append(buffer)
        self._wake.set()

    def _send_frame(
        self,
        run: Run,
        data: bytes,
        *,
        step: int,
        content_type: str,
        kind: str,
        capture_ns: int,
        span_id: str | None,
        width: int | None,
        height: int | None,
    ) -> str:
        try:
            if not isinstance(data, bytes):
                data = bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            seq = run.next_frame_seq()
        except Exception as error:  # for example data that is not bytes-like
            self._drop_frame(run, step, "invalid_frame", "frame dropped: data is not bytes: %s", error)
            return ""
        if self._closed:
            self._drop_frame(run, step, "tracer_closed", "frame dropped because the tracer is closed")
            return digest
        limit = self.settings.max_frame_bytes
        if len(data) > limit:
            self._drop_frame(
                run,
                step,
                "frame_too_large",
                "frame too large: seq=%d size=%d bytes, limit=%d bytes; "
                "raise SPANLINE_MAX_FRAME_BYTES or downscale the capture",
                seq,
                len(data),
                limit,
            )
            return digest
        if kind not in FRAME_KINDS:
            self._drop_frame(
                run, step, "invalid_frame", "frame dropped: kind %r is not one of %s", kind, sorted(FRAME_KINDS)
            )
            return digest
        if not isinstance(content_type, str) or not is_valid_content_type(content_type):
            self._drop_frame(
                run, step, "invalid_frame",
                "frame dropped: content type %r is not printable ASCII of the form type/subtype", content_type,
            )
            return digest

        try:
            frame = Frame(
                run_id=run.run_id,
                step=int(step),
                seq=seq,
                capture_ns=int(capture_ns),
                kind=kind,
                content_type=str(content_type),
                data=data,
                sha256=digest,
                span_id=span_id,
                width=None if width is None else int(width),
                height=None if height is None else int(height),
            )
            value = encode_frame(frame)
        except Exception as error:  # WireError, or a conversion failing on a caller's value
            self._drop_frame(run, step, "invalid_frame", "frame dropped: %s", error)
            return digest

        on_delivery = partial(self._on_frame_delivered, run.run_id, seq)
        try:
            self._producer.produce(
                self.settings.frames_topic, value=value, key=run.run_id.encode(), on_delivery=on_delivery
            )
        except BufferError:
            self._drop_frame(
                run, step, "producer_queue_full", "frame dropped because the producer queue is full"
            )
            return digest
        except Exception as error:  # KafkaException, or any other producer failure
            self._drop_frame(run, step, "produce_failed", "frame produce failed: %s", error)
            return digest
        with self._lock:
            self._stats.frames_sent += 1
        return digest

    # Flushing

    def _run_flusher(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._next_wait_s())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._move_to_ready(everything=False)
                if not self._send_ready():
                    self._poll_producer(_QUEUE_FULL_BACKOFF_S)
                self._poll_producer(0)
            except Exception:  # keep the thread alive whatever happens: it is the only flusher
                self._log.log(logging.ERROR, "flusher", "span flusher failed; retrying", exc_info=True)
                time.sleep(_QUEUE_FULL_BACKOFF_S)

    def _next_wait_s(self) -> float:
        with self._lock:
            if self._ready:
                return 0.0
            if not self._pending:
                return _IDLE_POLL_S
            oldest = min(buffer.first_monotonic for buffer in self._pending.values())
        wait = oldest + self._linger_s - time.monotonic()
        return min(max(wait, 0.0), _IDLE_POLL_S)

    def _move_to_ready(self, *, everything: bool) -> None:
        now = time.monotonic()
        with self._lock:
            due = [
                key
                for key, buffer in self._pending.items()
                if everything or now - buffer.first_monotonic >= self._linger_s
            ]
            for key in due:
                self._ready.append(self._pending.pop(key))

    def _send_ready(self) -> bool:
        """Send ready batches in order; return False when the producer queue was full."""
        with self._send_lock:
            while True:
                with self._lock:
                    if not self._ready:
                        return True
                    buffer = self._ready.popleft()
                if not self._send_batch(buffer):
                    with self._lock:
                        self._ready.appendleft(buffer)
                    return False

    def _send_batch(self, buffer: _ColumnBuffer) -> bool:
        """Encode and produce one batch; return False only when it should be retried later."""
        try:
            value = encode_span_batch(buffer.run_id, buffer.agent, buffer.columns, sdk=self.sdk_name)
        except Exception as error:  # WireError; build_row already checked each span's values
            self._drop_batch(buffer, "encode_failed", error)
            return True
        on_delivery = partial(self._on_spans_delivered, buffer.run_id, buffer.size)
        try:
            self._producer.produce(
                self.settings.spans_topic, value=value, key=buffer.run_id.encode(), on_delivery=on_delivery
            )
        except BufferError:
            self._log.log(
                logging.WARNING,
                "producer_queue_full",
                "producer queue full, retrying span batch: run_id=%s spans=%d",
                buffer.run_id,
                buffer.size,
            )
            return False
        except Exception as error:  # KafkaException, or any other producer failure
            self._drop_batch(buffer, "produce_failed", error)
            return True
        with self._lock:
            stats = self._stats
            stats.spans_buffered -= buffer.size
            stats.spans_in_flight += buffer.size
            stats.spans_sent += buffer.size
        return True

    def _poll_producer(self, timeout_s: float) -> None:
        try:
            self._producer.poll(timeout_s)
        except Exception as error:
            self._log.log(logging.ERROR, "poll", "producer poll failed: %s", error)

    # Delivery reports: run inside producer.poll()/flush(), on the flusher or the closing thread.

    def _on_spans_delivered(self, run_id: str, size: int, error: Any, message: Any) -> None:
        try:
            with self._lock:
                stats = self._stats
                stats.spans_in_flight -= size
                if error is None:
                    stats.spans_delivered += size
                else:
                    self._count_locked(stats.spans_dropped_by_reason, "delivery_failed", size)
            if error is not None:
                self._log.log(
                    logging.ERROR,
                    "delivery_failed",
                    "span batch delivery failed: run_id=%s spans=%d error=%s",
                    run_id,
                    size,
                    error,
                )
        except Exception:
            self._count_callback_error()

    def _on_frame_delivered(self, run_id: str, seq: int, error: Any, message: Any) -> None:
        try:
            with self._lock:
                if error is None:
                    self._stats.frames_delivered += 1
                else:
                    self._count_locked(self._stats.frames_dropped_by_reason, "delivery_failed", 1)
            if error is not None:
                self._log.log(
                    logging.ERROR,
                    "frame_delivery_failed",
                    "frame delivery failed: run_id=%s seq=%d error=%s",
                    run_id,
                    seq,
                    error,
                )
        except Exception:
            self._count_callback_error()

    def _count_callback_error(self) -> None:
        with self._lock:
            self._stats.callback_errors += 1
        self._log.log(logging.ERROR, "callback", "delivery report handling failed", exc_info=True)

    # Helpers

    @staticmethod
    def _count_locked(counts: dict[str, int], reason: str, amount: int) -> None:
        counts[reason] = counts.get(reason, 0) + amount

    def _drop_buffered_locked(self, reason: str, size: int) -> None:
        self._stats.spans_buffered -= size
        self._count_locked(self._stats.spans_dropped_by_reason, reason, size)

    def _drop_batch(self, buffer: _ColumnBuffer, reason: str, error: Exception) -> None:
        with self._lock:
            self._drop_buffered_locked(reason, buffer.size)
        self._log.log(
            logging.ERROR,
            reason,
            "span batch dropped (%s): run_id=%s spans=%d error=%s",
            reason,
            buffer.run_id,
            buffer.size,
            error,
        )

    def _drop_frame(self, run: Run, step: Any, reason: str, message: str, *args: Any) -> None:
        with self._lock:
            self._count_locked(self._stats.frames_dropped_by_reason, reason, 1)
        self._log.log(
            logging.ERROR, "frame:" + reason, message + " (run_id=%s step=%s)", *args, run.run_id, step
        )

    def _close_at_exit(self) -> None:
        self.close(timeout_s=5.0)
