"""Tracer batching, numbering, error capture and loss accounting, against an in-memory producer.

The in-memory producer only records produce() calls and runs delivery callbacks on poll() and
flush(), the way confluent_kafka.Producer does. Every recorded value is decoded with the real wire
decoder, so these tests also check the bytes the SDK would send.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.config import Settings
from pipeline.pricing.usage import Usage
from pipeline.sdk import Tracer
from pipeline.wire import decode_frame, decode_span_batch

SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", max_frame_bytes=1024)


class RecordingProducer:
    """Stand-in for confluent_kafka.Producer: records messages, reports them on poll()/flush()."""

    def __init__(self, *, delivery_error: object = None, produce_error: Exception | None = None) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self._pending: list = []
        self._lock = threading.Lock()
        self.delivery_error = delivery_error
        self.produce_error = produce_error

    def produce(self, topic, value=None, key=None, on_delivery=None, **kwargs):
        if self.produce_error is not None:
            raise self.produce_error
        with self._lock:
            self.messages.append((topic, key, value))
            self._pending.append(on_delivery)

    def poll(self, timeout=0):
        with self._lock:
            pending, self._pending = self._pending, []
        for callback in pending:
            callback(self.delivery_error, None)
        return len(pending)

    def flush(self, timeout=0):
        self.poll()
        return 0

    def span_batches(self):
        return [decode_span_batch(value) for topic, _key, value in self.messages if topic == SETTINGS.spans_topic]

    def frames(self):
        return [decode_frame(value) for topic, _key, value in self.messages if topic == SETTINGS.frames_topic]


@pytest.fixture
def producer():
    return RecordingProducer()


@pytest.fixture
def tracer(producer):
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=60_000)
    yield tracer
    tracer.close(timeout_s=1)


def only_batch(producer: RecordingProducer):
    batches = producer.span_batches()
    assert len(batches) == 1
    return batches[0]


def test_run_spans_leave_as_one_message(tracer, producer):
    with tracer.run("shopper", run_id="run-1", root_span=False) as run:
        with run.step() as step:
            for index in range(3):
                with step.span("tool", f"call {index}"):
                    pass
    tracer.flush()

    batch = only_batch(producer)
    topic, key, _value = producer.messages[0]
    assert topic == "spanline.spans.v1"
    assert key == b"run-1"
    assert batch.run_id == "run-1"
    assert batch.agent == "shopper"
    assert batch.sdk.startswith("spanline-python/")
    assert batch.size == 3
    assert batch.columns["name"] == ["call 0", "call 1", "call 2"]


def test_full_batches_split_at_max_batch_spans(producer):
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=60_000, max_batch_spans=3)
    run = tracer.run("a", root_span=False)
    for index in range(7):
        run.record_span("plan", f"p{index}", 1, 2, step=1)
    stats = tracer.close(timeout_s=5)

    sizes = [batch.size for batch in producer.span_batches()]
    assert sizes == [3, 3, 1]
    names = [name for batch in producer.span_batches() for name in batch.columns["name"]]
    assert names == [f"p{index}" for index in range(7)]
    assert stats.spans_delivered == 7
    assert stats.spans_buffered == 0
    assert stats.spans_in_flight == 0


def test_linger_flushes_without_close(producer):
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=20)
    try:
        tracer.run("a", root_span=False).record_span("llm", "x", 1, 2, step=1)
        deadline = time.monotonic() + 5
        while not producer.messages and time.monotonic() < deadline:
            time.sleep(0.01)

        assert len(producer.messages) == 1
    finally:
        tracer.close(timeout_s=1)


def test_step_numbers_count_from_one(tracer, producer):
    with tracer.run("a", root_span=False) as run:
        for _ in range(3):
            with run.step() as step:
                with step.span("browser", "click"):
                    pass
    tracer.flush()

    assert only_batch(producer).columns["step"] == [1, 2, 3]


def test_ids_and_parents(tracer, producer):
    with tracer.run("a") as run:
        with run.step() as step:
            with step.span("agent", "outer") as outer:
                with step.span("llm", "inner") as inner:
                    pass
            with step.span("tool", "sibling") as sibling:
                pass
    tracer.flush()

    columns = only_batch(producer).columns
    by_name = {name: index for index, name in enumerate(columns["name"])}
    assert re.fullmatch(r"[0-9a-f]{32}", run.trace_id)
    assert set(columns["trace_id"]) == {run.trace_id}
    assert all(re.fullmatch(r"[0-9a-f]{16}", span_id) for span_id in columns["span_id"])
    assert len(set(columns["span_id"])) == 4
    assert columns["span_id"][by_name["outer"]] == outer.span_id
    assert columns["parent_span_id"][by_name["outer"]] == run.root_span_id
    assert columns["parent_span_id"][by_name["inner"]] == outer.span_id
    assert columns["parent_span_id"][by_name["sibling"]] == run.root_span_id
    assert inner.span_id != sibling.span_id


def test_run_ends_with_its_root_agent_span(tracer, producer):
    before = time.time_ns()
    with tracer.run("shopper", run_id="run-1") as run:
        with run.step() as step:
            with step.span("tool", "search"):
                pass
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["name"] == ["search", "shopper"]
    assert columns["kind"][1] == "agent"
    assert columns["span_id"][1] == run.root_span_id
    assert columns["parent_span_id"] == [run.root_span_id, ""]
    assert columns["status"][1] == "ok"
    assert before <= columns["start_ns"][1] <= columns["start_ns"][0]
    assert columns["end_ns"][1] >= columns["end_ns"][0]


def test_run_closed_twice_records_one_root_span(tracer, producer):
    run = tracer.run("a")
    run.close()
    run.close()
    tracer.flush()

    assert only_batch(producer).columns["kind"] == ["agent"]


def test_exception_leaving_the_run_fails_its_root_span(tracer, producer):
    with pytest.raises(RuntimeError, match="boom"):
        with tracer.run("a") as run:
            with run.step() as step:
                with step.span("tool", "fails"):
                    raise RuntimeError("boom")
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["kind"] == ["tool", "agent"]
    assert columns["status"] == ["error", "error"]
    assert columns["error_message"] == ["RuntimeError: boom", "RuntimeError: boom"]


def test_run_set_error_fails_the_root_span_without_an_exception(tracer, producer):
    with tracer.run("a") as run:
        run.set_error("gave up after 3 replans")
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["status"] == ["error"]
    assert columns["error_message"] == ["gave up after 3 replans"]


def test_run_id_defaults_to_uuid_hex(tracer):
    run = tracer.run("a", root_span=False)

    assert re.fullmatch(r"[0-9a-f]{32}", run.run_id)
    assert tracer.run("a", root_span=False).run_id != run.run_id


def test_timings_come_from_wall_clock(tracer, producer):
    before = time.time_ns()
    with tracer.run("a", root_span=False) as run:
        with run.step() as step:
            with step.span("tool", "sleep"):
                time.sleep(0.01)
    after = time.time_ns()
    tracer.flush()

    columns = only_batch(producer).columns
    assert before <= columns["start_ns"][0]
    assert columns["end_ns"][0] - columns["start_ns"][0] >= 10_000_000
    assert columns["end_ns"][0] <= after


def test_exception_marks_error_and_reraises(tracer, producer):
    with pytest.raises(RuntimeError, match="boom"):
        with tracer.run("a", root_span=False) as run:
            with run.step() as step:
                with step.span("tool", "fails"):
                    raise RuntimeError("boom")
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["status"] == ["error"]
    assert columns["error_message"] == ["RuntimeError: boom"]


def test_set_error_without_exception(tracer, producer):
    with tracer.run("a", root_span=False) as run:
        with run.step() as step:
            with step.span("inbox", "send") as span:
                span.set_error("mailbox full")
            with step.span("inbox", "read"):
                pass
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["status"] == ["error", "ok"]
    assert columns["error_message"] == ["mailbox full", None]


def test_setters_fill_columns(tracer, producer):
    usage = Usage(input_tokens=100, cache_read_tokens=20, output_tokens=7, reasoning_tokens=None, source="openai.chat")
    with tracer.run("a", root_span=False) as run:
        with run.step() as step:
            with step.span("llm", "chat", selector="#buy") as span:
                span.set_model("openai", "gpt-4o-mini")
                span.set_usage(usage)
                span.set_tool("search", '{"q": "shoes",')
                span.set_attribute("attempt", 2)
                span.set_reported_cost(0.0012)
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["provider"] == ["openai"]
    assert columns["model"] == ["gpt-4o-mini"]
    assert columns["input_tokens"] == [100]
    assert columns["cache_read_tokens"] == [20]
    assert columns["output_tokens"] == [7]
    assert columns["reasoning_tokens"] == [None]
    assert columns["cache_write_tokens"] == [None]
    assert columns["usage_source"] == ["openai.chat"]
    assert columns["tool_name"] == ["search"]
    assert columns["tool_args"] == ['{"q": "shoes",']
    assert json.loads(columns["attributes"][0]) == {"selector": "#buy", "attempt": 2}
    assert columns["reported_cost_usd"] == [0.0012]


def test_span_keywords_set_fields(tracer, producer):
    with tracer.run("a", root_span=False) as run:
        with run.step() as step:
            with step.span("llm", "chat", provider="anthropic", model="claude", usage=Usage(output_tokens=3)):
                pass
    tracer.flush()

    columns = only_batch(producer).columns
    assert columns["provider"] == ["anthropic"]
    assert columns["output_tokens"] == [3]
    assert columns["attributes"] == ["{}"]


def test_record_span_keeps_given_ids_and_times(tracer, producer):
    run = tracer.run("importer", run_id="recorded-run", root_span=False)
    returned = run.record_span(
        "llm",
        "generation",
        1_700_000_000_000_000_000,
        1_700_000_000_500_000_000,
        step=4,
        span_id="00000000000000aa",
        parent_span_id="00000000000000bb",
        trace_id="f" * 32,
        status="unset",
        provider="openai",
        model="gpt-4o",
        usage=Usage(input_tokens=5, output_tokens=1, source="langfuse"),
        tool_args="not json",
        attributes={},
        reported_cost_usd=0.5,
    )
    run.close()
    tracer.flush()

    columns = only_batch(producer).columns
    assert returned == "00000000000000aa"
    assert columns["span_id"] == ["00000000000000aa"]
    assert columns["parent_span_id"] == ["00000000000000bb"]
    assert columns["trace_id"] == ["f" * 32]
    assert columns["start_ns"] == [1_700_000_000_000_000_000]
    assert columns["end_ns"] == [1_700_000_000_500_000_000]
    assert columns["step"] == [4]
    assert columns["status"] == ["unset"]
    assert columns["tool_args"] == ["not json"]
    assert columns["attributes"] == ["{}"]


def test_invalid_span_dropped_others_sent(tracer, producer):
    run = tracer.run("a", root_span=False)
    run.record_span("llm", "good", 1, 2, step=1)
    run.record_span("telepathy", "bad kind", 1, 2, step=1)
    run.record_span("llm", "bad tokens", 1, 2, step=1, usage=Usage(input_tokens="many"))
    run.close()
    tracer.flush()

    assert only_batch(producer).columns["name"] == ["good"]
    assert tracer.stats.spans_dropped_by_reason == {"invalid_span": 2}


def test_buffer_bound_drops_new_spans():
    producer = RecordingProducer(produce_error=BufferError("queue full"))
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=0, max_batch_spans=2, max_buffered_spans=4)
    run = tracer.run("a", root_span=False)
    for index in range(6):
        run.record_span("tool", f"t{index}", 1, 2, step=1)
    buffered = tracer.stats

    stats = tracer.close(timeout_s=0.5)

    assert buffered.spans_buffered == 4
    assert buffered.spans_dropped_by_reason == {"buffer_full": 2}
    assert stats.spans_dropped_by_reason == {"buffer_full": 2, "close_timeout": 4}
    assert stats.spans_buffered == 0
    assert producer.messages == []


def test_in_flight_spans_count_toward_bound():
    class SilentProducer(RecordingProducer):
        def poll(self, timeout=0):
            return 0

        def flush(self, timeout=0):
            return len(self.messages)

    producer = SilentProducer()
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=60_000, max_batch_spans=2, max_buffered_spans=4)
    run = tracer.run("a", root_span=False)
    for index in range(4):
        run.record_span("tool", f"t{index}", 1, 2, step=1)
    tracer.flush(timeout_s=0.1)
    run.record_span("tool", "over the bound", 1, 2, step=1)

    stats = tracer.close(timeout_s=0.5)

    assert stats.spans_in_flight == 4
    assert stats.spans_dropped_by_reason == {"buffer_full": 1}


def test_delivery_failure_counted_not_raised():
    producer = RecordingProducer(delivery_error=KafkaError(KafkaError._MSG_TIMED_OUT))
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=60_000)
    run = tracer.run("a", root_span=False)
    run.record_span("tool", "t", 1, 2, step=1)
    run.record_span("tool", "u", 1, 2, step=1)
    run.record_frame(b"png", step=1, content_type="image/png")

    stats = tracer.close(timeout_s=1)

    assert stats.spans_sent == 2
    assert stats.spans_delivered == 0
    assert stats.spans_dropped_by_reason == {"delivery_failed": 2}
    assert stats.frames_dropped_by_reason == {"delivery_failed": 1}
    assert stats.spans_in_flight == 0


def test_produce_exception_counted_not_raised():
    error = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    producer = RecordingProducer(produce_error=error)
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=60_000)
    run = tracer.run("a", root_span=False)
    run.record_span("tool", "t", 1, 2, step=1)
    run.record_frame(b"png", step=1, content_type="image/png")

    stats = tracer.close(timeout_s=1)

    assert stats.spans_dropped_by_reason == {"produce_failed": 1}
    assert stats.frames_dropped_by_reason == {"produce_failed": 1}


def test_spans_after_close_are_dropped(producer):
    tracer = Tracer(SETTINGS, producer=producer)
    run = tracer.run("a", root_span=False)
    tracer.close(timeout_s=1)

    run.record_span("tool", "late", 1, 2, step=1)

    assert tracer.stats.spans_dropped_by_reason == {"tracer_closed": 1}
    assert producer.messages == []


def test_frames_round_trip_with_seq_and_span(tracer, producer):
    with tracer.run("browser-agent", run_id="run-f") as run:
        with run.step() as step:
            with step.span("browser", "screenshot") as span:
                first = step.frame(b"\x89PNG one", content_type="image/png", width=1280, height=720)
            second = step.frame(b"<p>mail</p>", content_type="text/html", kind="inbox", capture_ns=42)
    tracer.flush()

    frames = producer.frames()
    assert [frame.seq for frame in frames] == [0, 1]
    assert first == hashlib.sha256(b"\x89PNG one").hexdigest()
    assert frames[0].sha256 == first
    assert frames[0].span_id == span.span_id
    assert frames[0].step == 1
    assert (frames[0].width, frames[0].height) == (1280, 720)
    assert frames[1].span_id is None
    assert frames[1].kind == "inbox"
    assert frames[1].capture_ns == 42
    assert second == frames[1].sha256
    assert [key for topic, key, _ in producer.messages if topic == "spanline.frames.v1"] == [b"run-f", b"run-f"]
    assert tracer.stats.frames_sent == 2


def test_frame_too_large_is_dropped_and_logged(tracer, producer, caplog):
    run = tracer.run("a", run_id="big-run")
    caplog.set_level(logging.ERROR, logger="pipeline.sdk.tracer")

    at_limit = run.record_frame(b"x" * 1024, step=3, content_type="image/png")
    too_large = run.record_frame(b"x" * 1025, step=3, content_type="image/png")
    tracer.flush()

    assert len(producer.frames()) == 1
    assert at_limit == hashlib.sha256(b"x" * 1024).hexdigest()
    assert too_large == hashlib.sha256(b"x" * 1025).hexdigest()
    assert tracer.stats.frames_dropped_by_reason == {"frame_too_large": 1}
    message = caplog.text
    assert "big-run" in message
    assert "step=3" in message
    assert "size=1025" in message
    assert "limit=1024" in message
    assert "SPANLINE_MAX_FRAME_BYTES" in message


def test_invalid_frame_kind_dropped(tracer, producer):
    tracer.run("a", root_span=False).record_frame(b"x", step=1, content_type="image/png", kind="pdf")
    tracer.flush()

    assert producer.frames() == []
    assert tracer.stats.frames_dropped_by_reason == {"invalid_frame": 1}


def test_threads_record_concurrently(producer):
    tracer = Tracer(SETTINGS, producer=producer, linger_ms=5, max_batch_spans=50)

    def record(thread_index: int) -> None:
        with tracer.run("a", run_id=f"run-{thread_index}", root_span=False) as run:
            for step_index in range(200):
                run.record_span("tool", "t", 1, 2, step=step_index + 1)

    threads = [threading.Thread(target=record, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = tracer.close(timeout_s=5)

    assert stats.spans_delivered == 800
    per_run: dict[str, list[int]] = {}
    for batch in producer.span_batches():
        per_run.setdefault(batch.run_id, []).extend(batch.columns["step"])
    assert {run_id: steps == list(range(1, 201)) for run_id, steps in per_run.items()} == {
        f"run-{index}": True for index in range(4)
    }


def test_real_producer_without_broker_never_raises():
    # A real librdkafka producer aimed at a closed port: checks the producer configuration is
    # accepted and that an unreachable Kafka only shows up in the stats.
    tracer = Tracer(Settings(kafka_bootstrap="127.0.0.1:1"), linger_ms=5)
    with tracer.run("a", root_span=False) as run:
        with run.step() as step:
            with step.span("tool", "t"):
                pass
            step.frame(b"png", content_type="image/png")

    stats = tracer.close(timeout_s=1)

    assert stats.spans_sent == 1
    assert stats.spans_delivered == 0
    assert stats.frames_sent == 1
