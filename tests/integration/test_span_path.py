"""Spans through the real broker and worker into TimescaleDB: exactly once, even across a crash."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer

from tests.conftest import IsolatedPipeline
from tests.integration.helpers import count_rows, publish_llm_spans, read_topic, start_worker, wait_for

SPAN_COUNT_SQL = "SELECT count(*) FROM spans WHERE run_id LIKE %s"
DISTINCT_SQL = "SELECT count(DISTINCT span_id) FROM spans WHERE run_id LIKE %s"


def test_killed_worker_restarted_stores_each_span_once(isolated: IsolatedPipeline) -> None:
    settings = isolated.settings
    dsn = settings.database_dsn.reveal()
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    # Enough spans that the worker needs several seconds, so the kill lands mid-stream.
    runs, spans_per_run = 400, 500
    expected = runs * spans_per_run

    publish_llm_spans(settings, prefix, runs, spans_per_run)
    worker = start_worker(isolated, "spans", "span-worker-1")
    try:
        wait_for(
            lambda: count_rows(dsn, SPAN_COUNT_SQL, (prefix + "%",)) > 0,
            timeout_s=60, what="the first rows before the kill", interval_s=0.05,
        )
    finally:
        worker.kill()
    stored_at_kill = count_rows(dsn, SPAN_COUNT_SQL, (prefix + "%",))

    restarted = start_worker(isolated, "spans", "span-worker-2")
    try:
        wait_for(
            lambda: count_rows(dsn, SPAN_COUNT_SQL, (prefix + "%",)) >= expected,
            timeout_s=240, what=f"{expected} spans after the restart",
        )
        # Let any redelivered message arrive and be filtered before counting for duplicates.
        wait_for(lambda: True, timeout_s=1, what="settling")
    finally:
        restarted.stop()

    print(f"stored before SIGKILL: {stored_at_kill} of {expected}")
    assert 0 < stored_at_kill < expected, "the kill did not land mid-stream"
    assert count_rows(dsn, SPAN_COUNT_SQL, (prefix + "%",)) == expected
    assert count_rows(dsn, DISTINCT_SQL, (prefix + "%",)) == expected


def test_malformed_message_dead_lettered_next_stored(isolated: IsolatedPipeline) -> None:
    settings = isolated.settings
    dsn = settings.database_dsn.reveal()
    prefix = f"dlq-{uuid.uuid4().hex[:8]}"
    bad_value = b"\x00\x00\x00\x00\x01this is not a span batch"

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.spans_topic, key=b"bad-run", value=bad_value, partition=0)
    producer.flush(10)
    publish_llm_spans(settings, prefix, runs=1, spans_per_run=10)

    worker = start_worker(isolated, "spans", "span-worker-dlq")
    try:
        wait_for(
            lambda: count_rows(dsn, SPAN_COUNT_SQL, (prefix + "%",)) == 10,
            timeout_s=60, what="the good batch after the malformed one",
        )
    finally:
        worker.stop()

    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"dlq-reader-{uuid.uuid4().hex[:6]}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([settings.spans_dlq_topic])
    try:
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None, "no dead-letter message"
        headers = dict(message.headers())
        assert message.value() == bad_value
        assert message.key() == b"bad-run"
        assert headers["dlq.reason"] == b"bad_magic"
        assert headers["dlq.original.topic"] == settings.spans_topic.encode()
        assert headers["dlq.original.offset"] == b"0"
    finally:
        consumer.close()


def test_rows_the_database_rejects_go_to_dead_letter(isolated: IsolatedPipeline) -> None:
    import time

    from pipeline.wire.spans import encode_span_batch

    settings = isolated.settings
    dsn = settings.database_dsn.reveal()
    prefix = f"rejected-{uuid.uuid4().hex[:8]}"
    now = time.time_ns()

    def batch(run_id: str, name: str, attributes: str) -> bytes:
        columns = {
            "trace_id": ["a" * 32], "span_id": [uuid.uuid4().hex[:16]], "parent_span_id": [""],
            "step": [1], "kind": ["tool"], "name": [name], "start_ns": [now], "end_ns": [now + 1_000],
            "status": ["ok"], "attributes": [attributes],
        }
        return encode_span_batch(run_id, "test-agent", columns)

    # Both decode, but PostgreSQL rejects a NUL character in text and attributes that are not JSON.
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    bad_values = {
        f"{prefix}-nul": batch(f"{prefix}-nul", "click\x00button", "{}"),
        f"{prefix}-json": batch(f"{prefix}-json", "click", "{not json"),
    }
    for run_id, value in bad_values.items():
        producer.produce(settings.spans_topic, key=run_id.encode(), value=value, partition=0)
    producer.produce(settings.spans_topic, key=b"good", value=batch(f"{prefix}-good", "click", '{"a": 1}'), partition=0)
    producer.flush(10)

    worker = start_worker(isolated, "spans", "span-worker-rejected")
    try:
        wait_for(lambda: count_rows(dsn, SPAN_COUNT_SQL, (f"{prefix}-good",)) == 1,
                 timeout_s=60, what="the good batch behind the rejected ones")
    finally:
        worker.stop()

    assert count_rows(dsn, SPAN_COUNT_SQL, (f"{prefix}-nul",)) == 0
    assert count_rows(dsn, SPAN_COUNT_SQL, (f"{prefix}-json",)) == 0
    letters = read_topic(settings.kafka_bootstrap, settings.spans_dlq_topic, expected=2)
    assert sorted(message.value() for message in letters) == sorted(bad_values.values())
    for message in letters:
        headers = dict(message.headers())
        assert headers["dlq.reason"] == b"sink_rejected"
        assert headers["dlq.stage"] == b"store"
