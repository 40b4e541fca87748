"""The load harness's database-side check catches a duplicated and a deleted row."""

from __future__ import annotations

import random
import time

import psycopg
import pytest

from load.generator import WordText, build_template
from load.shapes import DEFAULT_SHAPE
from load.verify import compare, stored_counts
from pipeline.stores.span_sink import SourcedSpanBatch, SpanSink
from pipeline.wire.spans import decode_span_batch

pytestmark = pytest.mark.integration


def test_db_verification_catches_duplicate_and_deleted_row(isolated) -> None:  # noqa: ANN001
    settings = isolated.settings
    dsn = settings.database_dsn.reveal()
    prefix = f"loadverify-{settings.consumer_group_prefix}"
    rng = random.Random(5)
    text = WordText(rng)
    since_ns = time.time_ns() - 3600 * 10**9
    produced: dict[str, int] = {}
    batches = []
    for index in range(2):
        template = build_template(DEFAULT_SHAPE, f"{prefix}-00-{index:05d}", 100, rng, text)
        batch = decode_span_batch(template.render(time.time_ns(), f"00{index:010x}".encode()))
        produced[batch.run_id] = batch.size
        batches.append(SourcedSpanBatch(
            partition=0, offset=index, run_id=batch.run_id, agent=batch.agent, size=batch.size,
            columns=batch.columns,
            cost_columns={"pricing_status": ["not_applicable"] * batch.size},
        ))
    sink = SpanSink(dsn, f"{settings.consumer_group_prefix}-spans", settings.spans_topic)
    try:
        sink.write(batches)
    finally:
        sink.close()

    first_run, second_run = sorted(produced)
    with psycopg.connect(dsn, autocommit=True) as connection:
        try:
            exact = compare(produced, stored_counts(connection, prefix, since_ns))
            connection.execute(
                "INSERT INTO spans SELECT * FROM spans WHERE run_id = %s"
                " AND span_id = (SELECT min(span_id) FROM spans WHERE run_id = %s)",
                (first_run, first_run),
            )
            connection.execute(
                "DELETE FROM spans WHERE run_id = %s"
                " AND span_id = (SELECT max(span_id) FROM spans WHERE run_id = %s)",
                (second_run, second_run),
            )
            damaged = compare(produced, stored_counts(connection, prefix, since_ns))
        finally:
            connection.execute("DELETE FROM spans WHERE run_id LIKE %s", (prefix + "-%",))

    assert exact.exact
    assert damaged.duplicated_by_key == {first_run: 1}
    assert damaged.lost_by_key == {second_run: 1}
