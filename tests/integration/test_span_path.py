"""Spans through the real broker and worker into TimescaleDB: exactly once, even across a crash."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer

from tests.conftest import IsolatedPipeline
from tests.integration.helpers import count_rows, publish_llm_spans, start_worker, wait_for

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
