"""The span sink: priced span batches into the `spans` hypertable with binary COPY.

Rows and the Kafka offsets they came from are committed in one transaction (see offsets.py), so a
batch is stored exactly once however often Kafka redelivers it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import psycopg

from pipeline.stores.copy_types import register_copy_dumpers
from pipeline.stores.offsets import fresh_and_advanced, lock_next_offsets, save_next_offsets

log = logging.getLogger(__name__)

# (database column, source column, postgres type). Source columns come from the decoded wire batch
# or from pricing; "run_id" and "agent" are batch-level and repeated for every span.
SPAN_COPY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("start_time", "start_ns", "timestamptz"),
    ("end_time", "end_ns", "timestamptz"),
    ("run_id", "run_id", "text"),
    ("agent", "agent", "text"),
    ("trace_id", "trace_id", "text"),
    ("span_id", "span_id", "text"),
    ("parent_span_id", "parent_span_id", "text"),
    ("step", "step", "int4"),
    ("kind", "kind", "text"),
    ("name", "name", "text"),
    ("status", "status", "text"),
    ("error_message", "error_message", "text"),
    ("provider", "provider", "text"),
    ("model", "model", "text"),
    ("input_tokens", "input_tokens", "int8"),
    ("cache_read_tokens", "cache_read_tokens", "int8"),
    ("cache_write_tokens", "cache_write_tokens", "int8"),
    ("cache_write_1h_tokens", "cache_write_1h_tokens", "int8"),
    ("output_tokens", "output_tokens", "int8"),
    ("reasoning_tokens", "reasoning_tokens", "int8"),
    ("audio_input_tokens", "audio_input_tokens", "int8"),
    ("audio_output_tokens", "audio_output_tokens", "int8"),
    ("usage_source", "usage_source", "text"),
    ("tool_name", "tool_name", "text"),
    ("tool_args", "tool_args", "text"),
    ("attributes", "attributes", "jsonb"),
    ("cost_usd", "cost_usd", "float8"),
    ("input_cost_usd", "input_cost_usd", "float8"),
    ("cache_read_cost_usd", "cache_read_cost_usd", "float8"),
    ("cache_write_cost_usd", "cache_write_cost_usd", "float8"),
    ("output_cost_usd", "output_cost_usd", "float8"),
    ("reasoning_cost_usd", "reasoning_cost_usd", "float8"),
    ("other_cost_usd", "other_cost_usd", "float8"),
    ("computed_cost_usd", "computed_cost_usd", "float8"),
    ("reported_cost_usd", "reported_cost_usd", "float8"),
    ("price_id", "price_id", "text"),
    ("pricing_status", "pricing_status", "text"),
)
_BATCH_LEVEL_COLUMNS = {"run_id", "agent"}
_COPY_SQL = "COPY spans ({}) FROM STDIN (FORMAT BINARY)".format(
    ", ".join(column for column, _, _ in SPAN_COPY_COLUMNS)
)


@dataclass
class SourcedSpanBatch:
    """One Kafka message's spans, decoded and priced, with the coordinates it was read from."""

    partition: int
    offset: int
    run_id: str
    agent: str
    size: int
    columns: Mapping[str, Sequence]
    cost_columns: Mapping[str, Sequence] = field(default_factory=dict)


@dataclass
class SinkWriteResult:
    spans_stored: int
    messages_stored: int
    messages_skipped: int
    end_ns_stored: list[int]


class SpanSink:
    """Writes priced span batches and their offsets for one consumer group and topic.

    Not thread-safe: one sink per worker task. The connection is opened lazily and reopened after
    a connection error, so a database restart costs one failed batch that is then retried.
    """

    def __init__(self, dsn: str, consumer_group: str, topic: str) -> None:
        self._dsn = dsn
        self._consumer_group = consumer_group
        self._topic = topic
        self._connection: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._dsn)
            register_copy_dumpers(self._connection)
            log.info("span sink connected topic=%s group=%s", self._topic, self._consumer_group)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def write(self, batches: Sequence[SourcedSpanBatch]) -> SinkWriteResult:
        """Store the batches not stored before and advance the stored offsets, atomically.

        Raises psycopg.Error on failure; nothing of the call is then stored, and the caller retries.
        """
        connection = self._connect()
        try:
            with connection.transaction(), connection.cursor() as cursor:
                stored_next = lock_next_offsets(
                    cursor, self._consumer_group, self._topic, {b.partition for b in batches}
                )
                fresh, changed = fresh_and_advanced(batches, stored_next)
                spans_stored = self._copy(cursor, fresh) if fresh else 0
                if changed:
                    save_next_offsets(cursor, self._consumer_group, self._topic, changed)
        except psycopg.OperationalError:
            # A broken connection cannot be reused; the next write reconnects.
            self.close()
            raise
        end_ns: list[int] = []
        for batch in fresh:
            end_ns.extend(batch.columns.get("end_ns", ()))
        return SinkWriteResult(
            spans_stored=spans_stored,
            messages_stored=len(fresh),
            messages_skipped=len(batches) - len(fresh),
            end_ns_stored=end_ns,
        )

    def _copy(self, cursor: psycopg.Cursor, batches: Sequence[SourcedSpanBatch]) -> int:
        rows_written = 0
        started = time.perf_counter()
        with cursor.copy(_COPY_SQL) as copy:
            copy.set_types([pg_type for _, _, pg_type in SPAN_COPY_COLUMNS])
            write_row = copy.write_row
            for batch in batches:
                if batch.size == 0:
                    continue
                column_values = []
                for _, source, _ in SPAN_COPY_COLUMNS:
                    if source in _BATCH_LEVEL_COLUMNS:
                        column_values.append(repeat(getattr(batch, source), batch.size))
                    elif source in batch.columns:
                        column_values.append(batch.columns[source])
                    elif source in batch.cost_columns:
                        column_values.append(batch.cost_columns[source])
                    else:
                        column_values.append(repeat(None, batch.size))
                for row in zip(*column_values):
                    write_row(row)
                rows_written += batch.size
        log.debug(
            "copied spans rows=%d batches=%d seconds=%.3f",
            rows_written, len(batches), time.perf_counter() - started,
        )
        return rows_written
