"""Helpers for integration tests: publish spans through the SDK and poll the database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import psycopg

from pipeline.config import Settings
from pipeline.pricing.usage import Usage
from pipeline.workers.process import WorkerProcess

from tests.conftest import IsolatedPipeline, free_port


def start_worker(pipeline: IsolatedPipeline, role: str, name: str) -> WorkerProcess:
    worker = WorkerProcess(
        role, free_port(), pipeline.state_dir / "logs" / f"{name}.log", env=pipeline.env
    )
    worker.start()
    worker.wait_ready()
    return worker


def publish_llm_spans(
    settings: Settings,
    run_prefix: str,
    runs: int,
    spans_per_run: int,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    usage: Usage | None = None,
) -> list[str]:
    """Publish `runs` runs of `spans_per_run` llm spans each; return the run ids."""
    from pipeline.sdk import Tracer

    usage = usage or Usage(input_tokens=1000, output_tokens=100)
    tracer = Tracer(settings, max_batch_spans=250)
    run_ids = []
    start_ns = time.time_ns()
    for run_index in range(runs):
        run_id = f"{run_prefix}-{run_index:04d}-{uuid.uuid4().hex[:6]}"
        run_ids.append(run_id)
        with tracer.run(agent="test-agent", run_id=run_id, root_span=False) as run:
            for step in range(1, spans_per_run + 1):
                begin = start_ns + step * 1_000_000
                run.record_span(
                    "llm", f"chat {model}", begin, begin + 500_000, step=step,
                    provider=provider, model=model, usage=usage,
                )
    stats = tracer.close()
    assert _stat(stats, "spans_dropped") == 0, f"SDK dropped spans: {stats}"
    return run_ids


def _stat(stats: object, name: str) -> int:
    value = stats.get(name) if isinstance(stats, dict) else getattr(stats, name, 0)
    if isinstance(value, dict):
        return sum(value.values())
    return int(value or 0)


def count_rows(dsn: str, sql: str, params: tuple) -> int:
    with psycopg.connect(dsn) as connection:
        return connection.execute(sql, params).fetchone()[0]


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5
) -> None:
    """Poll until condition() is true; fail the test naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def read_topic(bootstrap: str, topic: str, *, expected: int | None = None, timeout_s: float = 30.0) -> list:
    """Read `topic` from the start with a new consumer group and return its messages.

    Stops at `expected` messages when given, else once every partition reached its end.
    """
    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    consumer.subscribe([topic])
    messages: list = []
    partitions_at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is None:
                messages.append(message)
                if expected is not None and len(messages) >= expected:
                    break
                continue
            if message.error().code() == KafkaError._PARTITION_EOF:
                partitions_at_end.add(message.partition())
                assignment = consumer.assignment()
                if expected is None and assignment and len(partitions_at_end) == len(assignment):
                    break
    finally:
        consumer.close()
    return messages
